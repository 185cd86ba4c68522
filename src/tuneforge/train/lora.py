"""LoRA, rank = the job's adapter size.

Text models: every linear layer of the decoder (not the output head). Image-text models: the language model's
linear layers (attention, the shared expert's MLP; not the MoE router, whose choice of expert LoRA would perturb)
and, with ``experts``, the routed experts, whose weights are fused 3-D parameters (Llama 4's ``gate_up_proj`` and
``down_proj``: peft's ``target_parameters``, a rank-r pair for each expert). peft's layers for those take no dropout
and no mixed-adapter batch; serving runs an image-text model's batches one adapter at a time (infer.engine). The
vision tower and the projector stay frozen unless ``vision_tower`` asks for them. What was adapted is in the
adapter's own ``adapter_config.json`` (``target_modules``, ``target_parameters``), which plain peft reads back.
"""

from __future__ import annotations

from torch import nn

from tuneforge.train.fastpath import text_decoder

FUSED_EXPERTS = ("gate_up_proj", "down_proj")  # Llama 4's Llama4TextExperts parameters: [experts, in, out]


def lora_targets(model, vision_tower: bool = False, experts: bool = False) -> dict:
    """``target_modules`` / ``target_parameters`` for ``model`` (peft's "all-linear" for a text-only model)."""
    if "vision_config" not in model.config.to_dict():
        return {"target_modules": "all-linear"}
    decoder = text_decoder(model)
    language = next(name for name, module in model.named_modules() if module is decoder)
    modules, parameters = [], []
    head = model.get_output_embeddings()
    for name, module in model.named_modules():
        in_language = name.startswith(language + ".")
        linear = isinstance(module, nn.Linear) and module is not head and not name.endswith("router")
        if linear and (in_language or vision_tower):  # the vision tower and projector: only when asked
            modules.append(name)
        if experts and in_language and name.endswith(".experts") and all(hasattr(module, p) for p in FUSED_EXPERTS):
            parameters += [f"{name}.{p}" for p in FUSED_EXPERTS]
    return {"target_modules": modules, **({"target_parameters": parameters} if parameters else {})}


def apply_lora(model, rank: int, alpha: float, dropout: float, vision_tower: bool = False, experts: bool = False):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        task_type="CAUSAL_LM",
        **lora_targets(model, vision_tower, experts),
    )
    return get_peft_model(model, config)


def load_adapter(model, adapter_dir, trainable: bool):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
