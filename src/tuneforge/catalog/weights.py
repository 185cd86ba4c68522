"""Turn a resolved model's weights reference into a local Hugging Face folder."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge import storage
from tuneforge.catalog.catalog import ResolvedModel, same_architecture
from tuneforge.catalog.gguf import PACKAGE, gguf_folder, is_gguf, package_file
from tuneforge.catalog.tiny import TINY_SPECS, build_tiny_model, folder_name
from tuneforge.errors import FailedPrecondition, InvalidArgument
from tuneforge.settings import Settings, get_settings

BUILTIN = "builtin:"


def materialize(weights: str, settings: Settings | None = None, *, model_type: str | None = None) -> Path:
    """A local folder with the weights: builds a tiny model on first use, downloads remote URIs once, de-quantizes a
    GGUF file (a path, a gs:// URI or ``package:DIST/PATH``) once into a Hugging Face folder; a GGUF file of another
    architecture than ``model_type`` is refused before it is converted."""
    settings = settings or get_settings()
    if weights.startswith(BUILTIN):
        name = weights[len(BUILTIN) :]
        if name not in TINY_SPECS:
            raise InvalidArgument(f"unknown builtin model {name!r}; builtin models: {', '.join(TINY_SPECS)}")
        dest = settings.models_dir / folder_name(name)
        if not (dest / "config.json").exists():
            build_tiny_model(name, dest)
        return dest
    if weights.startswith(PACKAGE):
        path = package_file(weights)
    else:
        try:
            path = storage.fetch(weights, settings)
        except storage.StorageError as exc:
            raise FailedPrecondition(f"model weights: {exc}") from exc
    if is_gguf(weights):
        if not path.is_file():
            raise InvalidArgument(f"model weights {weights}: expected a .gguf file, got a folder")
        return gguf_folder(path, weights, settings, model_type)
    if not path.is_dir():
        raise InvalidArgument(
            f"model weights {weights}: expected a folder in Hugging Face format or a .gguf file, got another file"
        )
    if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
        raise InvalidArgument(
            f"model weights {weights}: no config.json (or adapter_config.json) in {path}; point at a folder in "
            "Hugging Face format (config.json, *.safetensors, tokenizer files)"
        )
    return path


def check_architecture(path: Path, resolved: ResolvedModel, what: str = "custom base model") -> None:
    """A custom base model must have the architecture of the base model it claims to be (SPEC §2.3); so must the
    weights an operator configures for a catalog id (``what`` names which the folder is)."""
    config_file = path / "config.json"
    if not config_file.exists():
        return
    model_type = json.loads(config_file.read_text()).get("model_type", "")
    expected = resolved.family.model_type
    if not same_architecture(model_type, expected):
        raise InvalidArgument(
            f"{what} at {path} is a {model_type!r} model, but {resolved.requested_id} is a "
            f"{expected!r} model; the architecture must match the base model"
        )
