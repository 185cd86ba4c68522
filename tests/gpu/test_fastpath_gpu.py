"""The fast step on a CUDA device, bf16: the same loss and gradients as the reference step on the same examples.

Run on the device machine: `.venv/bin/python -m pytest -m gpu tests/gpu`. Skipped without CUDA.

Tolerance (bf16 weights and activations, float32 logits in both steps): loss within 1% relative, and every
parameter's gradient with cosine similarity above 0.99 to the reference's and a norm within 5%. The two steps sum
in different orders and lay the tokens out differently (padded rows vs packed), so bitwise equality is not expected.
"""

import importlib.util
import json
import random
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from tuneforge.data import ChatEncoder, Report, collate, parse_lines
from tuneforge.train import TuningConfig, run_sft
from tuneforge.train.demo_task import make_task, write_jsonl
from tuneforge.train.fastpath import (
    CausalLMLoss,
    fast_train_step,
    pack,
    plan_micro_batches,
    row_tokens_for,
    step_task_scale,
)
from tuneforge.train.metrics import read_metrics, train_metrics
from tuneforge.train.recipes.sft import train_step

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

ATTENTION = ["sdpa", "flex_attention"] + (["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])


def _examples(tokenizer, n=24, seed=0):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        text = "".join(rng.choice("abcdefghij ") for _ in range(rng.randint(30, 600)))
        cut = len(text) // 3
        lines.append(json.dumps({"prompt": text[:cut], "completion": text[cut:]}))
    encoder = ChatEncoder(tokenizer, "<|eot_id|>")
    return [encoder.encode(c) for c in parse_lines(lines, Report())]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_dir):
    tok = AutoTokenizer.from_pretrained(str(tiny_dir("tiny-llama")))
    config = LlamaConfig(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        vocab_size=32000,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    out = tmp_path_factory.mktemp("gpu-model")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.mark.parametrize("attention", ATTENTION)
def test_fast_step_matches_the_reference_in_bf16(model_dir, attention):
    device = torch.device("cuda")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    examples = _examples(tok)
    reference_model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.bfloat16, attn_implementation="sdpa"
    ).to(device)
    ref = train_step(
        reference_model,
        [
            collate(examples[i : i + 4], tok.pad_token_id, packing=False, row_tokens=4096)
            for i in range(0, len(examples), 4)
        ],
        device,
    )
    ref_grads = {n: p.grad.float() for n, p in reference_model.named_parameters()}

    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.bfloat16, attn_implementation=attention
    ).to(device)
    rows = row_tokens_for(attention, max(len(e) for e in examples))
    packed = [pack(g, tok.pad_token_id, rows).to(device) for g in plan_micro_batches(examples, 4096)]
    scale, counts = step_task_scale(packed, (1.0, 0.0))
    totals = fast_train_step(CausalLMLoss(model), packed, scale)
    fast = train_metrics(totals["task_sums"].cpu(), int(totals["correct"]), counts, (1.0, 0.0))

    assert fast["train_num_predictions"] == ref["train_num_predictions"]
    assert fast["train_total_loss"] == pytest.approx(ref["train_total_loss"], rel=1e-2)
    for name, p in model.named_parameters():
        g, r = p.grad.float().flatten(), ref_grads[name].flatten()
        assert torch.nn.functional.cosine_similarity(g, r, dim=0) > 0.99, name
        assert g.norm() == pytest.approx(float(r.norm()), rel=5e-2), name


def test_a_run_on_the_gpu_uses_the_fast_path_and_learns(tmp_path, model_dir):
    task = make_task(n_train=64, n_validation=8, n_held_out=2, seed=0)
    train = write_jsonl(tmp_path / "train.jsonl", task.train)
    config = TuningConfig(
        base_model="meta/llama3-2@llama-3.2-1b-instruct",
        custom_base_model=str(model_dir),
        tuning_mode="FULL",
        train_dataset=str(train),
        output_uri=str(tmp_path / "out"),
        max_steps=30,
        batch_size=16,
        learning_rate=1e-3,
        device="cuda",
    )
    result = run_sft(config)
    assert result.resolved["resolved"]["dtype"] == "bfloat16"
    losses = [
        m["train_total_loss"] for m in read_metrics(tmp_path / "out" / "metrics.jsonl") if "train_total_loss" in m
    ]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("attention", ATTENTION)
def test_the_fast_step_itself_never_waits_for_the_device(model_dir, attention):
    """CUDA's sync debug mode flags every host-device synchronisation; none may come from tuneforge's step code
    (packing, the loss, accumulation). The model's own mask building may sync; those are counted and printed."""
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    examples = _examples(tok)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.bfloat16, attn_implementation=attention
    ).to("cuda")
    rows = row_tokens_for(attention, max(len(e) for e in examples))
    host = [pack(g, tok.pad_token_id, rows, pin=True) for g in plan_micro_batches(examples, 2048)]
    scale, _ = step_task_scale(host, (1.0, 0.0))
    loss_module = CausalLMLoss(model)
    fast_train_step(loss_module, [mb.to("cuda") for mb in host], scale)  # warm-up (allocations, compilation)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fast_train_step(loss_module, [mb.to("cuda") for mb in host], scale)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    ours = [f"{w.filename}:{w.lineno}" for w in syncs if "/tuneforge/" in w.filename]
    print(f"{attention}: {len(syncs)} synchronising calls in the model code, {len(ours)} in tuneforge")
    assert not ours, ours
