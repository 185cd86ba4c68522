"""LoRA on every linear layer of the decoder (not the output head), rank = the job's adapter size."""

from __future__ import annotations


def apply_lora(model, rank: int, alpha: float, dropout: float):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules="all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_adapter(model, adapter_dir, trainable: bool):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
