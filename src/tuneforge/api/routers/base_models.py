"""The models a job can start from (a tuneforge extension, the console's base model picker)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge.api.deps import authorize
from tuneforge.api.errors import ERRORS
from tuneforge.control.base_models import list_base_models
from tuneforge.wire.catalog import ListBaseModelsResponse

router = APIRouter(tags=["baseModels (tuneforge)"], responses=ERRORS)


@router.get(
    "/projects/{project}/locations/{location}/tuneforge/baseModels",
    response_model=ListBaseModelsResponse,
    response_model_exclude_none=True,
)
def base_models(request: Request, project: str, location: str) -> ListBaseModelsResponse:
    """Every catalog model and closed id: modes with their sequence limits and learning rates, defaults, modality,
    and what it runs on here (its weights, an alias target, or a dev-mode stand-in)."""
    authorize(request, project)
    return list_base_models(request.app.state.settings)
