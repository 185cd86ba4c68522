"""Training throughput: tuneforge's engine against TRL's SFTTrainer (defaults, and its best options), in one run.

Same random-init model (saved once, loaded by every configuration), same token sequences, same loss mask, bf16.

    # on a GPU (docs/benchmarks.md); TRL and Liger travel as wheels to the device machine
    python bench/train_throughput.py --workload 1b-full --device cuda
    python bench/train_throughput.py --workload 8b-lora --device cuda
    # on the CPU: a small shape that runs every code path (not a measurement)
    python bench/train_throughput.py --workload tiny-full --device cpu --steps 6 --warmup 2

Workloads (the issue's): Llama-3.2-1B's shape, FULL; Llama-3.1-8B's shape, LoRA rank 16 on all linear layers with
activation checkpointing. Examples: lognormal lengths (median 350 tokens, sigma 0.8, clipped to 32..2048), the first
third a prompt (not trained), a fixed seed. The tokens are bytes of the tiny byte-level tokenizer (ids < 300) in a
model with Llama 3's 128,256-row vocabulary, so the output head costs what it costs in the real model.

Each configuration runs in a fresh process. Reported per configuration:
- trained tokens/s: non-pad tokens of the steps after warm-up over their wall time (device synchronised);
- MFU: 6 N tokens/s (FULL) or 4 N tokens/s (LoRA: no weight gradients for the frozen base) over the GPU's dense
  bf16 peak; N counts every weight but the input embedding (the output head included); attention FLOPs are not
  counted, as is usual;
- peak GPU memory (torch.cuda.max_memory_allocated);
- the mean loss of the last 5 steps (a wrong mask or cross-example attention shows as a different loss).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

WORKLOADS = {
    # Llama-3.2-1B: tied embeddings, 16 layers.
    "1b-full": dict(
        mode="FULL",
        catalog="meta/llama3-2@llama-3.2-1b-instruct",
        lr=1e-5,
        checkpointing=False,
        config=dict(
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            tie_word_embeddings=True,
            head_dim=64,
        ),
    ),
    # Llama-3.1-8B: untied, 32 layers; LoRA r16 on every linear layer, activation checkpointing.
    "8b-lora": dict(
        mode="PEFT_ADAPTER",
        catalog="meta/llama3_1@llama-3.1-8b",
        lr=1e-4,
        checkpointing=True,
        config=dict(
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            tie_word_embeddings=False,
            head_dim=128,
        ),
    ),
    # Small shapes for the CPU: every code path, in minutes.
    "tiny-full": dict(
        mode="FULL",
        catalog="meta/llama3-2@llama-3.2-1b-instruct",
        lr=1e-4,
        checkpointing=False,
        config=dict(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            head_dim=32,
        ),
        vocab=1024,
    ),
    "tiny-lora": dict(
        mode="PEFT_ADAPTER",
        catalog="meta/llama3_1@llama-3.1-8b",
        lr=1e-3,
        checkpointing=True,
        config=dict(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            head_dim=32,
        ),
        vocab=1024,
    ),
}
LLAMA3_VOCAB = 128256
MAX_LENGTH = 2048
ROW_TOKENS = 8192  # tokens per optimizer step for the packed configurations (4 rows of 2,048)

# What each configuration is. "trl-*" run TRL's SFTTrainer; "tuneforge*" run tuneforge's run_sft.
CONFIGS = {
    "trl-default": dict(engine="trl", note="SFTTrainer defaults: padded batches of 8 examples, SDPA"),
    "trl-best": dict(
        engine="trl",
        packing=True,
        attention="flex_attention",
        liger=True,
        note="packing (best-fit decreasing), padding-free, flex attention, Liger kernels",
    ),
    "trl-packed": dict(
        engine="trl",
        packing=True,
        note="packing (best-fit decreasing), padding-free, default attention, no Liger (runs on a CPU)",
    ),
    "trl-best-flash": dict(
        engine="trl",
        packing=True,
        attention="flash_attention_2",
        liger=True,
        note="as trl-best with flash-attn's varlen kernel (needs flash-attn)",
    ),
    "tuneforge": dict(engine="tuneforge", note="fast path, default options (SDPA with packed rows)"),
    "tuneforge-flex": dict(engine="tuneforge", attention="flex_attention", note="fast path, flex attention"),
    "tuneforge-flash": dict(engine="tuneforge", attention="flash_attention_2", note="fast path, flash-attn varlen"),
    "tuneforge-liger": dict(engine="tuneforge", liger=True, note="fast path + Liger RMSNorm/RoPE/SwiGLU"),
    "tuneforge-compile": dict(engine="tuneforge", compile=True, note="fast path + torch.compile per decoder layer"),
    "tuneforge-reference": dict(engine="tuneforge", reference=True, note="the reference step (padded, full logits)"),
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


# --- the shared inputs -------------------------------------------------------------------------------------------


def example_lengths(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [min(MAX_LENGTH, max(32, round(math.exp(rng.gauss(math.log(350), 0.8))))) for _ in range(n)]


def build_inputs(workload: str, work: Path, n_examples: int, seed: int) -> dict:
    """The model folder (random init, bf16, byte tokenizer) and the dataset, once for every configuration."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from tuneforge.catalog.weights import materialize
    from tuneforge.settings import Settings

    spec = WORKLOADS[workload]
    model_dir = work / f"model-{workload}"
    if not (model_dir / "config.json").exists():
        tiny = materialize("builtin:tiny-llama", Settings(home=work / "home"))
        tokenizer = AutoTokenizer.from_pretrained(str(tiny))
        config = LlamaConfig(
            vocab_size=spec.get("vocab", LLAMA3_VOCAB),
            max_position_embeddings=8192,
            rope_theta=500000.0,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **spec["config"],
        )
        torch.manual_seed(seed)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(str(model_dir))
        tokenizer.save_pretrained(str(model_dir))
        del model
    data = work / f"train-{n_examples}-{seed}.jsonl"
    if not data.exists():
        rng = random.Random(seed + 1)
        overhead = 12  # chat-template tokens around the two turns
        with data.open("w") as f:
            for n in example_lengths(n_examples, seed):
                body = max(2, n - overhead)
                prompt = max(1, n // 3 - overhead + 2)
                text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(body))
                f.write(json.dumps({"prompt": text[:prompt], "completion": text[prompt:]}) + "\n")
    return {"model_dir": str(model_dir), "data": str(data)}


def token_rows(model_dir: str, data: str) -> list[dict]:
    """tuneforge's tokenisation of the dataset (the chat template, the loss mask), for TRL to train on as is."""
    from transformers import AutoTokenizer

    from tuneforge.data import ChatEncoder, Report, parse_lines

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = ChatEncoder(tokenizer, "<|eot_id|>")
    lines = Path(data).read_text().splitlines()
    rows = []
    for conv in parse_lines(lines, Report()):
        e = encoder.encode(conv)
        rows.append({"input_ids": e.input_ids, "completion_mask": [int(x != -100) for x in e.labels]})
    return rows


def counted_parameters(model) -> int:
    embed = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not embed) + (
        embed.numel() if model.get_output_embeddings().weight is embed else 0
    )  # a tied head is the output projection


# --- one configuration (a child process) -------------------------------------------------------------------------


class StepClock:
    """Wall time of each optimizer step, the device synchronised at both ends."""

    def __init__(self, device: str):
        self.device = device
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.losses: list[float] = []
        self._t = None

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def begin(self) -> None:
        self.sync()
        self._t = time.perf_counter()

    def stop(self) -> None:
        self.sync()
        self.times.append(time.perf_counter() - self._t)

    def end(self, tokens: int, loss: float) -> None:
        self.stop()
        self.tokens.append(tokens)
        self.losses.append(loss)


def run_tuneforge(cfg: dict, spec: dict, inputs: dict, args, clock: StepClock) -> None:
    from tuneforge.settings import Settings
    from tuneforge.train import Callbacks, TuningConfig, run_sft

    class Clocked(Callbacks):
        def on_start(self, total_steps, start_step, info):
            clock.begin()

        def on_step(self, step, total_steps, metrics):
            clock.end(metrics["step_tokens"], metrics["train_total_loss"])
            clock.begin()

    config = TuningConfig(
        base_model=spec["catalog"],
        custom_base_model=inputs["model_dir"],
        tuning_mode=spec["mode"],
        train_dataset=inputs["data"],
        output_uri=str(Path(args.work) / f"out-{args.child}"),
        max_steps=args.steps,
        batch_size=args.examples_per_step,
        learning_rate=spec["lr"],
        lr_scheduler="constant",
        warmup_ratio=0.0,
        adapter_size=16 if spec["mode"] == "PEFT_ADAPTER" else None,
        lora_alpha=32 if spec["mode"] == "PEFT_ADAPTER" else None,
        packing="on",
        device=args.device,
        dtype="bfloat16" if args.device.startswith("cuda") else "float32",
        fast_path=not cfg.get("reference"),
        micro_batch_tokens=ROW_TOKENS,
        micro_batch_size=4 if cfg.get("reference") else None,
        attention=cfg.get("attention", "auto"),
        activation_checkpointing=spec["checkpointing"],
        kernels="liger" if cfg.get("liger") else "none",
        compile=bool(cfg.get("compile")),
        save_steps=10**6,
        seed=args.seed,
    )
    run_sft(config, settings=Settings(home=Path(args.work) / "home"), callbacks=Clocked())


def run_trl(cfg: dict, spec: dict, inputs: dict, args, clock: StepClock) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    extra = {"attn_implementation": cfg["attention"]} if cfg.get("attention") else {}
    model = AutoModelForCausalLM.from_pretrained(inputs["model_dir"], dtype=dtype, **extra)
    tokenizer = AutoTokenizer.from_pretrained(inputs["model_dir"])
    rows = token_rows(inputs["model_dir"], inputs["data"])
    dataset = Dataset.from_list(rows)

    seen = {"tokens": torch.zeros((), dtype=torch.long)}

    def count_tokens(module, a, kw):  # non-pad tokens of every forward, summed on the device (no sync)
        ids = kw.get("input_ids")
        mask = kw.get("attention_mask")
        n = mask.sum() if mask is not None else torch.tensor(ids.numel(), device=ids.device)
        seen["tokens"] = seen["tokens"].to(n.device) + n

    model.register_forward_pre_hook(count_tokens, with_kwargs=True)

    class Clocked(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.before = int(seen["tokens"])  # a device read: before the clock starts
            clock.begin()

        def on_step_end(self, a, state, control, **kw):
            clock.stop()
            clock.tokens.append(int(seen["tokens"]) - self.before)

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                clock.losses.append(float(logs["loss"]))

    packing = bool(cfg.get("packing"))
    options = dict(
        output_dir=str(Path(args.work) / f"out-{args.child}"),
        max_length=MAX_LENGTH,
        max_steps=args.steps,
        learning_rate=spec["lr"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        bf16=dtype == torch.bfloat16,
        use_cpu=not args.device.startswith("cuda"),
        completion_only_loss=True,
        gradient_checkpointing=spec["checkpointing"],
        seed=args.seed,
        dataloader_num_workers=0,
    )
    if spec["checkpointing"]:
        options["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if packing:  # the same tokens per step as tuneforge's packed steps: 4 rows of 2,048
        options.update(
            packing=True,
            packing_strategy="bfd",
            padding_free=True,
            per_device_train_batch_size=ROW_TOKENS // MAX_LENGTH,
        )
    if cfg.get("liger"):
        options["use_liger_kernel"] = True
    peft_config = None
    if spec["mode"] == "PEFT_ADAPTER":
        from peft import LoraConfig

        peft_config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**options),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[Clocked()],
    )
    trainer.train()


def child(args) -> None:
    spec = WORKLOADS[args.workload]
    cfg = CONFIGS[args.child]
    inputs = json.loads(Path(args.inputs).read_text())
    missing = [
        m
        for m, need in (
            ("trl", cfg["engine"] == "trl"),
            ("liger_kernel", cfg.get("liger")),
            ("flash_attn", cfg.get("attention") == "flash_attention_2"),
        )
        if need and importlib.util.find_spec(m) is None
    ]
    result = {"config": args.child, "note": cfg["note"]}
    if missing:
        result["skipped"] = f"not installed: {', '.join(missing)}"
    else:
        clock = StepClock(args.device)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        (run_trl if cfg["engine"] == "trl" else run_tuneforge)(cfg, spec, inputs, args, clock)
        measured = slice(args.warmup, None)
        tokens, seconds = sum(clock.tokens[measured]), sum(clock.times[measured])
        result.update(
            steps=len(clock.times),
            measured_steps=len(clock.times[measured]),
            tokens=tokens,
            seconds=seconds,
            tokens_per_second=tokens / max(seconds, 1e-9),
            final_loss=sum(clock.losses[-5:]) / max(len(clock.losses[-5:]), 1),
            peak_memory_gib=(torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None),
        )
    Path(args.result).write_text(json.dumps(result))


# --- the run -----------------------------------------------------------------------------------------------------


def peak_flops(device: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "trl", "liger-kernel", "flash-attn", "tuneforge"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="tiny-full")
    ap.add_argument(
        "--configs", default="trl-default,trl-best,tuneforge", help=f"comma-separated, from: {', '.join(CONFIGS)}"
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10, help="steps not timed (compilation, allocator warm-up)")
    ap.add_argument(
        "--examples-per-step",
        type=int,
        default=17,
        help="tuneforge's batch (about 8,192 tokens at a 482-token mean, as TRL's packed 4 x 2,048)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (default: looked up by name)")
    ap.add_argument("--work", help="folder for the model, data and outputs (default: a temporary one)")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    work = Path(args.work or tempfile.mkdtemp(prefix="tf-train-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    spec = WORKLOADS[args.workload]
    n_examples = args.steps * max(args.examples_per_step, 8 * 4) + 64  # enough for every configuration's steps
    inputs = build_inputs(args.workload, work, n_examples, args.seed)
    (work / "inputs.json").write_text(json.dumps(inputs))

    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        n_params = counted_parameters(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(inputs["model_dir"])))
    flops_per_token = (6 if spec["mode"] == "FULL" else 4) * n_params
    peak = peak_flops(args.device, args.peak_tflops)

    results = []
    for name in args.configs.split(","):
        out = work / f"result-{name}.json"
        cmd = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--workload",
            args.workload,
            "--inputs",
            str(work / "inputs.json"),
            "--result",
            str(out),
            "--device",
            args.device,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--examples-per-step",
            str(args.examples_per_step),
            "--seed",
            str(args.seed),
            "--work",
            str(work),
        ]
        print(f"[{name}] running…", flush=True)
        done = subprocess.run(
            cmd, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}, capture_output=True, text=True
        )
        if done.returncode != 0 or not out.exists():
            results.append(
                {
                    "config": name,
                    "note": CONFIGS[name]["note"],
                    "failed": (done.stderr or done.stdout).strip().splitlines()[-1:],
                }
            )
            print(done.stderr[-4000:], file=sys.stderr)
            continue
        result = json.loads(out.read_text())
        if "tokens_per_second" in result:
            result["mfu"] = flops_per_token * result["tokens_per_second"] / peak if peak else None
        results.append(result)

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    report = {
        "workload": args.workload,
        "device": device,
        "versions": versions(),
        "counted_parameters": n_params,
        "steps": args.steps,
        "warmup": args.warmup,
        "results": results,
    }
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


def render(report: dict) -> str:
    lines = [
        f"workload {report['workload']} on {report['device']}; N = {report['counted_parameters']:,}; "
        f"{report['steps']} steps, first {report['warmup']} not timed",
        "versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v),
        "",
        "| configuration | trained tokens/s | MFU | peak memory (GiB) | final loss | what it is |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in report["results"]:
        if "tokens_per_second" not in r:
            why = r.get("skipped") or f"failed: {' '.join(r.get('failed', []))}"
            lines.append(f"| {r['config']} | – | – | – | – | {r['note']} ({why}) |")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        mem = f"{r['peak_memory_gib']:.1f}" if r.get("peak_memory_gib") is not None else "n/a"
        lines.append(
            f"| {r['config']} | {r['tokens_per_second']:,.0f} | {mfu} | {mem} | {r['final_loss']:.5f} | {r['note']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
