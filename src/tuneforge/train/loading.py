"""Load the model to tune: a catalog base, a custom checkpoint, or an earlier run's output (continued tuning)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.catalog.catalog import Catalog, ModelEntry, ResolvedModel, TuningMode
from tuneforge.catalog.gguf import weights_source
from tuneforge.catalog.model_folder import (
    TOKENIZER_FILES,
    adapter_base,
    auto_model_class,
    has_processor,
    has_tokenizer,
    is_adapter,
    takes_images,
)
from tuneforge.catalog.weights import check_architecture, materialize
from tuneforge.data import ChatEncoder, Limits
from tuneforge.data.images import open_images
from tuneforge.errors import InvalidArgument, WeightsNotConfigured
from tuneforge.settings import Settings


@dataclass
class ModelSource:
    """Where weights and tokenizer come from for one run."""

    resolved: ResolvedModel
    base_dir: Path  # full Hugging Face model folder the run starts from
    adapter_dir: Path | None = None  # an earlier run's LoRA adapter to continue from
    tokenizer_dir: Path | None = None

    def describe(self) -> dict:
        return {
            "requested": self.resolved.requested_id,
            "runs_on": self.resolved.entry.id,
            "weights": self.resolved.weights,
            "stand_in": self.resolved.stand_in,
            "note": self.resolved.note,
            "base_dir": str(self.base_dir),
            "adapter_dir": str(self.adapter_dir) if self.adapter_dir else None,
            "weights_source": weights_source(self.base_dir),  # a GGUF file's, when the base was converted from one
        }


def resolve_source(
    catalog: Catalog, base_model: str, custom_base_model: str | None, *, dev: bool | None, settings: Settings
) -> ModelSource:
    """Resolve the catalog id and, if given, the custom base (a full model or an earlier run's adapter)."""
    if custom_base_model is None:
        resolved = catalog.resolve(base_model, dev=dev, settings=settings)
        base_dir = materialize(resolved.weights, settings, model_type=resolved.family.model_type)
        if not resolved.stand_in:  # an operator's folder: a wrong one is named here, not by a later shape error
            check_architecture(base_dir, resolved, f"the weights configured for {resolved.entry.id}")
        return ModelSource(resolved, base_dir, tokenizer_dir=base_dir)

    custom = materialize(custom_base_model, settings, model_type=catalog.model_type(base_model))
    if is_adapter(custom):
        # An earlier PEFT run: its adapter sits on the base model the manifest (or base_model) names.
        resolved = catalog.resolve(base_model, dev=dev, settings=settings)
        base_dir = _adapter_base(custom, resolved, settings)
        check_architecture(base_dir, resolved)
        tok = custom if has_tokenizer(custom) else base_dir
        return ModelSource(resolved, base_dir, adapter_dir=custom, tokenizer_dir=tok)

    # A full checkpoint (custom weights, or an earlier FULL run): it replaces the catalog weights, which need not
    # be configured. base_model still names the architecture, limits and defaults.
    entry = catalog.entry(base_model)
    resolved = ResolvedModel(
        requested_id=base_model, entry=entry, family=catalog.families[entry.family], weights=custom_base_model
    )
    check_architecture(custom, resolved)
    if has_tokenizer(custom):
        return ModelSource(resolved, custom, tokenizer_dir=custom)
    try:
        tok = materialize(catalog.resolve(base_model, dev=dev, settings=settings).weights, settings)
    except WeightsNotConfigured as exc:
        raise InvalidArgument(
            f"custom base model {custom_base_model} has no tokenizer files ({', '.join(TOKENIZER_FILES)}) and the "
            f"weights of {base_model} are not configured to take them from; add the tokenizer to the folder"
        ) from exc
    return ModelSource(resolved, custom, tokenizer_dir=tok)


def _adapter_base(adapter_dir: Path, resolved: ResolvedModel, settings: Settings) -> Path:
    return adapter_base(adapter_dir, settings) or materialize(resolved.weights, settings)


def limits_for(entry: ModelEntry, requested_id: str, mode: TuningMode, strict: bool = False) -> Limits:
    """What the catalog allows for ``requested_id`` in ``mode``; a mode it does not allow is an error."""
    if mode not in entry.modes:
        allowed = ", ".join(m.value for m in entry.modes)
        raise InvalidArgument(f"{requested_id} does not support tuning mode {mode.value}; it allows {allowed}")
    return Limits(
        model_id=requested_id,
        mode=mode.value,
        max_seq_len=entry.modes[mode].max_seq_len,
        other_modes={m.value: s.max_seq_len for m, s in entry.modes.items() if m != mode},
        text_only="image" not in entry.modalities,
        strict=strict,
    )


def chat_encoder(source: ModelSource, tokenizer=None, settings: Settings | None = None) -> ChatEncoder:
    """The encoder training and serving share: the model's chat template, the family's end-of-turn token; for an
    image-text model its processor too, reading images as ``settings`` allow (under the bucket root)."""
    tokenizer = tokenizer or load_tokenizer(source)
    processor = load_processor(source, tokenizer) if takes_images(source.base_dir) else None
    return ChatEncoder(
        tokenizer,
        end_of_turn=source.resolved.family.end_of_turn,
        processor=processor,
        load_images=(lambda parts: open_images(parts, settings)) if processor is not None else None,
    )


def load_processor(source: ModelSource, tokenizer):
    """An image-text model's processor (the tokenizer the run uses, the image processor of the weights')."""
    from transformers import AutoProcessor

    folder = next(
        (f for f in (source.adapter_dir, source.tokenizer_dir, source.base_dir) if f and has_processor(f)), None
    )
    if folder is None:
        raise InvalidArgument(
            f"{source.base_dir} is an image-text model without a processor (processor_config.json); add the "
            "processor files of its family to the folder"
        )
    return AutoProcessor.from_pretrained(str(folder), tokenizer=tokenizer)


def load_tokenizer(source: ModelSource):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(source.tokenizer_dir or source.base_dir))


def attention_implementation(name: str, device: torch.device) -> str | None:
    """The attention kernel to load the model with (None: transformers' default, SDPA)."""
    import importlib.util

    if name != "auto":
        if name == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise InvalidArgument(
                "attention flash_attention_2 needs the flash-attn package (pip install flash-attn); "
                "or use attention=sdpa"
            )
        return name
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


def load_model(source: ModelSource, device: torch.device, dtype: torch.dtype, attention: str | None = None):
    auto = auto_model_class(source.base_dir)
    model = auto.from_pretrained(str(source.base_dir), dtype=dtype, **_attention_kwargs(attention))
    return model.to(device)


def empty_model(model_dir: Path, dtype: torch.dtype, attention: str | None = None):
    """The model's modules with weights on the meta device (no memory): what ranks other than 0 of a sharded run
    build, to receive their shards from rank 0 (``distributed.shard``)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    with torch.device("meta"):
        return auto_model_class(model_dir).from_config(config, dtype=dtype, **_attention_kwargs(attention))


def _attention_kwargs(attention: str | None) -> dict:
    return {"attn_implementation": attention} if attention else {}
