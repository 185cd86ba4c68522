"""The serving engine: continuous batching gives the same tokens as one request at a time, adapters share a base,
sampling parameters are validated, stop sequences and seeds behave."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from fixed_format import chaotic_copy, random_adapter
from tuneforge.catalog.weights import materialize
from tuneforge.errors import InvalidArgument, ResourceExhausted
from tuneforge.infer.engine import Engine, GenRequest
from tuneforge.infer.sampling import SamplingParams, build_params
from tuneforge.settings import get_settings


def _submit(dep, ids, params, candidate=0):
    done, out = threading.Event(), {"deltas": []}

    def on_event(event):
        if event["type"] == "delta":
            out["deltas"].append(event["text"])
        else:
            out.update(event)
            done.set()

    req = GenRequest(ids, params, on_event, candidate=candidate)
    dep.submit(req)
    return done, out, req


def _wait(pairs):
    for done, _, _ in pairs:
        assert done.wait(60)
    return [out for _, out, _ in pairs]


@pytest.fixture(scope="module")
def chaos(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return {
        name: chaotic_copy(materialize(f"builtin:{name}", get_settings()), root / name)
        for name in ("tiny-llama", "tiny-gemma3")
    }


def _reference(folder, prompts, max_new, eos):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    out = []
    for ids in prompts:
        gen = model.generate(
            torch.tensor([ids]), max_new_tokens=max_new, do_sample=False, eos_token_id=list(eos), pad_token_id=0
        )
        out.append([t for t in gen[0, len(ids) :].tolist() if t not in eos])
    return out


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3"])
def test_batched_greedy_equals_transformers_generate(chaos, name):
    """16 requests arriving at staggered times (joining a running batch) give exactly generate()'s greedy tokens."""
    engine = Engine(device="cpu", batch_wait_ms=1)
    try:
        dep = engine.deploy("1", chaos[name])
        prompts = [dep.tokenizer(f"hello world {i} " * (i % 7 + 1))["input_ids"] for i in range(16)]
        expected = _reference(chaos[name], prompts, 20, dep.eos_ids)
        pairs = []
        for i, ids in enumerate(prompts):
            pairs.append(_submit(dep, ids, SamplingParams(max_tokens=20, temperature=0)))
            time.sleep(0.004 * (i % 4))
        results = _wait(pairs)
        got = [r["token_ids"] for r in results]
        assert got == expected
        assert all("".join(r["deltas"]) == r["text"] for r in results)  # the stream adds up to the answer
        stats = engine.stats()["groups"][0]
        assert stats["maxBatchSeen"] > 1  # requests were decoded together
        assert stats["continuousBatching"] == (name == "tiny-llama")  # sliding-window models batch dynamically
    finally:
        engine.close()


def test_adapters_share_one_base_and_each_request_uses_its_own(chaos, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir = chaos["tiny-llama"]
    adapters = [random_adapter(base_dir, tmp_path / f"a{i}", seed=i) for i in range(3)]
    engine = Engine(device="cpu")
    try:
        deps = [engine.deploy(f"d{i}", a, base_dir) for i, a in enumerate(adapters)]
        plain = engine.deploy("base", base_dir)
        stats = engine.stats()
        assert len(stats["groups"]) == 1  # one copy of the base weights
        group = stats["groups"][0]
        assert group["adapters"] == ["dd0", "dd1", "dd2"] and group["deployments"] == 4
        base_param_bytes = sum(p.numel() * 4 for p in AutoModelForCausalLM.from_pretrained(str(base_dir)).parameters())
        assert group["paramBytes"] == base_param_bytes
        assert stats["loadedBytes"] < 1.5 * base_param_bytes
        # one mixed batch: each row with its own adapter gives what that adapter alone gives
        prompt = deps[0].tokenizer("abc abc abc")["input_ids"]
        pairs = [_submit(d, prompt, SamplingParams(max_tokens=12, temperature=0)) for d in [*deps, plain]]
        results = [r["token_ids"] for r in _wait(pairs)]
        for adapter, got in zip(adapters, results):
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir)), str(adapter)).eval()
            ref = model.generate(
                torch.tensor([prompt]),
                max_new_tokens=12,
                do_sample=False,
                eos_token_id=list(deps[0].eos_ids),
                pad_token_id=0,
            )
            assert got == [t for t in ref[0, len(prompt) :].tolist() if t not in deps[0].eos_ids]
        assert len({tuple(r) for r in results}) == 4  # the adapters really differ
        # undeploying everything frees the weights
        for d in ["d0", "d1", "d2", "base"]:
            engine.undeploy(d)
        assert engine.stats()["groups"] == [] and engine.loaded_bytes() == 0
    finally:
        engine.close()


def test_deploy_refuses_what_does_not_fit(chaos):
    engine = Engine(device="cpu", memory_limit_bytes=100_000)
    with pytest.raises(ResourceExhausted, match="not enough memory .* GiB is free"):
        engine.deploy("1", chaos["tiny-llama"])
    assert engine.groups == {}


def test_stop_sequences_seeds_and_cancellation(chaos):
    engine = Engine(device="cpu")
    try:
        dep = engine.deploy("1", chaos["tiny-llama"])
        ids = dep.tokenizer("seeded prompt")["input_ids"]
        free = _wait([_submit(dep, ids, SamplingParams(max_tokens=30, temperature=0))])[0]
        stop = free["text"][5:7]
        cut = _wait([_submit(dep, ids, SamplingParams(max_tokens=30, temperature=0, stop=[stop]))])[0]
        assert cut["text"] == free["text"][: free["text"].find(stop)] and cut["finish_reason"] == "stop"
        sampled = SamplingParams(max_tokens=16, temperature=1.0, top_p=0.9, top_k=20, seed=7)
        a, b = _wait([_submit(dep, ids, sampled), _submit(dep, ids, sampled)])
        assert a["token_ids"] == b["token_ids"]  # same seed, same answer, even batched together
        c = _wait([_submit(dep, ids, sampled, candidate=1)])[0]
        assert c["token_ids"] != a["token_ids"]  # candidate 1 draws its own stream
        done, out, req = _submit(dep, ids, SamplingParams(max_tokens=100000, temperature=0))
        req.cancelled.set()
        assert done.wait(30) and out["finish_reason"] in ("cancelled", "length")
    finally:
        engine.close()


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("temperature", 2.5, "temperature must be between 0 and 2"),
        ("top_p", 0, "top_p must be greater than 0"),
        ("top_k", -1, "top_k must be 0"),
        ("top_k", 2.5, "top_k must be a whole number"),
        ("max_tokens", 0, "max_tokens must be at least 1"),
        ("max_tokens", "8", "max_tokens must be a number, got str"),
        ("stop", [""], "stop must be a list of non-empty strings"),
        ("n", 9, "n must be between 1 and 8"),
    ],
)
def test_sampling_parameters_are_validated(field, value, message):
    with pytest.raises(InvalidArgument, match=message):
        build_params(defaults=SamplingParams(), **{field: value})
    assert build_params(defaults=SamplingParams(), top_k=4.0, max_tokens=8.0).top_k == 4  # SDK sends doubles


def _row_events(tokenizer, ids, max_tokens):
    from tuneforge.infer.engine import _Row

    events = []
    eos = tokenizer.eos_token_id
    row = _Row(GenRequest([1], SamplingParams(max_tokens=max_tokens), events.append), tokenizer, {eos}, 4096)
    for token in [*ids, eos]:
        row.push(token)
        if row.finish:
            break
    return [e["text"] for e in events if e["type"] == "delta"], events[-1]


def test_text_is_decoded_incrementally_without_broken_characters():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(materialize("builtin:tiny-llama", get_settings())))
    text = "añb 😀 €x ✓"  # 2-, 4- and 3-byte characters: one byte-level token per byte
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode())
    deltas, done = _row_events(tokenizer, ids, 100)
    assert "".join(deltas) == text == done["text"]
    assert not any("\ufffd" in d for d in deltas)
    assert len(deltas) == len(text)  # each character as soon as its last byte arrives
    # Cut by the length limit inside the emoji: the answer ends before it, never with half of it.
    cut = len("añb ".encode()) + 2
    deltas, done = _row_events(tokenizer, ids, cut)
    assert done["text"] == "añb " == "".join(deltas) and done["finish_reason"] == "length"
