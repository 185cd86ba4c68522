"""The models tuneforge tunes (a tuneforge extension: the console's base model picker)."""

from __future__ import annotations

from pydantic import Field

from tuneforge.wire.base import WireModel


class ModeLimits(WireModel):
    WIRE_NAME = "ModeLimits"
    tuning_mode: str = Field(description="FULL or PEFT_ADAPTER")
    max_seq_len: int = Field(description="Longest example in tokens.")
    learning_rate: float = Field(description="Recommended supervised learning rate (the multiplier scales it).")
    preference_learning_rate: float


class BaseModelInfo(WireModel):
    WIRE_NAME = "BaseModelInfo"
    id: str = Field(description="The id a tuning job names as baseModel.")
    display_name: str = ""
    kind: str = Field(description="open (weights in the catalog) or closed (a closed id mapped to an open model)")
    family: str
    runs_on: str | None = Field(default=None, description="The open model it runs as (closed ids; dev stand-ins).")
    modalities: list[str] = ["text"]
    modes: list[ModeLimits] = []
    epochs: int
    batch_size: int
    adapter_size: int
    beta: float
    weights_configured: bool
    stand_in: bool = Field(default=False, description="Dev mode: the family's tiny stand-in runs in its place.")
    note: str | None = None


class ListBaseModelsResponse(WireModel):
    WIRE_NAME = "ListBaseModelsResponse"
    models: list[BaseModelInfo] = []
