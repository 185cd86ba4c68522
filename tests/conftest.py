"""Shared fixtures: one tuneforge home per test session, so tiny models are built once."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "spec" / "EXAMPLES"
if not EXAMPLES.exists():  # CI clones the repo next to shared/; a checkout elsewhere can point at it
    EXAMPLES = Path(os.environ.get("TUNEFORGE_EXAMPLES", "/work/shared/spec/EXAMPLES"))


@pytest.fixture(scope="session", autouse=True)
def tf_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("tuneforge-home")
    os.environ["TUNEFORGE_HOME"] = str(home)
    os.environ.pop("TUNEFORGE_DEV", None)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    from tuneforge.settings import reset_settings_cache

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    reset_settings_cache()
    return home


@pytest.fixture()
def settings(tf_home):
    from tuneforge.settings import Settings

    return Settings(home=tf_home)


@pytest.fixture(scope="session")
def examples() -> Path:
    assert EXAMPLES.exists(), f"example datasets not found at {EXAMPLES}"
    return EXAMPLES


@pytest.fixture(scope="session")
def tiny_dir(tf_home):
    """tiny model name -> local folder (built on first use)."""
    from tuneforge.catalog.weights import materialize
    from tuneforge.settings import Settings

    s = Settings(home=tf_home)
    return lambda name: materialize(f"builtin:{name}", s)


@pytest.fixture(scope="session")
def random_tiny_dir(tf_home):
    """tiny model name -> its random init, without the shipped pre-training: the numerics comparisons (two ways of
    computing one step), whose tolerances were set on it."""
    from tuneforge.train.demo_task import random_init

    return lambda name: random_init(tf_home, name)


@pytest.fixture(scope="session")
def tokenizer_of(tiny_dir):
    from transformers import AutoTokenizer

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = AutoTokenizer.from_pretrained(str(tiny_dir(name)))
        return cache[name]

    return get
