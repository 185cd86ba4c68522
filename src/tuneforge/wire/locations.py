"""google.cloud.location: the regions a project can use (``GET /v1/projects/{project}/locations``)."""

from __future__ import annotations

from pydantic import Field

from tuneforge.wire.base import WireModel


class Location(WireModel):
    WIRE_NAME = "Location"
    name: str = Field(description="projects/PROJECT/locations/REGION")
    location_id: str
    display_name: str = ""
    labels: dict[str, str] = Field(
        default={}, description='tuneforge-open-model-tuning: "true" where the open-model documents list the region.'
    )


class ListLocationsResponse(WireModel):
    WIRE_NAME = "ListLocationsResponse"
    locations: list[Location] = []
    next_page_token: str | None = None
