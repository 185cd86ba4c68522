"""The model catalog: model ids -> family, tuning modes, sequence limits, defaults and weights; tiny stand-ins; the
model-folder contract (final path, config and manifest names, adapter detection). Imports only the base (wire,
settings, errors, storage)."""

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
