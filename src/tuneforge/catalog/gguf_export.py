"""A tuned model of a Llama-family base as one GGUF file (llama.cpp, Ollama, LM Studio), with an Ollama ``Modelfile``
beside it: a LoRA adapter is merged into its base first; FULL weights are written as they are. The file carries the
tokenizer (byte-level BPE: tokens, types, merges, special ids) and the chat template, so it runs on its own.

Tensors follow llama.cpp's names and layout (its convert_hf_to_gguf.py): the query and key projections are permuted
back to the rotary layout llama.cpp expects (transformers permutes them again when it reads the file). Norms stay
float32; matrices are float16 (``f16``) or 8-bit blocks (``q8_0``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.catalog.gguf import weights_source
from tuneforge.catalog.model_folder import is_adapter
from tuneforge.errors import InvalidArgument

QUANTIZATIONS = ("f16", "q8_0")
EXPORTABLE = "llama"  # the model_type written (llama.cpp's "llama" architecture; SmolLM2 is one)
MODELFILE = "Modelfile"


def export_gguf(model_dir: Path, out_dir: Path, quantization: str = "f16", *, base_dir: Path | None = None) -> Path:
    """Write ``model_dir`` (a full model folder, or a LoRA adapter on ``base_dir``: model_folder.weights_at finds it) as
    ``out_dir/<name>.<quantization>.gguf`` plus ``out_dir/Modelfile``; returns the GGUF file's path."""
    import gguf  # lazy: torch, transformers and gguf load only for an export

    if quantization not in QUANTIZATIONS:
        raise InvalidArgument(f"quantization {quantization!r} is not supported; use one of {', '.join(QUANTIZATIONS)}")
    model, tokenizer_dir, weights_dir = _merged_model(Path(model_dir), base_dir)
    config = model.config
    if config.model_type != EXPORTABLE:
        raise InvalidArgument(
            f"{model_dir}: GGUF export writes Llama-family models (llama, SmolLM2); this one is a "
            f"{config.model_type!r} model"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = Path(model_dir).resolve().parts  # a run's …/<run>/postprocess/node-0/checkpoints/final is named <run>
    name = parts[parts.index("postprocess") - 1] if "postprocess" in parts[1:] else parts[-1]
    path = out_dir / f"{name}.{quantization}.gguf"
    partial = path.with_name(path.name + ".partial")  # a failed export leaves no file that looks whole
    writer = gguf.GGUFWriter(partial, EXPORTABLE)
    _write_metadata(writer, config, name, quantization)
    _write_tokenizer(writer, tokenizer_dir, config.vocab_size, _pre_tokenizer(weights_dir))
    _write_tensors(writer, model, config, quantization)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.rename(path)
    (out_dir / MODELFILE).write_text(modelfile(path.name, tokenizer_dir))
    return path


def _merged_model(model_dir: Path, base_dir: Path | None) -> tuple[Any, Path, Path]:
    """(the model in float32 with any LoRA merged in, the folder holding its tokenizer, the folder of the weights it
    started from: the adapter's base, or the model itself)."""
    import torch
    from transformers import AutoModelForCausalLM

    if not is_adapter(model_dir):
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), model_dir, model_dir
    from peft import PeftModel

    if base_dir is None or not (base_dir / "config.json").exists():
        raise InvalidArgument(f"{model_dir} is a LoRA adapter; name its base model folder (--base)")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), model_dir)
    merged = model.merge_and_unload()
    return merged, model_dir if (model_dir / "tokenizer.json").exists() else base_dir, base_dir


def _write_metadata(writer: Any, config: Any, name: str, quantization: str) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope_parameters: dict[str, Any] = getattr(config, "rope_parameters", None) or {}
    rope = float(rope_parameters.get("rope_theta") or getattr(config, "rope_theta", None) or 1e4)
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(rope)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    file_type = gguf.LlamaFileType.MOSTLY_F16 if quantization == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_tokenizer(writer: Any, tokenizer_dir: Path, vocab_size: int, pre: str) -> None:
    """Byte-level BPE as llama.cpp reads it: every id up to the model's vocabulary size (unused ids padded), their
    types, the merges, the special ids and the chat template."""
    import gguf

    tokenizer = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    if tokenizer.get("model", {}).get("type") != "BPE":
        raise InvalidArgument(f"{tokenizer_dir}: GGUF export writes byte-level BPE tokenizers; this one is not")
    vocab = tokenizer["model"]["vocab"]
    added = {t["id"]: t for t in tokenizer.get("added_tokens", [])}
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [gguf.TokenType.UNUSED] * vocab_size
    for text, i in vocab.items():
        if i < vocab_size:
            tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for i, token in added.items():
        if i < vocab_size:
            tokens[i] = token["content"]
            types[i] = gguf.TokenType.CONTROL if token.get("special") else gguf.TokenType.USER_DEFINED
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores([0.0] * vocab_size)  # readers that find no merges derive them from these
    # the merges as written (a vocabulary of bytes alone has none, and the key is still written), then the special
    # ids and the chat template
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tokenizer["model"].get("merges", [])])
    gguf.SpecialVocab(tokenizer_dir, load_merges=False, n_vocab=vocab_size).add_to_gguf(writer, quiet=True)


def _pre_tokenizer(weights_dir: Path) -> str:
    """llama.cpp's pre-tokenizer name: the one the base's own GGUF file named, when tuneforge converted the base from
    one (its source record); else llama.cpp's default."""
    return str((weights_source(weights_dir) or {}).get("tokenizer_pre", "default"))


def _permute(weights: Any, n_head: int) -> Any:
    """Hugging Face's rotary layout of a query or key projection back to llama.cpp's (its convert script's)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _write_tensors(writer: Any, model: Any, config: Any, quantization: str) -> None:
    import gguf
    import numpy as np

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    state = model.state_dict()
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reuses the token embeddings as the output head
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise InvalidArgument(f"GGUF export: no llama.cpp name for the tensor {hf_name}")
        data = tensor.detach().float().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads)
        if data.ndim == 1:
            writer.add_tensor(name, data.astype(np.float32))
        elif quantization == "f16":
            writer.add_tensor(name, data.astype(np.float16))
        else:
            quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)


def modelfile(gguf_name: str, tokenizer_dir: Path) -> str:
    """An Ollama Modelfile for the file: the weights, the chat template in Ollama's Go-template form for ChatML or
    Llama 3 turns (the file's own Jinja template is the reference), and the stop token."""
    jinja, settings = tokenizer_dir / "chat_template.jinja", tokenizer_dir / "tokenizer_config.json"
    template = jinja.read_text() if jinja.exists() else ""
    if not template and settings.exists():
        template = json.loads(settings.read_text()).get("chat_template") or ""
    go, stop = (CHATML, "<|im_end|>") if "<|im_start|>" in template else (LLAMA3, "<|eot_id|>")
    return f'FROM ./{gguf_name}\nTEMPLATE """{go}"""\nPARAMETER stop "{stop}"\n'


CHATML = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
LLAMA3 = (
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
