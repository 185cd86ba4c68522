"""The training engine: one recipe per file under recipes/, helpers beside them."""

from tuneforge.train.config import TuningConfig
from tuneforge.train.recipes.sft import Callbacks, RunResult, run_sft

__all__ = ["Callbacks", "RunResult", "TuningConfig", "run_sft"]
