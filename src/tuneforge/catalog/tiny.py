"""Tiny models of the seed families, with byte-level tokenizers built locally.

Nothing is downloaded: each tiny model is built from a config, saved once under ``<home>/models/`` in Hugging
Face format, and from then on loaded like any local weights. Its weights are the short pre-training shipped in
``stand_ins/<name>.safetensors`` (made by ``python -m tuneforge.train.stand_ins``: generic synthetic chat, so a
stand-in reads a chat as a real base does); without that file, or with ``pretrained=False``, a fixed-seed random
init. The tokenizers map every UTF-8 byte to one token (so any text round-trips) plus the family's special tokens,
and carry a chat template that renders the same turn markers as the real family's template.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

TINY_SEED = 1234
STAND_IN_DIR = Path(__file__).with_name("stand_ins")

# Chat templates (Jinja, as in tokenizer_config / chat_template.jinja). Each mirrors its family's real markers.
# Tool use, as Llama 3.1 renders it: the tools in a system turn ("Environment: ipython"), with the line's system text
# after them; a call as {"name", "parameters"} JSON; a tool's result as an "ipython" turn. Without tools, a
# conversation renders exactly as before tools were added (the shipped pre-training read that).
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% set sys_first = tools and messages and messages[0]['role'] == 'system' %}"
    "{% if tools %}<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nTools:\n"
    "{% for t in tools %}{{ t['function'] | tojson }}\n{% endfor %}"
    "{% if sys_first %}{{ '\n' + messages[0]['content'] }}{% endif %}<|eot_id|>{% endif %}"
    "{% for m in messages %}{% if not (sys_first and loop.first) %}"
    "<|start_header_id|>{{ 'ipython' if m['role'] == 'tool' else m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}{% if 'tool_calls' in m %}{% for c in m['tool_calls'] %}"
    "{% if m['content'] or not loop.first %}{{ '\n' }}{% endif %}"
    "{\"name\": \"{{ c['function']['name'] }}\", \"parameters\": {{ c['function']['arguments'] | tojson }}}"
    "{% endfor %}{% endif %}<|eot_id|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
# Gemma has no system role: the system text opens the first user turn, as Gemma 3's own template does.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}"
    "{% set sys = messages[0]['content'] + '\n\n' %}{% set msgs = messages[1:] %}"
    "{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if loop.first %}{{ sys }}{% endif %}{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
# Llama 4's turn markers (<|header_start|>role<|header_end|>, <|eot|>) and its image placeholder: a content part
# {"type": "image"} renders as <|image|>, which the processor expands into the image's tile and patch tokens.
LLAMA4_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|header_start|>{{ m['role'] }}<|header_end|>\n\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|image|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|eot|>{% endfor %}"
    "{% if add_generation_prompt %}<|header_start|>assistant<|header_end|>\n\n{% endif %}"
)
# Tool use, as Qwen 3 renders it: the tools inside <tools></tools> in the system turn, a call inside
# <tool_call></tool_call>, the results of one turn's calls together in a user turn, each in <tool_response>.
CHATML_TEMPLATE = (
    "{% set sys_first = tools and messages and messages[0]['role'] == 'system' %}"
    "{% if tools %}<|im_start|>system\n{% if sys_first %}{{ messages[0]['content'] }}\n\n{% endif %}"
    "# Tools\n\n<tools>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools>\n\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    "XML tags.<|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if not (sys_first and loop.first) %}{% if m['role'] == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}<|im_start|>user{% endif %}"
    "{{ '\n' }}<tool_response>\n{{ m['content'] }}\n</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}<|im_end|>\n{% endif %}"
    "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "{% if 'tool_calls' in m %}{% for c in m['tool_calls'] %}"
    "{% if m['content'] or not loop.first %}{{ '\n' }}{% endif %}"
    '<tool_call>\n{"name": "{{ c[\'function\'][\'name\'] }}", "arguments": '
    "{{ c['function']['arguments'] | tojson }}}\n</tool_call>{% endfor %}{% endif %}"
    "<|im_end|>\n{% endif %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    name: str
    config_class: str
    specials: tuple[str, ...]
    bos: str | None
    eos: str  # the end-of-turn token: generation stops here and every assistant turn is trained to end with it
    pad: str
    chat_template: str
    config: dict = field(default_factory=dict)
    # Image-text models: ``config`` (the vision tower), ``image_size`` (a tile's side in pixels), ``max_patches``
    # (tiles per image at most) and ``image_token`` (where the projected image features go in the text).
    vision: dict | None = None


_COMMON = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)

TINY_SPECS: dict[str, TinySpec] = {
    "tiny-llama": TinySpec(
        name="tiny-llama",
        config_class="LlamaConfig",
        specials=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|finetune_right_pad_id|>",
        ),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
        chat_template=LLAMA3_TEMPLATE,
        config=dict(_COMMON),
    ),
    "tiny-gemma3": TinySpec(
        name="tiny-gemma3",
        config_class="Gemma3TextConfig",
        specials=("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"),
        bos="<bos>",
        eos="<end_of_turn>",
        pad="<pad>",
        chat_template=GEMMA3_TEMPLATE,
        # Gemma 3 interleaves sliding-window and global attention layers.
        config=dict(
            _COMMON,
            head_dim=32,
            sliding_window=64,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        ),
    ),
    # Llama 4's real architecture, tiny: a mixture-of-experts text model (4 experts, every layer MoE, every fourth
    # layer without rotary embeddings, as Scout), a vision encoder of 32 px tiles in 8 px patches, the pixel-shuffle
    # adapter and the projector; Llama 4's tokenizer markers, its image tokens and its processor.
    "tiny-llama4": TinySpec(
        name="tiny-llama4",
        config_class="Llama4Config",
        specials=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|header_start|>",
            "<|header_end|>",
            "<|eot|>",
            "<|finetune_right_pad|>",
            "<|image_start|>",
            "<|image_end|>",
            "<|image|>",
            "<|patch|>",
            "<|tile_x_separator|>",
            "<|tile_y_separator|>",
        ),
        bos="<|begin_of_text|>",
        eos="<|eot|>",
        pad="<|finetune_right_pad|>",
        chat_template=LLAMA4_TEMPLATE,
        config=dict(
            _COMMON,
            tie_word_embeddings=False,
            head_dim=32,
            intermediate_size_mlp=256,
            num_local_experts=4,
            num_experts_per_tok=1,
            interleave_moe_layer_step=1,
            attention_chunk_size=4096,
        ),
        vision=dict(
            config=dict(
                hidden_size=64,
                intermediate_size=256,  # = hidden_size / pixel_shuffle_ratio**2, as in Scout (1408 -> 5632)
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=32,
                patch_size=8,
                pixel_shuffle_ratio=0.5,
                projector_input_dim=128,
                projector_output_dim=128,
                vision_output_dim=128,
            ),
            image_size=32,
            max_patches=4,
            image_token="<|patch|>",
        ),
    ),
    "tiny-qwen3": TinySpec(
        name="tiny-qwen3",
        config_class="Qwen3Config",
        specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        config=dict(_COMMON, head_dim=32),
    ),
}


def build_tokenizer(spec: TinySpec):
    """A byte-level tokenizer: special tokens first, then one token per byte (no merges)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for token in spec.specials:
        vocab[token] = len(vocab)
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in spec.specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        chat_template=spec.chat_template,
        model_max_length=spec.config["max_position_embeddings"],
    )


def stand_in_weights(name: str) -> Path | None:
    """The shipped pre-trained weights of tiny model ``name``, if any."""
    path = STAND_IN_DIR / f"{name}.safetensors"
    return path if path.exists() else None


def folder_name(name: str) -> str:
    """The folder a stand-in is built into under ``<home>/models``: its name, tagged with the digest of its shipped
    weights and its chat template. A new pre-training or template builds a new folder, while a model tuned on the
    old one (an adapter names its base folder) keeps the base it was tuned on."""
    weights = stand_in_weights(name)
    if weights is None:
        return name
    digest = hashlib.sha256(weights.read_bytes() + TINY_SPECS[name].chat_template.encode())
    return f"{name}-{digest.hexdigest()[:10]}"


def _load_pretrained(model, path: Path) -> None:
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if unexpected or set(missing) - tied:
        raise ValueError(f"{path} does not fit {model.config.model_type}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()


def _tiny_config(spec: TinySpec, tokenizer):
    import transformers

    vocab_size = ((len(tokenizer) + 63) // 64) * 64  # round up, as real vocabularies are
    token_ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config_cls = getattr(transformers, spec.config_class)
    if spec.vision is None:
        return config_cls(vocab_size=vocab_size, **token_ids, **spec.config), token_ids
    ids = tokenizer.convert_tokens_to_ids
    config = config_cls(
        text_config=dict(vocab_size=vocab_size, **token_ids, **spec.config),
        vision_config=spec.vision["config"],
        image_token_index=ids(spec.vision["image_token"]),
        boi_token_index=ids("<|image_start|>"),
        eoi_token_index=ids("<|image_end|>"),
        tie_word_embeddings=spec.config.get("tie_word_embeddings", False),
    )
    return config, token_ids


def build_processor(spec: TinySpec, tokenizer):
    """The image-text processor of a vision stand-in: the family's image processor (tiles of ``image_size``) and
    the byte-level tokenizer. Needs torchvision, as the real Llama 4 processor does."""
    from transformers import Llama4ImageProcessor, Llama4Processor

    assert spec.vision is not None
    side = spec.vision["image_size"]
    images = Llama4ImageProcessor(size={"height": side, "width": side}, max_patches=spec.vision["max_patches"])
    vision = spec.vision["config"]
    return Llama4Processor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=vision["patch_size"],
        pixel_shuffle_ratio=vision["pixel_shuffle_ratio"],
        chat_template=spec.chat_template,
    )


def build_tiny_model(name: str, dest: Path, *, pretrained: bool = True) -> Path:
    """Build tiny model ``name`` into ``dest`` (atomically: a half-built folder is never left behind), with its
    shipped pre-training unless ``pretrained`` is False."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, GenerationConfig

    spec = TINY_SPECS[name]
    tokenizer = build_tokenizer(spec)
    config, token_ids = _tiny_config(spec, tokenizer)
    auto = AutoModelForCausalLM if spec.vision is None else AutoModelForImageTextToText
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(TINY_SEED)
        model = auto.from_config(config, dtype=torch.float32)
    finally:
        torch.random.set_rng_state(state)
    weights = stand_in_weights(name) if pretrained else None
    if weights is not None:
        _load_pretrained(model, weights)
    model.generation_config = GenerationConfig(**token_ids, do_sample=False)

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        (build_processor(spec, tokenizer) if spec.vision else tokenizer).save_pretrained(tmp)
        note = (
            f"pre-trained on generic synthetic chat ({weights.name}); for tests and demos"
            if weights is not None
            else "random init; for tests and demos"
        )
        (tmp / "tuneforge_tiny.json").write_text(json.dumps({"name": name, "seed": TINY_SEED, "note": note}, indent=2))
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "config.json").exists():  # lost a race with another builder only if it finished
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
