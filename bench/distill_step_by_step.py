"""Distillation step by step vs label-only fine-tuning at equal data size (the table in docs/quality.md).

Task: two-step arithmetic word problems generated programmatically, in terse form ("7 bags of 6, minus 9?" -> "33").
The teacher is exact: a program that writes the correct rationale ("7*6=42. 42-9=33.") and label, so the
comparison measures what rationales teach, not teacher quality.

Students are tiny-llama (random init, 4 layers, hidden 128, byte-level tokens) trained from scratch (FULL) on the
CPU with the real recipes: label-only runs ``run_sft`` on ``predict: <problem>`` -> label lines; step-by-step runs
``run_distill`` (teacher step, multi-task lines, loss = label loss + 1.0 x rationale loss). Both train the same
number of optimizer steps with the same batch size, learning rate and seed. Held-out problems never appear in
training; answers are greedy decodes of ``predict: <problem>`` by the serving engine, scored by exact match.

    .venv/bin/python bench/distill_step_by_step.py                       # 3 sizes x 3 seeds (about 20 min on 2 cores)
    .venv/bin/python bench/distill_step_by_step.py --sizes 250 --seeds 0 --steps 200   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers

TEMPLATES = [
    # (problem, rationale and answer) from (a, b, c); terse, so a 4-layer byte-level student trains fast on 2 cores
    (
        lambda a, b, c: f"{a} bags of {b}, minus {c}?",
        lambda a, b, c: (f"{a}*{b}={a * b}. {a * b}-{c}={a * b - c}.", a * b - c),
    ),
    (
        lambda a, b, c: f"{a} packs of {b}, plus {c}?",
        lambda a, b, c: (f"{a}*{b}={a * b}. {a * b}+{c}={a * b + c}.", a * b + c),
    ),
    (
        lambda a, b, c: f"{a} and {b} boxes of {c}?",
        lambda a, b, c: (f"{a}+{b}={a + b}. {a + b}*{c}={(a + b) * c}.", (a + b) * c),
    ),
]


def problem(rng: random.Random, top: int = 9) -> dict:
    t = rng.randrange(len(TEMPLATES))
    a, b, c = rng.randint(2, top), rng.randint(2, top), rng.randint(1, top)
    question, solve = TEMPLATES[t]
    rationale, answer = solve(a, b, c)
    return {"input_text": question(a, b, c), "output_text": str(answer), "rationale": rationale}


def make_split(n_train: int, n_test: int, seed: int, top: int = 9) -> tuple[list[dict], list[dict]]:
    """Disjoint train and held-out problems (by text)."""
    distinct = len(TEMPLATES) * (top - 1) ** 2 * top
    if n_train + n_test > distinct:
        raise SystemExit(
            f"operands up to {top} give {distinct} distinct problems; ask for fewer than {n_train + n_test}"
        )
    rng = random.Random(1000 + seed)
    test, seen = [], set()
    while len(test) < n_test:
        p = problem(rng, top)
        if p["input_text"] not in seen:
            seen.add(p["input_text"])
            test.append(p)
    train = []
    while len(train) < n_train:
        p = problem(rng, top)
        if p["input_text"] not in seen:
            seen.add(p["input_text"])
            train.append(p)
    return train, test


class ExactTeacher:
    """Knows the right rationale and answer of every generated problem."""

    name = "exact-arithmetic-teacher"

    def __init__(self, problems: list[dict]):
        self.known = {p["input_text"]: p for p in problems}

    def explain(self, examples, fewshot=None, should_stop=None):
        from tuneforge.train.recipes.distill import TeacherOutput

        return [
            TeacherOutput(self.known[e.input_text]["rationale"], self.known[e.input_text]["output_text"])
            for e in examples
        ]


def exact_match(final_dir: Path, test: list[dict]) -> float:
    from tuneforge.infer.offline import generate_offline
    from tuneforge.infer.sampling import SamplingParams
    from tuneforge.train.config import PREDICT_PREFIX
    from tuneforge.train.recipes.distill import answer_matches

    # Both students get the same explicit "predict: " prompt (the step-by-step student's serving rule leaves a
    # prompt that already carries a task prefix as it is).
    texts = generate_offline(
        final_dir,
        None,
        [PREDICT_PREFIX + p["input_text"] for p in test],
        SamplingParams(max_tokens=8, temperature=0.0),
        device="cpu",
        max_batch=64,
    )
    return sum(answer_matches(t, p["output_text"]) for t, p in zip(texts, test)) / len(test)


def run(
    method: str, train: list[dict], test: list[dict], seed: int, steps: int, batch: int, lr: float, root: Path
) -> dict:
    from tuneforge.settings import get_settings
    from tuneforge.train.config import TuningConfig
    from tuneforge.train.demo_task import random_init
    from tuneforge.train.recipes.distill import Truncation, multitask_lines, run_distill
    from tuneforge.train.recipes.sft import run_sft

    folder = root / f"{method}-{len(train)}-{seed}"
    folder.mkdir(parents=True)
    raw = folder / "train.jsonl"
    raw.write_text(
        "".join(json.dumps({"input_text": p["input_text"], "output_text": p["output_text"]}) + "\n" for p in train)
    )
    config = TuningConfig(
        base_model="tiny-llama",
        custom_base_model=str(random_init(root)),  # from scratch, as the figures in docs/quality.md were measured
        tuning_mode="FULL",
        train_dataset=str(raw),
        output_uri=str(folder / "out"),
        max_steps=steps,
        batch_size=batch,
        learning_rate=lr,
        seed=seed,
        device="cpu",
        warmup_ratio=0.05,
    )
    started = time.perf_counter()
    if method == "step-by-step":
        _, result = run_distill(config, ExactTeacher(train), settings=get_settings())
    else:  # the same predict: lines without the rationale task
        from transformers import AutoTokenizer

        from tuneforge.catalog.weights import materialize

        tok = AutoTokenizer.from_pretrained(str(materialize("builtin:tiny-llama")))
        records = [{"input_text": p["input_text"], "label": p["output_text"]} for p in train]
        lines = folder / "label_only.jsonl"
        lines.write_text("\n".join(multitask_lines(records, tok, Truncation(), with_rationales=False)) + "\n")
        result = run_sft(
            config.model_copy(update={"train_dataset": str(lines), "dataset_format": "text_pair"}),
            settings=get_settings(),
        )
    seconds = time.perf_counter() - started
    return {
        "method": method,
        "examples": len(train),
        "seed": seed,
        "exact_match": exact_match(result.final_dir, test),
        "train_seconds": round(seconds, 1),
        "final_loss": round(result.last_train["train_total_loss"], 4),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 400, 800])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--max-operand", type=int, default=9, help="operands are drawn from 2..N (c from 1..N)")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    os.environ.setdefault("TUNEFORGE_HOME", tempfile.mkdtemp())
    root = Path(tempfile.mkdtemp())
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            train, test = make_split(size, args.test, seed, args.max_operand)
            for method in ("label-only", "step-by-step"):
                row = run(method, train, test, seed, args.steps, args.batch, args.lr, root)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(
        f"\noperands 2..{args.max_operand}, {args.steps} steps, batch {args.batch}, lr {args.lr}, "
        f"{args.test} held-out problems; "
        f"torch {torch.__version__}, transformers {transformers.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores\n"
    )
    print(
        "| examples | label-only exact match (mean ± sd) | step-by-step exact match (mean ± sd) "
        "| per seed (label-only / step-by-step) |"
    )
    print("|---|---|---|---|")
    for size in args.sizes:
        lo = [r["exact_match"] for r in rows if r["examples"] == size and r["method"] == "label-only"]
        sb = [r["exact_match"] for r in rows if r["examples"] == size and r["method"] == "step-by-step"]
        sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
        pairs = ", ".join(f"{a:.0%} / {b:.0%}" for a, b in zip(lo, sb))
        print(
            f"| {size} | {statistics.mean(lo):.1%} ± {sd(lo):.1%} "
            f"| {statistics.mean(sb):.1%} ± {sd(sb):.1%} | {pairs} |"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
