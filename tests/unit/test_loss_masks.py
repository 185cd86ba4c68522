"""DESIGN.md rule 4: every assistant turn trained, each through its EOS; nothing else trained."""

import json

import pytest

from tuneforge.data import IGNORE_INDEX, ChatEncoder, Report, parse_lines

FAMILIES = {"tiny-llama": "<|eot_id|>", "tiny-gemma3": "<end_of_turn>", "tiny-qwen3": "<|im_end|>"}

MULTI_TURN = {
    "chat": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Synonym for quick?"},
            {"role": "assistant", "content": "Fast."},
            {"role": "user", "content": "And slow?"},
            {"role": "assistant", "content": "Sluggish."},
        ]
    },
    "generate_content": {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Synonym for quick?"}]},
            {"role": "model", "parts": [{"text": "Fast."}]},
            {"role": "user", "parts": [{"text": "And slow?"}]},
            {"role": "assistant", "parts": [{"text": "Sluggish."}]},
        ],
    },
    "prompt_completion": {"prompt": "Synonym for quick?", "completion": "Fast."},
}


def encode(tokenizer, end, obj):
    report = Report()
    conv = parse_lines([json.dumps(obj)], report)[0]
    return ChatEncoder(tokenizer, end_of_turn=end).encode(conv)


def trained_runs(enc):
    """The trained tokens, as contiguous runs of ids."""
    runs, current = [], []
    for tok, lab in zip(enc.input_ids, enc.labels):
        if lab != IGNORE_INDEX:
            assert lab == tok  # labels are the input ids (the model shifts)
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("fmt", sorted(MULTI_TURN))
def test_exactly_the_assistant_turns_and_their_eos_are_trained(tokenizer_of, family, fmt):
    tok = tokenizer_of(family)
    end = FAMILIES[family]
    enc = encode(tok, end, MULTI_TURN[fmt])
    replies = ["Fast."] if fmt == "prompt_completion" else ["Fast.", "Sluggish."]
    expected = [tok(r, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids(end)] for r in replies]
    assert trained_runs(enc) == expected
    # The untrained tokens are the whole rest: system, user text and template markers, including the user's text.
    untrained = tok.decode([t for t, label in zip(enc.input_ids, enc.labels) if label == IGNORE_INDEX])
    assert "Synonym for quick?" in untrained
    assert "Fast." not in untrained and "Sluggish." not in untrained
    if fmt != "prompt_completion":
        assert "Be brief." in untrained and "And slow?" in untrained
    # Tokenising the pieces separately gives the same ids as tokenising the rendered whole.
    whole = tok(
        ChatEncoder(tok, end).render(parse_lines([json.dumps(MULTI_TURN[fmt])], Report())[0].template_messages()),
        add_special_tokens=False,
    )["input_ids"]
    assert enc.input_ids == whole


def test_exact_ids_for_tiny_llama(tokenizer_of):
    """The literal masked ids for one multi-turn chat example (byte-level vocab: 6 specials, then 256 bytes)."""
    tok = tokenizer_of("tiny-llama")
    enc = encode(
        tok,
        "<|eot_id|>",
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
                {"role": "assistant", "content": "d"},
            ]
        },
    )
    B, S, E, EOT = 0, 2, 3, 4  # <|begin_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|>
    ids = {ch: tok.convert_tokens_to_ids(ch) for ch in "abcdustern"}
    nl = tok("\n", add_special_tokens=False)["input_ids"][0]
    user = [ids[c] for c in "user"]
    asst = tok("assistant", add_special_tokens=False)["input_ids"]
    expected_ids = [
        B,
        S,
        *user,
        E,
        nl,
        nl,
        ids["a"],
        EOT,
        S,
        *asst,
        E,
        nl,
        nl,
        ids["b"],
        EOT,
        S,
        *user,
        E,
        nl,
        nl,
        ids["c"],
        EOT,
        S,
        *asst,
        E,
        nl,
        nl,
        ids["d"],
        EOT,
    ]
    assert enc.input_ids == expected_ids
    trained = [i for i, label in enumerate(enc.labels) if label != IGNORE_INDEX]
    assert [enc.input_ids[i] for i in trained] == [ids["b"], EOT, ids["d"], EOT]
    assert ids["b"] == 6 + sorted(__import__("tokenizers").pre_tokenizers.ByteLevel.alphabet()).index("b")


def test_truncation_from_the_right(tokenizer_of):
    tok = tokenizer_of("tiny-qwen3")
    enc = ChatEncoder(tok, "<|im_end|>").encode(
        parse_lines([json.dumps({"prompt": "x" * 50, "completion": "y" * 50})], Report())[0], max_length=70
    )
    assert enc.truncated and len(enc) == 70 and enc.meta["full_length"] > 70
    assert enc.num_target_tokens > 0 and enc.input_ids[-1] != tok.convert_tokens_to_ids("<|im_end|>")


def test_template_without_eos_is_refused(tokenizer_of):
    from tuneforge.errors import InvalidArgument

    tok = tokenizer_of("tiny-llama")
    bad = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    conv = parse_lines([json.dumps({"prompt": "a", "completion": "b"})], Report())[0]
    with pytest.raises(InvalidArgument, match="does not end assistant turns"):
        ChatEncoder(tok, "<|eot_id|>", chat_template=bad).encode(conv)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_openai_weight_0_reply_is_context_and_bad_weights_are_reported(tokenizer_of, family):
    """OpenAI's per-message weight: 0 keeps an assistant reply in the prompt untrained, 1 (the default) trains it."""
    tok, end = tokenizer_of(family), FAMILIES[family]
    line = json.loads(json.dumps(MULTI_TURN["chat"]))
    line["messages"][2]["weight"] = 0
    line["messages"][4]["weight"] = 1
    runs = trained_runs(encode(tok, end, line))
    assert [tok.decode(r) for r in runs] == ["Sluggish." + end]  # "Fast." is context only
    report = Report()
    bad = json.loads(json.dumps(MULTI_TURN["chat"]))
    bad["messages"][2]["weight"] = 0.5
    bad["messages"][1]["weight"] = 1
    parse_lines([json.dumps(bad)], report)
    found = {(p.path, p.message) for p in report.errors}
    assert ("messages[2].weight", "weight must be 0 or 1 (got 0.5); 0 leaves the message untrained") in found
    assert ("messages[1].weight", "weight applies to assistant messages only; remove it") in found
