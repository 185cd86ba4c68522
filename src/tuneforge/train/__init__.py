"""The training engine: one recipe per file under recipes/, helpers beside them (fast path, distributed,
checkpoints, metrics). May import infer, data, catalog and the base; never serve, control or above.

``TuningConfig`` is importable without torch; the recipe names load torch on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge.train.callbacks import Callbacks
from tuneforge.train.config import TuningConfig

if TYPE_CHECKING:
    from tuneforge.train.recipes.sft import RunResult, run_sft

__all__ = ["Callbacks", "RunResult", "TuningConfig", "run_sft", "run_tuning"]


def run_tuning(config: TuningConfig, **kwargs: Any) -> RunResult:
    """The recipe of ``config.method``: supervised (recipes/sft.py) or preference tuning (recipes/dpo.py)."""
    if config.method == "preference":
        from tuneforge.train.recipes.dpo import run_dpo  # lazy: torch loads only when a run is asked for

        return run_dpo(config, **kwargs)
    from tuneforge.train.recipes.sft import run_sft as sft  # lazy: as above

    return sft(config, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("RunResult", "run_sft"):
        from tuneforge.train.recipes import sft  # lazy: torch loads only when a run is asked for

        return getattr(sft, name)
    raise AttributeError(f"module 'tuneforge.train' has no attribute {name!r}")
