"""A synthetic tool-use task that shows a stand-in learning function calling (docs/quality.md, its test and bench).

Each line offers two functions, ``get_weather(city)`` and ``get_time(city)``. The system message says whether to look
up the weather or the time, the user names a made-up city (random letters); the assistant calls the right function
with that city, the tool answers, and the assistant relays the answer as ``<city>: <answer>``. Held-out cities never
appear in training; both figures are measured from the saved model folder, loaded with plain transformers (and peft
for an adapter), prompts rendered by the folder's own chat template with the tools:
- call exact match: the greedy reply, read back as OpenAI ``tool_calls`` (infer/tool_calls.py), is exactly one call
  of the right function with exactly ``{"city": <city>}``;
- answer exact match: given the call and the tool's result, the greedy reply is exactly ``<city>: <answer>``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from tuneforge.catalog.model_folder import final_dir
from tuneforge.infer.tool_calls import split_tool_calls
from tuneforge.train.config import TuningConfig
from tuneforge.train.demo_task import exact_match, load_model, write_lines
from tuneforge.train.recipes.sft import run_sft

KINDS = {
    "weather": ("get_weather", ("sunny", "rainy", "cloudy", "windy")),
    "time": ("get_time", ("9am", "noon", "6pm")),
}
# Function names only: a JSON schema per function would make every prompt several hundred tokens, longer than any
# sequence the stand-ins were pre-trained on (docs/quality.md, "Tool use").
TOOLS = [{"type": "function", "function": {"name": name}} for name, _ in KINDS.values()]


def cities(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 7))))
    return sorted(out)


def case(city: str, i: int) -> tuple[str, str, str]:
    """(what is asked, the function, the tool's result) for a city: the kind alternates, the result varies."""
    kind = "weather" if i % 2 == 0 else "time"
    function, results = KINDS[kind]
    return kind, function, results[(len(city) + i) % len(results)]


def prompt(city: str, kind: str) -> list[dict]:
    """The system message says what to look up, the user names the city: the stand-ins' pre-training read chats
    shaped so (docs/quality.md, "Tool use")."""
    return [{"role": "system", "content": f"Look up the {kind}."}, {"role": "user", "content": city}]


def call_turns(city: str, function: str, result: str) -> list[dict]:
    """The assistant's call and the tool's answer (OpenAI's line shape: the arguments as a JSON string)."""
    call = {"id": "call_1", "type": "function", "function": {"name": function, "arguments": json.dumps({"city": city})}}
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ]


def tool_line(city: str, i: int) -> dict:
    kind, function, result = case(city, i)
    messages = [*prompt(city, kind), *call_turns(city, function, result), answer_turn(city, result)]
    return {"tools": TOOLS, "messages": messages}


def answer_turn(city: str, result: str) -> dict:
    return {"role": "assistant", "content": f"{city}: {result}"}


def _greedy(tokenizer, model, chat: list[dict], max_new_tokens: int) -> str:
    import torch

    ids = tokenizer.apply_chat_template(
        template_chat(chat), tools=TOOLS, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def template_chat(chat: list[dict]) -> list[dict]:
    """Chat templates take a call's arguments as an object (OpenAI's lines carry a JSON string)."""
    out = []
    for m in chat:
        if m.get("tool_calls"):
            calls = [
                {**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
                for c in m["tool_calls"]
            ]
            m = {**m, "content": m["content"] or "", "tool_calls": calls}
        out.append(m)
    return out


def tool_quality(model_dir: Path, held_out: list[str], offset: int = 0) -> dict:
    """Held-out call and answer exact match of a model folder (see the module's docstring)."""
    tokenizer, model = load_model(model_dir)
    offered = {t["function"]["name"] for t in TOOLS}
    calls_ok, answers, expected = [], [], []
    for i, city in enumerate(held_out, start=offset):
        kind, function, result = case(city, i)
        _, calls = split_tool_calls(_greedy(tokenizer, model, prompt(city, kind), 48), offered)
        parsed = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]
        calls_ok.append(parsed == [(function, {"city": city})])
        answers.append(_greedy(tokenizer, model, [*prompt(city, kind), *call_turns(city, function, result)], 16))
        expected.append(f"{city}: {result}")
    return {
        "call_exact_match": sum(calls_ok) / max(1, len(calls_ok)),
        "answer_exact_match": exact_match(answers, expected),
    }


def run_tool_task(
    root: Path, model: str, mode: str, *, lines: int = 400, held_out: int = 50, settings=None, **overrides
) -> dict:
    """Tune ``model`` (a stand-in) on the task with the catalog's defaults (``overrides`` change them) and score the
    held-out cities from the saved artifact."""
    names = cities(lines + held_out, seed=3)
    random.Random(4).shuffle(names)
    train, test = names[:lines], names[lines:]
    path = write_lines(root / "tools-train.jsonl", [tool_line(c, i) for i, c in enumerate(train)])
    started = time.perf_counter()
    result = run_sft(
        TuningConfig(base_model=model, train_dataset=str(path), output_uri=str(root / mode), tuning_mode=mode,
                     seed=5, **overrides),
        settings=settings,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return {
        "model": model,
        "mode": mode,
        "lines": lines,
        "steps": result.steps,
        "final_train_loss": round(float(result.last_train.get("train_total_loss", float("nan"))), 4),
        "train_seconds": round(seconds, 1),
        "after": tool_quality(final_dir(root / mode), test, offset=lines),
    }
