"""What the CPU quality benchmarks share (quality.py, preference_quality.py, stand_in_quality.py): quiet libraries, a
scratch home, and the JSON report with the machine it was measured on."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import torch
import transformers


def scratch() -> Path:
    """Quiet transformers, use a fresh tuneforge home unless one is set, and return a scratch folder for the runs."""
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    os.environ.setdefault("TUNEFORGE_HOME", tempfile.mkdtemp())
    return Path(tempfile.mkdtemp())


def report(rows: list[dict]) -> None:
    env = {
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps({"env": env, "results": rows}, indent=2))
