"""A synthetic preference task that shows DPO learning on the CPU (docs/quality.md, its test and bench).

The rule: answer a string in capitals. The starting model is tiny-llama FULL-tuned (SFT) to repeat its input, half
of the lines in capitals and half as given, so it knows both answers and prefers neither (about 50% held-out
preference accuracy). Preference pairs then say capitals are preferred (score 1) and the plain copy is not
(score 0). Held-out strings never appear in training; both figures are measured from the saved model folders,
loaded with plain transformers (and peft for an adapter):
- preference accuracy: the share of held-out pairs whose preferred completion has the higher log-probability;
- rule following: greedy answers that are exactly the string in capitals.
"""

from __future__ import annotations

import time
from pathlib import Path

from tuneforge.train.config import TuningConfig
from tuneforge.train.demo_task import exact_match, full_tuned_base, greedy_answers, load_model, make_task, write_lines
from tuneforge.train.recipes.dpo import run_dpo


def preferred(s: str) -> str:
    return s.upper()


def dispreferred(s: str) -> str:
    return s


def preference_line(s: str, system: str | None = None) -> dict:
    line: dict = {
        "contents": [{"role": "user", "parts": [{"text": s}]}],
        "completions": [
            {"score": 1, "completion": {"role": "model", "parts": [{"text": preferred(s)}]}},
            {"score": 0, "completion": {"role": "model", "parts": [{"text": dispreferred(s)}]}},
        ],
    }
    if system:
        line["system_instruction"] = {"parts": [{"text": system}]}
    return line


def mixed_base(root: Path, strings: list[str], settings=None, epochs: float = 4) -> Path:
    """The SFT starting point: tiny-llama FULL-tuned to repeat its input, in capitals on every other line."""
    pairs = [(s, s.upper() if i % 2 else s) for i, s in enumerate(strings)]
    return full_tuned_base(root, "mixed-base", pairs, settings, epochs)


def preference_accuracy(model_dir: Path, strings: list[str]) -> float:
    """Share of pairs whose preferred completion the model gives the higher log-probability (summed over the
    completion's tokens and its end-of-turn token, rendered by the model folder's own chat template)."""
    return pair_accuracy(model_dir, [(s, preferred(s), dispreferred(s)) for s in strings])


def pair_accuracy(model_dir: Path, pairs: list[tuple[str, str, str]], system: str | None = None) -> float:
    """Share of (prompt, preferred, dispreferred) whose preferred completion has the higher log-probability, the
    prompt behind ``system`` when one is given."""
    import torch

    tokenizer, model = load_model(model_dir)

    def logp(prompt: str, completion: str) -> float:
        chat = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        start = len(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False))
        full = tokenizer.apply_chat_template(
            [*chat, {"role": "assistant", "content": completion}], tokenize=True, return_dict=False
        )
        ids = torch.tensor([full])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
        targets = ids[0, 1:]
        return float(logits[torch.arange(start - 1, len(full) - 1), targets[start - 1 :]].sum())

    wins = sum(logp(p, good) > logp(p, bad) for p, good, bad in pairs)
    return wins / max(1, len(pairs))


def held_out_preference(
    root: Path, mode: str, *, n_pairs: int = 1000, epochs: float = 1, settings=None, seed: int = 21, **overrides
) -> dict:
    """SFT a mixed base, preference-tune it (DPO, ``mode``) on capitals-preferred pairs, score held-out strings."""
    task = make_task(n_train=4000, n_validation=32, n_held_out=100, seed=seed, min_len=3, max_len=6)
    base = mixed_base(root, task.train, settings)
    train = write_lines(root / "pairs.jsonl", [preference_line(s) for s in task.train[:n_pairs]])
    validation = write_lines(root / "pairs-val.jsonl", [preference_line(s) for s in task.validation])
    before = preference_accuracy(base, task.held_out)
    started = time.perf_counter()
    result = run_dpo(
        TuningConfig(
            method="preference",
            base_model="tiny-llama",
            custom_base_model=str(base),
            train_dataset=str(train),
            validation_dataset=str(validation),
            tuning_mode=mode,
            epochs=epochs,
            batch_size=16,
            seed=5,
            **{"output_uri": str(root / f"dpo-{mode}"), **overrides},
        ),
        settings=settings,
    )
    seconds = time.perf_counter() - started
    answers = greedy_answers(result.final_dir, task.held_out, base_dir=base if mode == "PEFT_ADAPTER" else None)
    return {
        "mode": mode,
        "pairs": n_pairs,
        "steps": result.steps,
        "train_seconds": round(seconds, 1),
        "preference_accuracy_before": before,
        "preference_accuracy_after": preference_accuracy(result.final_dir, task.held_out),
        "greedy_follows_rule": exact_match(answers, [preferred(s) for s in task.held_out]),
        "greedy_follows_rule_before": exact_match(
            greedy_answers(base, task.held_out), [preferred(s) for s in task.held_out]
        ),
        "last_train": result.last_train,
        "last_eval": result.last_eval,
        **overrides,
    }
