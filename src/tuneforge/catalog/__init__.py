"""The model catalog: model ids -> family, tuning modes, sequence limits, defaults and weights."""

from tuneforge.catalog.catalog import (
    Catalog,
    Family,
    ModelEntry,
    ModeSpec,
    ResolvedModel,
    TuningMode,
    load_catalog,
)

__all__ = ["Catalog", "Family", "ModeSpec", "ModelEntry", "ResolvedModel", "TuningMode", "load_catalog"]
