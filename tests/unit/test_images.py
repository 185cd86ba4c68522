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
    # The image counts are a tuneforge extension; the rest is Vertex's own message, which the SDKs read whole, and
    # both SDKs read past the extension (aiplatform's REST transport ignores unknown fields, google-genai drops them).
    from google.cloud.aiplatform_v1beta1.types import SupervisedTuningDataStats
    from google.genai import types
    from tests.integration.test_wire_contract import assert_lossless

    assert_lossless(
        SupervisedTuningDataStats, {k: v for k, v in stats.items() if k != "userImagePerExampleDistribution"}
    )
    SupervisedTuningDataStats.from_json(json.dumps(stats), ignore_unknown_fields=True)
    parsed = types.SupervisedTuningDataStats._from_response(response=stats, kwargs={})
    assert parsed.user_dataset_examples[0].parts[1].file_data.file_uri == uri


def test_lora_adapts_attention_and_experts_never_the_router_and_the_vision_tower_only_when_asked(tmp_path, tiny_dir):
    """What is adapted is what adapter_config.json records, and plain peft reads it back to the same outputs."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from tuneforge.train.lora import apply_lora

    folder = tiny_dir("tiny-llama4")
    model = apply_lora(AutoModelForImageTextToText.from_pretrained(str(folder)), 4, 8.0, 0.0, experts=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("vision" in n or "projector" in n or "router" in n for n in trainable), trainable
    assert any("self_attn.q_proj" in n for n in trainable) and any("shared_expert" in n for n in trainable)
    assert any(".experts." in n for n in trainable)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)  # a trained-looking adapter: B is zero at init
    ids = torch.tensor([[1, 40, 41, 42, 43]])
    with torch.no_grad():
        ours = model(input_ids=ids).logits
    model.save_pretrained(str(tmp_path / "adapter"))
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    layers = AutoModelForImageTextToText.from_pretrained(str(folder)).config.text_config.num_hidden_layers
    assert len(saved["target_parameters"]) == 2 * layers  # gate_up_proj and down_proj of every layer's experts
    plain = PeftModel.from_pretrained(
        AutoModelForImageTextToText.from_pretrained(str(folder)), str(tmp_path / "adapter")
    )
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, ours)

    asked = apply_lora(AutoModelForImageTextToText.from_pretrained(str(folder)), 4, 8.0, 0.0, vision_tower=True)
    adapted = [n for n, p in asked.named_parameters() if p.requires_grad]
    assert any("vision_model" in n for n in adapted) and any("projector" in n for n in adapted)
    assert not any(".experts." in n for n in adapted)  # experts=False: the routed experts are left as they are


def test_experts_need_no_dropout():
    from tuneforge.errors import InvalidArgument
    from tuneforge.train.config import TuningConfig

    with pytest.raises(InvalidArgument, match="tune_experts needs lora_dropout 0"):
        TuningConfig.build(
            base_model="tiny-llama4", train_dataset="t.jsonl", output_uri="o", tune_experts=True, lora_dropout=0.1
        )
    # Left to its default, dropout simply leaves the experts out.
    assert (
        TuningConfig(base_model="tiny-llama4", train_dataset="t", output_uri="o", lora_dropout=0.1).tune_experts is None
    )


def test_scout_with_configured_weights_loads_them_trains_and_refuses_a_text_model(settings, tmp_path, tiny_dir, png):
    """Not dev mode: the operator's catalog names Scout's weights (a gs:// folder in Hugging Face layout, here the
    stand-in's, saved as real weights are); the run loads those, with their processor, and a text-only Llama folder
    named as Scout's weights is refused by architecture."""
    import shutil

    from transformers import AutoProcessor

    from tuneforge.settings import Settings
    from tuneforge.train.config import TuningConfig
    from tuneforge.train.recipes.sft import run_sft

    shutil.copytree(tiny_dir("tiny-llama4"), settings.resolved_bucket_root / "w" / "scout", dirs_exist_ok=True)
    shutil.copytree(tiny_dir("tiny-llama"), settings.resolved_bucket_root / "w" / "llama3", dirs_exist_ok=True)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(f"models:\n  {SCOUT}:\n    weights: gs://w/scout\n")
    real = Settings(home=settings.home, catalog=catalog, dev=False)
    source, _ = open_model(load_catalog(real), SCOUT, None, TuningMode.PEFT_ADAPTER, dev=False, settings=real)
    assert not source.resolved.stand_in and source.base_dir == real.resolved_bucket_root / "w" / "scout"
    data = _write(real, "real.jsonl", [_chat(_image(real, "r.png", png))] * 4)
    config = TuningConfig(base_model=SCOUT, train_dataset=data, output_uri=str(tmp_path / "out"), max_steps=1)
    final = run_sft(config, settings=real).final_dir
    assert AutoProcessor.from_pretrained(str(final)).image_processor is not None  # saved beside the adapter
    catalog.write_text(f"models:\n  {SCOUT}:\n    weights: gs://w/llama3\n")
    with pytest.raises(Exception, match="architecture must match"):
        run_sft(config.model_copy(update={"output_uri": str(tmp_path / "bad")}), settings=real)


def test_a_run_reads_its_images_with_the_jobs_access(settings, png):
    """The training run reads the images again (the create checked them): with the job's project's access, so an
    image the project may not read stops the run before any weights load, and one it may read trains."""
    from tuneforge.errors import DatasetInvalid, PermissionDenied
    from tuneforge.train.callbacks import Callbacks
    from tuneforge.train.config import TuningConfig
    from tuneforge.train.recipes.sft import resolve_data

    class OnlyBucket:
        def __init__(self, bucket: str):
            self.bucket = bucket

        def check(self, bucket: str, path: str, *, write: bool, uri: str, field: str) -> None:
            if bucket != self.bucket:
                raise PermissionDenied(f"{field}: may not read {uri}")

    config = TuningConfig(
        base_model=SCOUT,
        train_dataset=_write(settings, "run.jsonl", [_chat(_image(settings, "r.png", png))] * 2),
        output_uri="gs://b/out",
        dev=True,
    )
    data = resolve_data(config, settings, load_catalog(settings), Callbacks(), OnlyBucket("b"))
    assert len(data.train.examples) == 2
    with pytest.raises(DatasetInvalid) as refused:  # the line's problem, as the create reports it
        resolve_data(config, settings, load_catalog(settings), Callbacks(), OnlyBucket("other"))
    assert "may not read gs://b/r.png" in str(refused.value)
