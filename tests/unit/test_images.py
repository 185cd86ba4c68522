"""Image datasets: every image checked with its line, JSON path and fix; mixed files filtered and listed; loss masks
token by token (image and prompt tokens never trained, replies and their end-of-turn trained) in both formats and
multi-turn; truncation never cuts an image; packed micro-batches keep each example's images and never attend across
examples."""

from __future__ import annotations

import base64
import json
import random

import pytest
import torch

from tuneforge.catalog import load_catalog
from tuneforge.catalog.catalog import TuningMode
from tuneforge.data import IGNORE_INDEX, prepare_dataset
from tuneforge.train.image_task import QUESTION, shape_image
from tuneforge.train.preflight import open_model

SCOUT = "meta/llama4@llama-4-scout-17b-16e-instruct"


@pytest.fixture(scope="module")
def png():
    return shape_image(random.Random(1))[0]


@pytest.fixture()
def scout(settings):
    from tuneforge.train.loading import chat_encoder

    source, limits = open_model(
        load_catalog(settings), SCOUT, None, TuningMode.PEFT_ADAPTER, dev=True, settings=settings
    )
    return source, limits, chat_encoder(source, settings=settings)


def _chat(url: str, answer: str = "red", turns: int = 1) -> dict:
    messages = []
    for i in range(turns):
        content = [{"type": "text", "text": f"{QUESTION} ({i})"}, {"type": "image_url", "image_url": {"url": url}}]
        messages += [
            {"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]
    return {"messages": messages}


def _gc(uri: str, answer: str = "red") -> dict:
    part = {"file_data": {"mime_type": "image/png", "file_uri": uri}}
    return {
        "systemInstruction": {"parts": [{"text": "Name colours."}]},
        "contents": [
            {"role": "user", "parts": [{"text": QUESTION}, part]},
            {"role": "assistant", "parts": [{"text": answer}]},
        ],
    }


def _write(settings, name: str, lines: list) -> str:
    path = settings.resolved_bucket_root / "b" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return f"gs://b/{name}"


def _image(settings, name: str, data: bytes) -> str:
    path = settings.resolved_bucket_root / "b" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"gs://b/{name}"


def test_every_bad_image_is_reported_with_its_line_path_and_fix(settings, scout, png):
    _, limits, encoder = scout
    gif = base64.b64encode(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").decode()
    uri = _image(settings, "ok.png", png)
    _image(settings, "fake.png", b"%PDF-1.4 not an image")
    _image(settings, "broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    lines = [
        _chat(uri),  # 1: fine
        _chat(f"data:image/gif;base64,{gif}"),  # 2: GIF refused
        _chat("gs://b/missing.png"),  # 3: no such object
        _chat("gs://b/fake.png"),  # 4: a PDF named .png
        _chat("gs://b/broken.png"),  # 5: does not open
        _chat("gs://b/../outside.png"),  # 6: path escape
        _chat(_image(settings, "png-named.jpeg", png)),  # 7: a PNG named .jpeg
    ]
    bad = json.loads(json.dumps(_chat(uri)))
    bad["messages"][0]["content"][1]["image_url"]["detail"] = "medium"  # 8: detail not low/high/auto
    lines.append(bad)
    report = prepare_dataset(_write(settings, "bad.jsonl", lines), limits, encoder, settings=settings).report
    found = {(p.line, p.path): p.message for p in report.errors}
    url = "messages[0].content[1].image_url"
    assert "image/gif" in found[(2, f"{url}.url")]
    assert "not found" in found[(3, f"{url}.url")]
    assert "a PDF document" in found[(4, f"{url}.url")] and "JPEG, PNG or WEBP" in found[(4, f"{url}.url")]
    assert "does not open" in found[(5, f"{url}.url")]
    assert "'..'" in found[(6, f"{url}.url")]
    assert "declared image/jpeg but the bytes are image/png" in found[(7, f"{url}.url")]
    assert '"medium" is not one of low, high, auto' in found[(8, f"{url}.detail")]
    assert 1 not in {p.line for p in report.errors}


def test_an_image_over_the_size_limit_is_refused(settings, scout, png):
    _, limits, encoder = scout
    uri = _image(settings, "big.png", png)
    small = settings.model_copy(update={"max_image_bytes": len(png) - 1})
    report = prepare_dataset(_write(settings, "big.jsonl", [_chat(uri)]), limits, encoder, settings=small).report
    assert "over the" in report.errors[0].message and "TUNEFORGE_MAX_IMAGE_BYTES" in report.errors[0].message


def test_images_for_a_text_only_model_name_the_model_and_the_image_model(settings, png):
    _source, limits = open_model(
        load_catalog(settings), "tiny-llama", None, TuningMode.PEFT_ADAPTER, dev=True, settings=settings
    )
    uri = _image(settings, "x.png", png)
    report = prepare_dataset(_write(settings, "t.jsonl", [_chat(uri)]), limits, None, settings=settings).report
    assert "tiny-llama accepts text only" in report.errors[0].message and SCOUT in report.errors[0].message


def test_mixed_files_drop_text_only_lines_and_list_them(settings, scout, png):
    _, limits, encoder = scout
    uri = _image(settings, "m.png", png)
    text = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    prepared = prepare_dataset(
        _write(settings, "mixed.jsonl", [_chat(uri), text, _chat(uri)]), limits, encoder, settings=settings
    )
    assert prepared.report.ok and len(prepared.examples) == 2
    assert prepared.dropped == ["line 2: text-only example in a dataset with images (dropped)"]
    assert "lines 2" in prepared.report.warnings[0].message
    only_text = prepare_dataset(_write(settings, "text.jsonl", [text]), limits, encoder, settings=settings)
    assert only_text.report.ok  # a text-only file for Scout is fine (its stand-in has Llama 4's template)


@pytest.mark.parametrize("fmt", ["chat", "generate_content", "multi_turn"])
def test_image_and_prompt_tokens_are_never_trained_replies_and_eot_are(settings, scout, png, fmt):
    _, limits, encoder = scout
    uri = _image(settings, "mask.png", png)
    line = {"chat": _chat(uri), "generate_content": _gc(uri), "multi_turn": _chat(uri, turns=2)}[fmt]
    [example] = prepare_dataset(_write(settings, f"{fmt}.jsonl", [line]), limits, encoder, settings=settings).examples
    tok = encoder.tokenizer
    image_ids = {tok.convert_tokens_to_ids(t) for t in ("<|image_start|>", "<|image_end|>", "<|patch|>", "<|image|>")}
    trained = [i for i, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    assert not image_ids & set(trained)
    turns = 2 if fmt == "multi_turn" else 1
    assert tok.decode(trained) == "red<|eot|>" * turns  # every reply and its end of turn, nothing else
    assert len(example.images) == turns
    for i, label in zip(example.input_ids, example.labels):
        assert label in (IGNORE_INDEX, i)


def test_truncation_never_cuts_an_image(settings, scout, png):
    _source, _, encoder = scout
    uri = _image(settings, "t.png", png)
    [full] = prepare_dataset(_write(settings, "fit.jsonl", [_chat(uri)]), scout[1], encoder, settings=settings).examples
    image_end = max(
        i for i, t in enumerate(full.input_ids) if t == encoder.tokenizer.convert_tokens_to_ids("<|image_end|>")
    )
    for strict in (False, True):
        limits = scout[1].__class__(**{**scout[1].__dict__, "max_seq_len": image_end - 3, "strict": strict})
        prepared = prepare_dataset(
            _write(settings, "cut.jsonl", [_chat(uri), _chat(uri)]), limits, encoder, settings=settings
        )
        problems = prepared.report.errors if strict else prepared.report.warnings
        assert "truncating it would cut an image" in problems[0].message and problems[0].line == 1
        assert not prepared.examples
        if not strict:
            assert "no example is left to train on" in prepared.report.errors[0].message


def test_packed_images_stay_with_their_examples_and_never_attend_across(settings, scout, png):
    """Two examples with different images packed in one row give the same loss as each alone (block-diagonal
    attention, each image's features at its own tokens)."""
    from tuneforge.train.fastpath import CausalLMLoss, pack
    from tuneforge.train.loading import load_model

    source, limits, encoder = scout
    other = shape_image(random.Random(99))[0]
    a, b = _image(settings, "pa.png", png), _image(settings, "pb.png", other)
    examples = prepare_dataset(
        _write(settings, "pack.jsonl", [_chat(a, "red"), _chat(b, "blue", turns=2)]), limits, encoder, settings=settings
    ).examples
    model = load_model(source, torch.device("cpu"), torch.float32).eval()
    loss = CausalLMLoss(model)
    ones = torch.ones(2)
    with torch.no_grad():
        together = pack(examples, 0, None, image_inputs=encoder.image_inputs)
        assert together.images["pixel_values"].shape[0] == sum(
            encoder.image_inputs(e.images)["pixel_values"].shape[0] for e in examples
        )
        _, sums, _ = loss(together, ones)
        alone = sum(loss(pack([e], 0, None, image_inputs=encoder.image_inputs), ones)[1] for e in examples)
    torch.testing.assert_close(sums, alone, rtol=1e-5, atol=1e-5)
    swapped = encoder.image_inputs(list(reversed([i for e in examples for i in e.images])))
    together.images = swapped
    with torch.no_grad():
        wrong = loss(together, ones)[1]
    assert not torch.allclose(wrong, sums)  # the images matter: swapped, the loss changes


def test_the_data_stats_count_images_per_example(settings, scout, png):
    from tuneforge.data.stats import supervised_tuning_data_stats

    _, limits, encoder = scout
    uri = _image(settings, "s.png", png)
    prepared = prepare_dataset(
        _write(settings, "s.jsonl", [_chat(uri), _chat(uri, turns=2)]), limits, encoder, settings=settings
    )
    stats = supervised_tuning_data_stats(prepared.examples, prepared.conversations, epochs=1, steps=1)
    assert stats["userImagePerExampleDistribution"]["max"] == 2
    assert stats["userDatasetExamples"][0]["parts"][1] == {"fileData": {"mimeType": "image/png", "fileUri": uri}}
