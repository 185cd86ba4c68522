"""Memory and time of the output projection + cross-entropy: full logits (the reference step) vs tuneforge's chunked
``LinearCrossEntropy``, forward and backward, at Llama 3's vocabulary.

    .venv/bin/python bench/loss_memory.py                        # CPU: peak resident memory of a fresh process
    python bench/loss_memory.py --device cuda --dtype bfloat16   # GPU: torch.cuda.max_memory_allocated

Each variant runs in its own process; reported is the peak memory above what the inputs (hidden states, head
weight) already take, and the wall time of one forward + backward after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def run_variant(variant: str, tokens: int, hidden: int, vocab: int, device: str, dtype: torch.dtype) -> dict:
    from tuneforge.train.fastpath import LinearCrossEntropy, default_chunk

    torch.manual_seed(0)
    h = (torch.randn(tokens, hidden, device=device, dtype=dtype) * 0.5).requires_grad_(True)
    w = (torch.randn(vocab, hidden, device=device, dtype=dtype) * 0.02).requires_grad_(True)
    targets = torch.randint(0, vocab, (tokens,), device=device)
    ones = torch.ones(tokens, device=device)
    tasks = torch.zeros(tokens, dtype=torch.long, device=device)

    def step():
        if variant == "full-logits":
            logits = (h @ w.t()).float()
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        else:
            loss, _, _ = LinearCrossEntropy.apply(h, w, targets, ones, tasks, default_chunk(vocab), True)
        loss.backward()
        h.grad = w.grad = None
        return float(loss)

    def peak() -> float:
        if device.startswith("cuda"):
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    before = peak()
    loss = step()  # warm-up (and the peak: the same allocations every time)
    sync()
    started = time.perf_counter()
    step()
    sync()
    seconds = time.perf_counter() - started
    return {"variant": variant, "loss": loss, "peak_mib_above_inputs": peak() - before, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=4096, help="trained tokens in the micro-batch")
    ap.add_argument("--hidden", type=int, default=2048, help="hidden size (Llama-3.2-1B: 2048)")
    ap.add_argument("--vocab", type=int, default=128256, help="vocabulary (Llama 3: 128,256)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.tokens, args.hidden, args.vocab, args.device, dtype)))
        return
    rows = []
    for variant in ("full-logits", "chunked"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--tokens",
                str(args.tokens),
                "--hidden",
                str(args.hidden),
                "--vocab",
                str(args.vocab),
                "--device",
                args.device,
                "--dtype",
                args.dtype,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"{args.tokens} tokens x hidden {args.hidden} x vocabulary {args.vocab:,}, {args.dtype}, {args.device}, "
        f"torch {torch.__version__}"
    )
    print("| variant | peak memory above inputs (MiB) | forward + backward (s) | loss |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['variant']} | {r['peak_mib_above_inputs']:,.0f} | {r['seconds']:.2f} | {r['loss']:.2f} |")


if __name__ == "__main__":
    main()
