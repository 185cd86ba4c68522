"""The tuning run's configuration: declared once, typed, with defaults and help; resolved and saved with artifacts."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tuneforge.catalog.catalog import TuningMode
from tuneforge.errors import InvalidArgument

ADAPTER_SIZES = (1, 2, 4, 8, 16, 32)
# What a run can use: past these a request is refused at once instead of planning 2**64 steps.
MAX_EPOCHS = 1000
MAX_STEPS = 10_000_000
MAX_BATCH = 65_536
MAX_LR_MULTIPLIER = 1000
# Distillation step-by-step (Hsieh et al., 2023): the two tasks a student learns, told apart by their input prefix.
PREDICT_PREFIX = "predict: "
EXPLAIN_PREFIX = "explain: "
DATASET_FORMATS = ("prompt_completion", "chat", "generate_content", "text_pair", "codechat")


class TuningConfig(BaseModel):
    """What a caller asks for. ``None`` means "the catalog's recommended value"."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    base_model: str = Field(description="Catalog model id, e.g. meta/llama3_1@llama-3.1-8b or tiny-llama.")
    custom_base_model: str | None = Field(
        default=None,
        description="Folder (local or gs://) with weights of the same architecture, or an earlier "
        "run's output (full model or LoRA adapter) to continue tuning.",
    )
    tuning_mode: TuningMode = Field(default=TuningMode.PEFT_ADAPTER, description="PEFT_ADAPTER (LoRA) or FULL.")
    method: Literal["supervised", "preference", "distillation"] = Field(
        default="supervised",
        description="supervised: learn the replies (SFT); preference: learn to prefer each line's preferred "
        "completion over its dispreferred one (DPO), from the base or an earlier run's output; distillation: a "
        "teacher labels and explains the prompts and the model learns both (distillation step by step).",
    )
    teacher: str | None = Field(
        default=None,
        description="Distillation: the teacher, a catalog id, a registered model or endpoint "
        "(projects/…/models/ID, …/endpoints/ID), a model folder or an OpenAI-compatible URL.",
    )
    beta: float | None = Field(
        default=None,
        gt=0,
        description="Preference tuning: DPO's beta, how strongly the model may move away from where it started "
        "(catalog default 0.1).",
    )
    train_dataset: str = Field(description="Training JSONL (local path or gs:// URI).")
    validation_dataset: str | None = Field(default=None, description="Validation JSONL, evaluated every eval_steps.")
    output_uri: str = Field(
        description="Output folder or gs:// URI; the final model goes to "
        "postprocess/node-0/checkpoints/final inside it."
    )

    epochs: float | None = Field(
        default=None, gt=0, le=MAX_EPOCHS, description="Passes over the training set (catalog default)."
    )
    max_steps: int | None = Field(
        default=None,
        gt=0,
        le=MAX_STEPS,
        description="Train this many optimizer steps instead of epochs (pipelines' train_steps).",
    )
    learning_rate: float | None = Field(default=None, gt=0, le=1, description="Absolute peak learning rate.")
    learning_rate_multiplier: float | None = Field(
        default=None, gt=0, le=MAX_LR_MULTIPLIER, description="Multiplies the catalog's recommended rate."
    )
    adapter_size: int | None = Field(default=None, description="LoRA rank: 1, 2, 4, 8, 16 or 32.")
    lora_alpha: float | None = Field(default=None, gt=0, description="LoRA alpha (default 2 x rank).")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the LoRA layers' input.")
    tune_vision_tower: bool = Field(
        default=False,
        description="Image-text models: adapt the vision tower and projector too (frozen by default; LoRA only).",
    )
    tune_experts: bool | None = Field(
        default=None,
        description="Mixture-of-experts models (Llama 4): adapt the routed experts' fused weights too (peft "
        "target_parameters). Default: yes when lora_dropout is 0, which peft needs for them.",
    )
    batch_size: int | None = Field(default=None, gt=0, le=MAX_BATCH, description="Examples per optimizer step.")
    micro_batch_size: int | None = Field(
        default=None,
        gt=0,
        description="Examples per forward pass; gradients accumulate over batch_size / micro_batch_size passes "
        "(default: the whole batch at once).",
    )
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1, description="Fraction of steps of linear warm-up.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(default="cosine", description="Decay after warm-up.")
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1, description="Final learning rate as a fraction of the peak.")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float | None = Field(default=1.0, gt=0, description="Clip the gradient's norm to this.")

    eval_steps: int | None = Field(
        default=None,
        gt=0,
        description="Evaluate the validation set every N steps (default: about 10 times per run, and at the end).",
    )
    save_steps: int | None = Field(
        default=None, gt=0, description="Save a resumable checkpoint every N steps (always at the end of each epoch)."
    )
    keep_checkpoints: int = Field(default=2, ge=1, description="Resumable checkpoints kept on disk (plus the best).")
    early_stopping: bool = Field(default=False, description="Stop when eval token accuracy stops improving.")
    early_stopping_patience: int = Field(
        default=2, ge=1, description="Evaluations without improvement before stopping."
    )
    early_stopping_min_delta: float = Field(default=0.0, ge=0, description="Improvement that counts.")
    checkpoint_selection: Literal["last", "best"] = Field(
        default="last", description="Final model: the last step, or the best-evaluated checkpoint."
    )

    packing: Literal["auto", "on", "off"] = Field(
        default="auto", description="Pack short examples into shared rows (auto: when it saves padding)."
    )
    strict_length: bool = Field(default=False, description="Reject over-long examples instead of truncating them.")
    export_merged: bool = Field(
        default=False, description="LoRA: also write the adapter merged into the base, under final/merged."
    )
    tensorboard: str | None = Field(
        default=None,
        description="Vertex TensorBoard resource (bare id or projects/…/tensorboards/ID): events also go "
        "to <home>/tensorboards/<ID>/<run>, besides the run's own tensorboard/ folder.",
    )
    dataset_format: Literal["prompt_completion", "chat", "generate_content", "text_pair", "codechat"] | None = Field(
        default=None,
        description="Read every line as this format (pipelines: text_pair for input_text/output_text, "
        "codechat for author/content messages); default: detected per file.",
    )
    default_context: str | None = Field(
        default=None,
        description="System prompt for examples that bring none (code chat's default_context); "
        "saved with the model so serving applies it too.",
    )
    rationale_weight: float | None = Field(
        default=None,
        gt=0,
        description="Distillation step-by-step: examples whose prompt starts with 'explain: ' "
        "are the rationale task; loss = label loss + rationale_weight x rationale loss (each the mean over its own "
        "target tokens), and the saved model answers 'predict: ' (label only) by default.",
    )
    fast_path: bool = Field(
        default=True,
        description="Packed varlen micro-batches by token budget, loss on target tokens only in chunks "
        "(no full logits), host work prefetched, fused optimizer (train/fastpath.py); False: the reference step.",
    )
    micro_batch_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Fast path: tokens per micro-batch (default: micro_batch_size x the longest "
        "example, so memory never exceeds the reference step's).",
    )
    attention: Literal["auto", "sdpa", "flex_attention", "flash_attention_2", "eager"] = Field(
        default="auto",
        description="Attention kernel (auto: flash_attention_2 on CUDA when flash-attn is installed, "
        "else SDPA). Packed rows never attend across examples with any of them.",
    )
    activation_checkpointing: bool = Field(
        default=False,
        description="Recompute each decoder layer's activations in the backward pass (less memory, "
        "about a third more compute).",
    )
    kernels: Literal["none", "liger"] = Field(
        default="none", description="liger: Liger's Triton RMSNorm, RoPE and SwiGLU (CUDA, `pip install liger-kernel`)."
    )
    compile: bool = Field(default=False, description="torch.compile each decoder layer (regional compilation).")
    seed: int = Field(
        default=42, ge=0, lt=2**63, description="Seed of the weights' init (LoRA), the data order and sampling."
    )
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Weights' dtype (auto: bfloat16 on CUDA devices that have it, else float32)."
    )
    dev: bool | None = Field(default=None, description="Dev mode: run models without weights on their tiny stand-in.")

    @classmethod
    def build(cls, names: dict[str, str] | None = None, **fields: Any) -> TuningConfig:
        """A config from a request, its rules' errors as one InvalidArgument that calls each field by ``names``
        (what the request calls it: ``supervisedTuningSpec.hyperParameters.learningRate``), so a rule is
        declared once, here, whichever front door it is broken through."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise InvalidArgument(config_errors(exc, names or {})) from None

    @field_validator("tuning_mode", mode="before")
    @classmethod
    def _mode(cls, value):
        return TuningMode.parse(value)

    @field_validator("adapter_size")
    @classmethod
    def _adapter(cls, value):
        if value is not None and value not in ADAPTER_SIZES:
            raise ValueError(f"adapter_size must be one of {', '.join(map(str, ADAPTER_SIZES))} (got {value})")
        return value

    @field_validator("dataset_format", mode="before")
    @classmethod
    def _format(cls, value):
        if value is not None and value not in DATASET_FORMATS:
            raise ValueError(f"dataset_format must be one of {', '.join(DATASET_FORMATS)} (got {value!r})")
        return value

    @field_validator("tensorboard")
    @classmethod
    def _tensorboard(cls, value):
        if value is None:
            return value
        tb_id = value.rstrip("/").rsplit("/", 1)[-1]
        if not tb_id or not all(c.isalnum() or c in "-_" for c in tb_id):
            raise ValueError(f"tensorboard must be a TensorBoard id or projects/…/tensorboards/ID (got {value!r})")
        return value

    @model_validator(mode="after")
    def _exclusive(self):
        if self.learning_rate is not None and self.learning_rate_multiplier is not None:
            raise ValueError("give learning_rate or learning_rate_multiplier, not both")
        if self.method == "preference" and (self.rationale_weight is not None or self.dataset_format is not None):
            raise ValueError("preference tuning reads preference lines (contents + completions) and has one task")
        if (self.method == "distillation") != (self.teacher is not None):
            raise ValueError("distillation needs a teacher, and only distillation has one")
        if self.beta is not None and self.method != "preference":
            raise ValueError("beta applies to preference tuning only; remove it or use method preference")
        if self.tune_experts and self.lora_dropout:
            raise ValueError(
                "tune_experts needs lora_dropout 0 (peft cannot apply dropout to the experts' fused weights); "
                "set lora_dropout 0, or tune_experts false"
            )
        if self.adapter_size is not None and self.tuning_mode == TuningMode.FULL:
            raise ValueError(
                "adapter_size applies to PEFT_ADAPTER tuning only; remove it or use tuning_mode PEFT_ADAPTER"
            )
        return self


def config_errors(exc: ValidationError, names: dict[str, str]) -> str:
    """The problems of a config in the request's own field names."""
    pattern = (
        re.compile(r"\b(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b") if names else None
    )
    out = []
    for e in exc.errors(include_url=False):
        field = ".".join(str(p) for p in e["loc"])
        text = str(e["ctx"]["error"]) if e["type"] == "value_error" else f"{field}: {e['msg']}"
        out.append(pattern.sub(lambda m: names[m.group(1)], text) if pattern else text)
    return "; ".join(out)


class ResolvedRun(BaseModel):
    """The run as it will happen: catalog defaults x the caller's values, resolved once by the recipe. Saved as
    ``resolved`` in the model's tuneforge_config.json, compared on resume, and handed to the worker and pipelines."""

    model_config = ConfigDict(extra="forbid")

    tuning_mode: str
    max_seq_len: int
    epochs: float
    epochs_effective: float
    total_steps: int
    steps_per_epoch: int
    batch_size: int
    micro_batch_size: int
    gradient_accumulation: int
    learning_rate: float
    warmup_steps: int
    lr_scheduler: str
    adapter_size: int | None
    lora_alpha: float | None
    eval_steps: int | None
    save_steps: int
    packing: bool
    processes: int
    device: str
    dtype: str
    train_examples: int
    validation_examples: int
    beta: float | None = None  # preference tuning
