"""Make the tiny stand-ins capable bases: a short, deterministic pre-training on generic synthetic chat.

A random-init model is a poor stand-in. LoRA cannot teach it anything (its frozen embeddings and head keep the logits
near uniform), and none of the tiny models finds a short user string behind a system message from random weights in
the steps a tuning run has (measured: copying the user's word, loss stuck near chance for 700 steps with a 63-character
system message; the same task without one is learnt in 600). Real bases know how to read a chat. This gives the tiny
models that much, in two phases (a curriculum), each a run of the SFT recipe in the family's own chat template:

1. ``align``: conversations of one to three turns, no system message, each answer the user's word: the model learns
   to find the latest user text and copy it letter by letter (the attention that aligns each answer letter with its
   source letter).
2. ``chat``: system messages of every length. Half the answers are copies behind a persona (or none); the other half
   apply a letter map the system message names (capitals, a shift, fourteen fixed ciphers), so the answer letter
   depends on the conversation and not on the user's letter alone. The model learns to read past the system text to
   the latest user message, and to take its instructions from the system message.

Each draw of the pre-training is then probed as a user would tune it (a LoRA with the catalog's defaults, on a cipher
behind a system message of its own), and the first draw a LoRA can tune ships. What the tests tune (the check's
cipher and system message, reversal) is never in the corpus nor in the probe.

``python -m tuneforge.train.stand_ins [--only NAME] [--out DIR]`` pre-trains each family's tiny model and writes its
weights to ``catalog/stand_ins/<name>.safetensors``, which ``catalog/tiny.py`` loads when it builds a stand-in. The
corpus and the runs are seeded, and it trains on one thread: on the same torch build the weights repeat.
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
from tuneforge.train.config import TuningConfig
from tuneforge.train.demo_task import CipherTask, exact_match, greedy_answers, make_task, write_lines
from tuneforge.train.recipes.sft import run_sft

LETTERS = string.ascii_lowercase
PRETRAIN_SEED = 20261202
# (phase, optimizer steps of BATCH conversations, peak learning rate). tiny-llama learns to align more slowly than the
# others and not at all from conversations of several turns (loss 2.72 after 1,900 steps), so it aligns on single
# turns, for longer, and gets more chat steps (with 3,000 it followed the shift map on 60% of unseen words, with
# 6,000 on 97%).
PHASES = (("align", 2000, 3e-3), ("chat", 2000, 3e-3))
STEPS = {"tiny-llama": {"align": 5000, "chat": 6000}}
ALIGN_TURNS = {"tiny-llama": 1}  # the others: 1-3 turns, so the word to copy is not always in the same place
BATCH = 16
# The pre-training's result varies with its draw (the corpus and its order): in one of two tiny-gemma3 draws a LoRA
# learnt a new cipher (100%), in the other it did not (10%). So each draw is probed, as a user would tune it: a LoRA
# (catalog defaults) on a cipher behind a system message that neither the corpus nor the check uses; the first draw
# that reaches PROBE_TARGET ships, and the check (another cipher, another system message) measures it.
DRAWS = 4
PROBE_TARGET = 0.9
PERSONAS = (
    "You are a helpful assistant.",
    "Be concise.",
    "You are a careful assistant. Answer briefly and do not explain yourself.",
    "You answer with the result only, on one line, without quotes or any other text.",
    "Repeat the word.",
    "You are a precise text tool. Say the user's text back exactly as it was written.",
    "You are a friendly support agent for a small online shop. Keep every answer short.",
    "Copy the text.",
)


def _shift(s: str) -> str:
    return "".join(LETTERS[(LETTERS.index(c) + 1) % 26] for c in s)


# The chat phase's other letter maps, each named by a system message: the answer letter depends on the conversation,
# not on the user's letter alone (a model that only ever copied is so sure of the copy that a LoRA cannot turn it).
# Many ciphers, not a few: with four maps a LoRA taught tiny-gemma3 a new cipher in some pre-training draws and not in
# others (57% held out); with sixteen, whose tables the model never quite memorises, every family and mode reached
# 99-100% (docs/quality.md, "Stand-ins").
TRANSFORMS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("Answer in capital letters.", str.upper),
    ("Shift every letter one place on.", _shift),
    ("Use cipher A.", CipherTask(seed=101).answer),
    ("Use cipher B.", CipherTask(seed=202).answer),
    *((f"Use cipher {chr(ord('C') + i)}.", CipherTask(seed=300 + i).answer) for i in range(12)),
)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 8)))


def _system_and_map(rng: random.Random, phase: str) -> tuple[str | None, Callable[[str], str]]:
    """align: no system message, copy. chat: half copy behind a persona (or nothing), half a letter map named by the
    system message (sometimes after a persona)."""
    if phase == "align":
        return None, lambda s: s
    if rng.random() < 0.5:
        return (rng.choice(PERSONAS) if rng.random() < 0.85 else None), lambda s: s
    instruction, transform = rng.choice(TRANSFORMS)
    return (f"{rng.choice(PERSONAS[:4])} {instruction}" if rng.random() < 0.3 else instruction), transform


def corpus(phase: str, n: int, seed: int = PRETRAIN_SEED, *, align_turns: int = 3) -> list[dict]:
    """``n`` chat lines ({"messages": [...]}) of ``phase``: align lines of 1 to ``align_turns`` turns, chat lines of
    one turn or (15%) two."""
    rng = random.Random(f"{seed}-{phase}")
    lines = []
    for _ in range(n):
        system, transform = _system_and_map(rng, phase)
        messages = [{"role": "system", "content": system}] if system else []
        for _turn in range(rng.randint(1, align_turns) if phase == "align" else (2 if rng.random() < 0.15 else 1)):
            word = _word(rng)
            messages += [{"role": "user", "content": word}, {"role": "assistant", "content": transform(word)}]
        lines.append({"messages": messages})
    return lines


def pretrain(name: str, out: Path, *, settings: Settings | None = None, log=print) -> Path:
    """Pre-train tiny model ``name`` from its random init, draw by draw until one passes the LoRA probe; write its
    weights to ``out/<name>.safetensors``."""
    work = Path(tempfile.mkdtemp(prefix=f"pretrain-{name}-"))
    try:
        for draw in range(DRAWS):
            model = _pretrain_draw(name, work / f"draw-{draw}", PRETRAIN_SEED + draw, settings, log)
            probe = chat_quality(
                work / f"probe-{draw}",
                name,
                "PEFT_ADAPTER",
                cipher=probe_cipher(),
                settings=settings,
                custom_base_model=str(model),
            )["held_out_exact_match"]
            log(f"{name} draw {draw}: a LoRA learns the probe cipher to {probe:.0%} held-out exact match")
            if probe >= PROBE_TARGET:
                out.mkdir(parents=True, exist_ok=True)
                target = out / f"{name}.safetensors"
                shutil.copyfile(model / "model.safetensors", target)
                return target
        raise RuntimeError(f"no pre-training of {name} in {DRAWS} draws is a base a LoRA can tune (see the log)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pretrain_draw(name: str, work: Path, seed: int, settings: Settings | None, log) -> Path:
    """One pre-training (both phases) of ``name`` with corpus and training seed ``seed``; the final model folder."""
    start = build_tiny_model(name, work / "random-init", pretrained=False)
    for phase, default_steps, lr in PHASES:
        steps = STEPS.get(name, {}).get(phase, default_steps)
        lines = corpus(phase, steps * BATCH, seed, align_turns=ALIGN_TURNS.get(name, 3))
        result = run_sft(
            TuningConfig(
                base_model=name,
                custom_base_model=str(start),
                train_dataset=str(write_lines(work / f"{phase}.jsonl", lines)),
                output_uri=str(work / phase),
                tuning_mode="FULL",
                epochs=1,
                batch_size=BATCH,
                learning_rate=lr,
                warmup_ratio=0.02,
                min_lr_ratio=0.1,
                seed=seed % 1000,
            ),
            settings=settings,
        )
        log(f"{name} {phase}: {result.steps} steps, last train loss {result.last_train.get('train_total_loss', 0):.4f}")
        assert result.final_dir is not None
        start = result.final_dir
    return start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=STAND_IN_DIR, help="Where the weights go (the catalog's folder).")
    p.add_argument("--only", choices=sorted(TINY_SPECS), action="append", help="Pre-train only these models.")
    args = p.parse_args()
    import torch  # lazy: only the pre-training needs it

    torch.set_num_threads(1)  # the shipped files were made so; the same torch build and thread count repeat them
    for name in args.only or sorted(TINY_SPECS):
        print(pretrain(name, args.out))


if __name__ == "__main__":
    main()


# --- the check and the probe: a stand-in learns ordinary chat data ---------------------------------------------------


def probe_cipher() -> CipherTask:
    """The pre-training's probe: a cipher and system message unlike the check's (``CipherTask()``) and the corpus's."""
    return CipherTask(seed=99, system="Reply with the secret code of the word.")


def chat_quality(
    root: Path,
    model: str,
    mode: str,
    *,
    n_train: int = 2000,
    cipher: CipherTask | None = None,
    settings=None,
    **overrides,
) -> dict:
    """Tune ``model`` (catalog defaults: epochs, batch size, learning rate, adapter size) on ``cipher`` (a
    ``CipherTask``; the default one unless given), whose every line carries the same system message; greedy held-out
    exact match from the saved folder."""
    cipher = cipher or CipherTask()
    task = make_task(n_train=n_train, n_validation=16, n_held_out=100, seed=3, min_len=3, max_len=7)
    data = write_lines(root / "train.jsonl", cipher.lines(task.train))
    result = run_sft(
        TuningConfig(
            base_model=model, train_dataset=str(data), output_uri=str(root / f"{mode}"), tuning_mode=mode, **overrides
        ),
        settings=settings,
    )
    answers = greedy_answers(result.final_dir, task.held_out, system=cipher.system)
    return {
        "model": model,
        "mode": mode,
        "steps": result.steps,
        "train_loss": result.last_train.get("train_total_loss"),
        "held_out_exact_match": exact_match(answers, [cipher.answer(s) for s in task.held_out]),
        "samples": list(zip(task.held_out[:3], answers[:3])),
    }
