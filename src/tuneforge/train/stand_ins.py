"""Make the tiny stand-ins capable bases: a short, deterministic pre-training on generic synthetic chat.

A random-init model is a poor stand-in. LoRA cannot teach it anything (its frozen embeddings and head keep the logits
near uniform), and a 4-layer Llama does not find a short user string behind a system message (its attention starts
near uniform over the whole prompt). Real bases know how to read a chat. This gives the tiny models a little of that:
conversations in their family's chat template, with and without system messages, multi-turn at times, whose answers
transform the user's string letter by letter (copy, capitals, shifts, doubling, sorting, …) as the instruction says.
The held-out tasks the tests tune (letter mappings, reversal) are not in this corpus.

``python -m tuneforge.train.stand_ins [--steps N] [--out DIR]`` pre-trains each family's tiny model with the SFT
recipe and writes its weights to ``catalog/stand_ins/<name>.safetensors``, which ``catalog/tiny.py`` loads when it
builds a stand-in. The corpus and the run are seeded; on the same torch build and thread count the weights repeat.
"""

from __future__ import annotations

import argparse
import random
import shutil
import string
import tempfile
from collections.abc import Callable
from pathlib import Path

from tuneforge.catalog.tiny import STAND_IN_DIR, TINY_SPECS, build_tiny_model
from tuneforge.settings import Settings

LETTERS = string.ascii_lowercase
PRETRAIN_SEED = 20261202


def _shift(k: int) -> Callable[[str], str]:
    return lambda s: "".join(LETTERS[(LETTERS.index(c) + k) % 26] if c in LETTERS else c for c in s)


# (instruction phrasings, transform): each answer is the user's word transformed letter by letter, so the model learns
# to find the word behind any system message and to map it in place. None is a held-out task (reversal, a fixed
# letter substitution).
TASKS: list[tuple[tuple[str, ...], Callable[[str], str]]] = [
    (("Repeat the word.", "Say it back exactly.", "Copy the text."), lambda s: s),
    (("Write it in capitals.", "Uppercase the word.", "Answer in capital letters."), str.upper),
    (("Shift each letter by one.", "Replace each letter with the next one."), _shift(1)),
    (("Shift each letter by two.", "Move every letter two places on."), _shift(2)),
    (("Shift each letter back by one.", "Replace each letter with the one before it."), _shift(-1)),
    (("Double every letter.", "Write each letter twice."), lambda s: "".join(c + c for c in s)),
    (("Spell it with dashes.", "Put a dash between the letters."), lambda s: "-".join(s)),
]
PERSONAS = (
    "You are a helpful assistant.",
    "You are a careful assistant. Answer briefly.",
    "You answer with the result only.",
    "Be concise.",
    "You are a precise text tool.",
)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 8)))


def _turn(rng: random.Random) -> tuple[str | None, str, str]:
    """(system message or None, user message, answer) of one instruction."""
    phrasings, transform = rng.choice(TASKS)
    instruction, word = rng.choice(phrasings), _word(rng)
    where = rng.random()
    if where < 0.5:  # the instruction is the system message; the user turn is the bare word
        return instruction, word, transform(word)
    system = rng.choice(PERSONAS) if where < 0.8 else None
    user = f"{instruction} {word}" if rng.random() < 0.5 else f"{instruction}\n{word}"
    return system, user, transform(word)


def corpus(n: int, seed: int = PRETRAIN_SEED) -> list[dict]:
    """``n`` chat lines ({"messages": [...]}), a tenth of them two-turn."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        system, user, answer = _turn(rng)
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ]
        if rng.random() < 0.1:  # a follow-up turn: the answer must come from the latest user message
            _, user2, answer2 = _turn(rng)
            messages += [{"role": "user", "content": user2}, {"role": "assistant", "content": answer2}]
        lines.append({"messages": messages})
    return lines


def pretrain(name: str, out: Path, *, steps: int, settings: Settings | None = None, log=print) -> Path:
    """Pre-train tiny model ``name`` from its random init; write its weights to ``out/<name>.safetensors``."""
    from tuneforge.train.config import TuningConfig  # lazy: the recipe loads torch
    from tuneforge.train.demo_task import write_lines  # lazy: as above
    from tuneforge.train.recipes.sft import run_sft  # lazy: as above

    work = Path(tempfile.mkdtemp(prefix=f"pretrain-{name}-"))
    try:
        random_init = build_tiny_model(name, work / "random-init", pretrained=False)
        data = write_lines(work / "corpus.jsonl", corpus(steps * 32))
        result = run_sft(
            TuningConfig(
                base_model=name,
                custom_base_model=str(random_init),
                train_dataset=str(data),
                output_uri=str(work / "run"),
                tuning_mode="FULL",
                epochs=1,
                batch_size=32,
                learning_rate=3e-3,
                warmup_ratio=0.02,
                min_lr_ratio=0.1,
                seed=PRETRAIN_SEED % 1000,
            ),
            settings=settings,
        )
        log(f"{name}: {result.steps} steps, last train loss {result.last_train.get('train_total_loss', 0):.4f}")
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{name}.safetensors"
        shutil.copyfile(result.final_dir / "model.safetensors", target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="Optimizer steps of 32 conversations per model.")
    p.add_argument("--out", type=Path, default=STAND_IN_DIR, help="Where the weights go (the catalog's folder).")
    p.add_argument("--only", choices=sorted(TINY_SPECS), action="append", help="Pre-train only these models.")
    args = p.parse_args()
    for name in args.only or sorted(TINY_SPECS):
        print(pretrain(name, args.out, steps=args.steps))


if __name__ == "__main__":
    main()


# --- the check: a stand-in learns ordinary chat data -----------------------------------------------------------------

CHECK_SYSTEM = "You are a helpful assistant. Answer with the encoded word only."


def letter_mapping(seed: int = 7) -> dict[str, str]:
    """A fixed substitution of the alphabet: a rule none of the pre-training tasks is."""
    rng = random.Random(seed)
    shuffled = list(LETTERS)
    rng.shuffle(shuffled)
    return dict(zip(LETTERS, shuffled))


def chat_quality(root: Path, model: str, mode: str, *, n_train: int = 2000, settings=None, **overrides) -> dict:
    """Tune ``model`` (catalog defaults: epochs, batch size, learning rate, adapter size) on a letter-mapping chat
    task whose every line carries the same system message; greedy held-out exact match from the saved folder."""
    from tuneforge.train.config import TuningConfig  # lazy: the recipe loads torch
    from tuneforge.train.demo_task import exact_match, greedy_answers, make_task, write_lines  # lazy: as above
    from tuneforge.train.recipes.sft import run_sft  # lazy: as above

    mapping = letter_mapping()
    task = make_task(n_train=n_train, n_validation=16, n_held_out=100, seed=3, min_len=3, max_len=7)
    lines = [
        {
            "messages": [
                {"role": "system", "content": CHECK_SYSTEM},
                {"role": "user", "content": s},
                {"role": "assistant", "content": "".join(mapping[c] for c in s)},
            ]
        }
        for s in task.train
    ]
    data = write_lines(root / "train.jsonl", lines)
    result = run_sft(
        TuningConfig(
            base_model=model, train_dataset=str(data), output_uri=str(root / f"{mode}"), tuning_mode=mode, **overrides
        ),
        settings=settings,
    )
    answers = greedy_answers(result.final_dir, task.held_out, system=CHECK_SYSTEM)
    expected = ["".join(mapping[c] for c in s) for s in task.held_out]
    return {
        "model": model,
        "mode": mode,
        "steps": result.steps,
        "train_loss": result.last_train.get("train_total_loss"),
        "held_out_exact_match": exact_match(answers, expected),
        "samples": list(zip(task.held_out[:3], answers[:3])),
    }
