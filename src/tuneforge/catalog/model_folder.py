"""The model-folder contract: where a run puts its final model and how a model folder describes itself.

Every run exports to ``<output_uri>/postprocess/node-0/checkpoints/final`` (the path Vertex documents). A model
folder is in Hugging Face format; a LoRA adapter has ``adapter_config.json``. tuneforge adds two files:
``tuneforge_config.json`` (the resolved run configuration, with the ``serving`` rules that shape prompts as the
training data looked) and ``tuneforge_manifest.json`` (every file with its hash, and the base model the run started
from), written last. This module is the one place that knows those names; training writes them, serving, the
registry and the pipeline tasks read them through these functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.catalog.weights import materialize
from tuneforge.errors import FailedPrecondition
from tuneforge.settings import Settings

CONFIG = "tuneforge_config.json"
MANIFEST = "tuneforge_manifest.json"
ADAPTER_CONFIG = "adapter_config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
FINAL_PARTS = ("postprocess", "node-0", "checkpoints", "final")


def final_uri(output_uri: str) -> str:
    """The final model of a run whose output is ``output_uri`` (a URI or a local path)."""
    return "/".join([str(output_uri).rstrip("/"), *FINAL_PARTS])


def final_dir(output_dir: Path) -> Path:
    """The same, for a run's local output folder."""
    return Path(output_dir).joinpath(*FINAL_PARTS)


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).exists()


def takes_images(folder: Path) -> bool:
    """An image-text model (its config has a vision tower), loaded with its processor."""
    return "vision_config" in _json(Path(folder) / "config.json")


def auto_model_class(folder: Path):
    """The transformers Auto class that loads the whole model in ``folder``: an image-text model's vision tower
    and projector would be dropped by the causal-LM class."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText  # lazy: torch only where loading

    return AutoModelForImageTextToText if takes_images(folder) else AutoModelForCausalLM


def has_processor(folder: Path) -> bool:
    return (Path(folder) / "processor_config.json").exists()


def has_tokenizer(folder: Path) -> bool:
    return any((Path(folder) / f).exists() for f in TOKENIZER_FILES)


def folder_bytes(folder: Path) -> int:
    """Bytes of the weight files in a model folder (what loading it costs in memory, before activations)."""
    return sum(p.stat().st_size for p in Path(folder).glob("*") if p.suffix in (".safetensors", ".bin", ".pt"))


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def read_record(folder: Path) -> dict[str, Any]:
    """The run configuration saved with the model (empty for folders tuneforge did not write)."""
    return _json(Path(folder) / CONFIG)


def serving_rules(folder: Path) -> dict[str, Any]:
    """How serving must shape prompts for this model (``serving`` of its record): default system, input prefix."""
    return read_record(folder).get("serving") or {}


def read_manifest(folder: Path) -> dict[str, Any]:
    return _json(Path(folder) / MANIFEST)


def base_model_id(folder: Path) -> str:
    """The catalog id the model was tuned from, as its manifest records it ("" when unknown)."""
    return str(read_manifest(folder).get("base_model", {}).get("requested", ""))


def adapter_base(adapter_dir: Path, settings: Settings) -> Path | None:
    """The base model folder an adapter was trained on: its manifest's weights, else peft's recorded path."""
    base = read_manifest(adapter_dir).get("base_model", {})
    if base.get("base_dir") and (Path(base["base_dir"]) / "config.json").exists():
        return Path(base["base_dir"])  # the exact folder it was trained on (a custom base, for one)
    if base.get("weights"):
        return materialize(base["weights"], settings)
    recorded = _json(Path(adapter_dir) / ADAPTER_CONFIG).get("base_model_name_or_path")
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    return None


def weights_at(uri: str, settings: Settings, what: str) -> tuple[Path, Path | None]:
    """(model folder, base folder for a LoRA adapter or None) of the weights at ``uri``."""
    folder = materialize(uri, settings)
    if not is_adapter(folder):
        return folder, None
    base = adapter_base(folder, settings)
    if base is None:
        raise FailedPrecondition(
            f"{what} is a LoRA adapter whose base model cannot be found (no "
            f"{MANIFEST} and no local base_model_name_or_path); deploy the "
            "merged model instead or put the base next to it"
        )
    return folder, base
