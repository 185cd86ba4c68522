"""Packed rows: position ids restart, no attention across examples, same loss as unpacked."""

import itertools
import json

import pytest
import torch

from tuneforge.data import IGNORE_INDEX, ChatEncoder, Report, collate, parse_lines
from tuneforge.train.recipes.sft import batch_loss

LINES = [
    {"prompt": "abc", "completion": "cba"},
    {
        "messages": [
            {"role": "user", "content": "hello there"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "niaga"},
        ]
    },
    {"prompt": "a much longer prompt for the third example", "completion": "ok"},
    {"prompt": "q", "completion": "a fairly long answer to a short question"},
]


def encoded(tokenizer, end):
    encoder = ChatEncoder(tokenizer, end)
    out = []
    for obj in LINES:
        conv = parse_lines([json.dumps(obj)], Report())[0]
        out.append(encoder.encode(conv))
    return out


@pytest.mark.parametrize(
    "family,end", [("tiny-llama", "<|eot_id|>"), ("tiny-gemma3", "<end_of_turn>"), ("tiny-qwen3", "<|im_end|>")]
)
def test_packed_loss_equals_unpacked_loss(tiny_dir, tokenizer_of, family, end):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir(family)))
    tok = tokenizer_of(family)
    ex = encoded(tok, end)
    packed = collate(ex, tok.pad_token_id, packing=True, row_tokens=4096)
    padded = collate(ex, tok.pad_token_id, packing=False, row_tokens=4096)
    assert packed.input_ids.shape[0] == 1 and padded.input_ids.shape[0] == len(ex)
    assert packed.num_target_tokens == padded.num_target_tokens == sum(e.num_target_tokens for e in ex)
    lp, cp, np_ = batch_loss(model, packed, torch.device("cpu"))
    lu, cu, nu = batch_loss(model, padded, torch.device("cpu"))
    assert np_ == nu
    assert float(lp.sum().detach()) == pytest.approx(float(lu.sum().detach()), rel=1e-5)
    assert cp == cu


def test_position_ids_restart_and_labels_never_cross_examples(tokenizer_of):
    tok = tokenizer_of("tiny-llama")
    ex = encoded(tok, "<|eot_id|>")
    b = collate(ex, tok.pad_token_id, packing=True, row_tokens=4096)
    bounds = b.cu_seqlens[0]
    assert bounds == [0, *list(torch.cumsum(torch.tensor([len(e) for e in ex]), 0).tolist())]
    for start, stop in itertools.pairwise(bounds):
        assert b.position_ids[0, start:stop].tolist() == list(range(stop - start))
        assert b.labels[0, start] == IGNORE_INDEX  # an example's first token is never predicted from the previous


def test_no_attention_across_examples(tiny_dir, tokenizer_of):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir("tiny-llama"))).eval()
    tok = tokenizer_of("tiny-llama")
    ex = encoded(tok, "<|eot_id|>")
    b = collate(ex, tok.pad_token_id, packing=True, row_tokens=4096)
    changed = b.input_ids.clone()
    first_end = b.cu_seqlens[0][1]
    changed[0, 1:first_end] = (changed[0, 1:first_end] + 7) % 200 + 10  # rewrite example 1
    with torch.no_grad():
        a = model(input_ids=b.input_ids, position_ids=b.position_ids, use_cache=False).logits
        c = model(input_ids=changed, position_ids=b.position_ids, use_cache=False).logits
    assert not torch.allclose(a[0, :first_end], c[0, :first_end])
    torch.testing.assert_close(a[0, first_end:], c[0, first_end:], rtol=1e-5, atol=1e-5)


def test_rows_respect_the_row_budget(tokenizer_of):
    tok = tokenizer_of("tiny-llama")
    ex = encoded(tok, "<|eot_id|>")
    budget = max(len(e) for e in ex) + 5
    b = collate(ex, tok.pad_token_id, packing=True, row_tokens=budget)
    assert all(row[-1] <= budget for row in b.cu_seqlens)
    assert sum(len(row) - 1 for row in b.cu_seqlens) == len(ex)
