"""Models for serving tests: one FULL-tuned to answer in a fixed format, random LoRA adapters on one base."""

from __future__ import annotations

import json
import random
from pathlib import Path

FIXED_ANSWER = "ANSWER: 42 (tuned)"
SYSTEM = "You answer in the house format."


def train_fixed_format(root: Path, settings, answer: str = FIXED_ANSWER) -> Path:
    """tiny-llama FULL-tuned until every user message gets ``answer`` (a few seconds on the CPU), from its random
    init: the shipped pre-training copies the question, and unlearning that takes more than these 40 steps."""
    from tuneforge.train import TuningConfig, run_sft
    from tuneforge.train.demo_task import random_init

    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    data = root / "fixed.jsonl"
    with data.open("w") as f:
        for _ in range(64):
            word = "".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 8)))
            f.write(json.dumps({"prompt": f"question {word}?", "completion": answer}) + "\n")
    config = TuningConfig(
        base_model="tiny-llama",
        custom_base_model=str(random_init(root)),
        tuning_mode="FULL",
        train_dataset=str(data),
        output_uri=str(root / "fixed-run"),
        max_steps=40,
        batch_size=16,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        device="cpu",
        seed=0,
    )
    result = run_sft(config, settings=settings)
    return Path(result.final_dir)


def random_adapter(base_dir: Path, out: Path, seed: int, rank: int = 4) -> Path:
    """A LoRA adapter with random (non-zero) weights on ``base_dir``: each seed answers differently."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir))
    cfg = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(out))
    cfg_path = out / "adapter_config.json"
    adapter_cfg = json.loads(cfg_path.read_text())
    adapter_cfg["base_model_name_or_path"] = str(base_dir)
    cfg_path.write_text(json.dumps(adapter_cfg))
    return out


def chaotic_copy(src: Path, out: Path, scale: float = 0.3) -> Path:
    """A copy of a tiny model with noisy weights, so greedy answers vary with the prompt (tests can tell them apart)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(src))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(out))
    return out
