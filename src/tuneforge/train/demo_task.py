"""Tasks a tiny model must generalise, on the CPU: held-out strings never appear in training, so exact match on them
measures whether the rule was learned, not memorised.

- The cipher (``CipherTask``): a fixed letter substitution behind a system message, what `make run`'s demo teaches
  the pre-trained tiny-llama and what the stand-ins' check teaches each stand-in.
- Reversal (``ReversalTask``): the quality figures of tuning from random weights (``random_init``), and the data of
  many mechanics tests.

Answers are greedy decodes from the saved artifact folder, loaded with plain transformers (and peft for an adapter).
"""

from __future__ import annotations

import functools
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from tuneforge.catalog.model_folder import ADAPTER_CONFIG, final_dir, is_adapter
from tuneforge.train.config import TuningConfig
from tuneforge.train.recipes.sft import run_sft

ALPHABET = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class ReversalTask:
    train: list[str]
    validation: list[str]
    held_out: list[str]

    # The user turn is the bare string. With a byte-level tokenizer an instruction's letters ("Reverse: ...", or a
    # system prompt) are the same tokens as the string's, and a 4-layer model then spends most of its steps finding
    # where the string starts (measured: 29% held-out exact match with "Reverse: " inline, 0% with a system
    # prompt, 100% with the bare string, at the same step count).
    system = None

    @staticmethod
    def prompt(s: str) -> str:
        return s

    @staticmethod
    def answer(s: str) -> str:
        return s[::-1]


CIPHER_SYSTEM = "You are a helpful assistant. Answer with the encoded word only."


@dataclass(frozen=True)
class CipherTask:
    """Encode a word with a fixed letter substitution, every line behind the same system message: ordinary chat data
    whose rule none of the stand-ins' pre-training tasks is (``make run``'s demo and the stand-ins' check,
    docs/quality.md "Stand-ins")."""

    seed: int = 7
    system: str = CIPHER_SYSTEM

    @functools.cached_property
    def mapping(self) -> dict[str, str]:
        shuffled = list(ALPHABET)
        random.Random(self.seed).shuffle(shuffled)
        return dict(zip(ALPHABET, shuffled))

    def answer(self, s: str) -> str:
        return "".join(self.mapping[c] for c in s)

    def lines(self, strings: list[str]) -> list[dict]:
        """Chat lines: the system message, the word, its encoding."""
        return [
            {
                "messages": [
                    {"role": "system", "content": self.system},
                    {"role": "user", "content": s},
                    {"role": "assistant", "content": self.answer(s)},
                ]
            }
            for s in strings
        ]


def make_task(
    n_train: int = 4000,
    n_validation: int = 64,
    n_held_out: int = 100,
    seed: int = 0,
    min_len: int = 3,
    max_len: int = 7,
) -> ReversalTask:
    """Disjoint random strings: nothing held out is ever trained on."""
    rng = random.Random(seed)
    seen: set[str] = set()

    def fresh(count: int) -> list[str]:
        out = []
        while len(out) < count:
            s = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(min_len, max_len)))
            if s not in seen:
                seen.add(s)
                out.append(s)
        return out

    held_out = fresh(n_held_out)
    validation = fresh(n_validation)
    return ReversalTask(train=fresh(n_train), validation=validation, held_out=held_out)


def write_jsonl(path: Path, strings: list[str], fmt: str = "chat") -> Path:
    """One example per line, in a documented format (prompt/completion, chat messages or GenerateContent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for s in strings:
            p, a, sys_text = ReversalTask.prompt(s), ReversalTask.answer(s), ReversalTask.system
            if fmt == "prompt_completion":
                obj = {"prompt": p, "completion": a}
            elif fmt == "chat":
                turns = [{"role": "user", "content": p}, {"role": "assistant", "content": a}]
                obj = {"messages": ([{"role": "system", "content": sys_text}] if sys_text else []) + turns}
            else:
                obj = {
                    "contents": [{"role": "user", "parts": [{"text": p}]}, {"role": "model", "parts": [{"text": a}]}]
                }
                if sys_text:
                    obj["systemInstruction"] = {"parts": [{"text": sys_text}]}
            f.write(json.dumps(obj) + "\n")
    return path


def greedy_answers(
    model_dir: Path,
    prompts: list[str],
    max_new_tokens: int = 16,
    base_dir: Path | None = None,
    system: str | None = None,
) -> list[str]:
    """Answers from a model folder, loaded with plain transformers (and peft for an adapter), greedy decoding."""
    import torch

    tokenizer, model = load_model(model_dir, base_dir)
    answers = []
    with torch.no_grad():
        for p in prompts:
            chat = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
            ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            out = model.generate(
                **ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return answers


def load_model(model_dir: Path, base_dir: Path | None = None):
    """(tokenizer, model in eval mode) of a model folder, with plain transformers (and peft for an adapter, on the
    base it names unless ``base_dir`` is given): what a user of the artifact would load, without tuneforge."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if is_adapter(model_dir):
        from peft import PeftModel

        base = json.loads((model_dir / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir or base)), str(model_dir))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    return tokenizer, model.eval()


def exact_match(answers: list[str], expected: list[str]) -> float:
    return sum(a == e for a, e in zip(answers, expected)) / max(1, len(expected))


def write_lines(path: Path, lines: list[dict]) -> Path:
    """JSON objects, one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def random_init(root: Path, name: str = "tiny-llama") -> Path:
    """Tiny model ``name`` without its shipped pre-training, in ``root`` (reused): the start of the quality tasks that
    measure tuning from random weights, whose figures (docs/quality.md) were set before the stand-ins were
    pre-trained."""
    from tuneforge.catalog.tiny import build_tiny_model  # lazy: torch

    folder = root / f"random-init-{name}"
    return folder if (folder / "config.json").exists() else build_tiny_model(name, folder, pretrained=False)


def full_tuned_base(root: Path, name: str, pairs: list[tuple[str, str]], settings=None, epochs: float = 2) -> Path:
    """tiny-llama, from its random init, FULL-tuned on (user, assistant) chat lines into ``root/name``; reused when
    that folder already holds its final model."""
    final = final_dir(root / name)
    if final.exists():
        return final
    lines = [{"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]} for u, a in pairs]
    run_sft(
        TuningConfig(
            base_model="tiny-llama",
            custom_base_model=str(random_init(root)),
            train_dataset=str(write_lines(root / f"{name}.jsonl", lines)),
            output_uri=str(root / name),
            tuning_mode="FULL",
            epochs=epochs,
            batch_size=32,
            seed=5,
        ),
        settings=settings,
    )
    return final


def copy_base(root: Path, strings: list[str], settings=None, epochs: float = 2) -> Path:
    """A base that already knows something: tiny-llama FULL-tuned to repeat its input.

    LoRA on a random-init model is degenerate: the frozen embeddings, norms and output head keep the logits near
    uniform, so an adapter cannot reach confident answers. Real LoRA adapts a capable base; this makes one.
    """
    return full_tuned_base(root, "copy-base", [(s, s) for s in strings], settings, epochs)


def held_out_quality(root: Path, mode: str, *, epochs: float, settings=None, seed: int = 11, **overrides) -> dict:
    """Tune tiny-llama on the reversal task and score held-out exact match (docs/quality.md, its test and bench).

    LoRA runs start from a copy-tuned base (see :func:`copy_base`), FULL runs from the random init
    (:func:`random_init`).
    """
    task = make_task(seed=seed)
    train = write_jsonl(root / "train.jsonl", task.train)
    base = copy_base(root, task.train, settings) if mode == "PEFT_ADAPTER" else random_init(root)
    started = time.perf_counter()
    result = run_sft(
        TuningConfig(
            base_model="tiny-llama",
            custom_base_model=str(base),
            train_dataset=str(train),
            output_uri=str(root / mode),
            tuning_mode=mode,
            epochs=epochs,
            batch_size=32,
            seed=5,
            **overrides,
        ),
        settings=settings,
    )
    seconds = time.perf_counter() - started
    answers = greedy_answers(result.final_dir, [ReversalTask.prompt(s) for s in task.held_out])
    return {
        "mode": mode,
        "epochs": epochs,
        "steps": result.steps,
        "train_seconds": round(seconds, 1),
        "held_out_exact_match": exact_match(answers, [ReversalTask.answer(s) for s in task.held_out]),
        **overrides,
    }
