"""Quality on the CPU: a tiny model learns a rule it must generalise (reversal of unseen strings, a letter mapping
behind a system message, a preference).

Figures are recorded in docs/quality.md.
"""

import json

import pytest
from safetensors import safe_open

from tuneforge.train.demo_task import held_out_quality

LORA_FIGURE = 0.75  # docs/quality.md: 0.77 measured; a little slack for thread-count float differences


@pytest.mark.slow  # ~100 s on 2 cores; FULL tuning from the random init
def test_full_tuning_reaches_90_percent_on_held_out_strings(tmp_path, settings):
    assert held_out_quality(tmp_path, "FULL", epochs=4, settings=settings)["held_out_exact_match"] >= 0.9


@pytest.mark.slow
def test_lora_tuning_reaches_its_documented_figure(tmp_path, settings):
    # docs/quality.md: LoRA rank 16 teaches reversal to a tiny-llama that was first FULL-tuned to copy its input
    # (continued tuning from that run's output).
    result = held_out_quality(tmp_path, "PEFT_ADAPTER", epochs=4, settings=settings, adapter_size=16)
    assert result["held_out_exact_match"] >= LORA_FIGURE


@pytest.mark.slow  # ~60 s each on 2 cores (the SFT base is most of it); docs/quality.md
@pytest.mark.parametrize("mode", ["FULL", "PEFT_ADAPTER"])
def test_preference_tuning_learns_to_prefer_and_follow_the_rule(tmp_path, settings, mode):
    from tuneforge.train.preference_task import held_out_preference

    result = held_out_preference(tmp_path, mode, settings=settings)
    assert result["preference_accuracy_before"] <= 0.8  # the SFT base knows both answers and prefers neither much
    assert result["preference_accuracy_after"] >= 0.9
    assert result["greedy_follows_rule"] >= 0.9


STAND_IN_MODES = [
    ("tiny-gemma3", "PEFT_ADAPTER"),  # what every dev-mode Gemini job runs on
    ("tiny-gemma3", "FULL"),
    ("tiny-llama", "PEFT_ADAPTER"),
    ("tiny-llama", "FULL"),
    ("tiny-qwen3", "PEFT_ADAPTER"),
    ("tiny-qwen3", "FULL"),
]


@pytest.mark.slow  # ~2-4 min each on 2 cores; docs/quality.md, "Stand-ins"
@pytest.mark.parametrize(("model", "mode"), STAND_IN_MODES)
def test_every_stand_in_learns_a_chat_task_with_a_system_message(tmp_path, settings, model, mode):
    """Issue 14: each family, in each mode its catalog entry allows, with the catalog's defaults, learns a letter
    mapping of unseen strings behind a system message (the shipped pre-training makes the stand-ins capable bases)."""
    from tuneforge.catalog import load_catalog
    from tuneforge.catalog.catalog import TuningMode
    from tuneforge.train.stand_ins import chat_quality

    assert TuningMode(mode) in load_catalog(settings).modes(model)
    result = chat_quality(tmp_path, model, mode, settings=settings)
    assert result["held_out_exact_match"] >= 0.9, result


@pytest.mark.slow  # ~1 min each on 2 cores; docs/quality.md, "Images"
@pytest.mark.parametrize("vision_tower", [False, True], ids=["vision-frozen", "vision-tuned"])
def test_the_llama4_stand_in_learns_to_read_images(tmp_path, settings, vision_tower):
    """Issue 16: LoRA on the tiny Llama 4 (language model and routed experts; the vision tower when asked) names the
    colour of a shape in held-out images; the task has four colours, so the text alone gets at most the majority
    class (30%)."""
    from tuneforge.train.image_task import image_quality

    result = image_quality(tmp_path, settings=settings, epochs=8, tune_vision_tower=vision_tower)
    assert result["held_out_exact_match"] >= 0.9, result
    final = tmp_path / "run" / "postprocess/node-0/checkpoints/final"
    adapted = json.loads((final / "adapter_config.json").read_text())
    assert any(p.endswith("experts.gate_up_proj") for p in adapted["target_parameters"])  # the routed experts too
    with safe_open(str(final / "adapter_model.safetensors"), "pt") as saved:
        names = saved.keys()  # every LoRA weight by its full module path
    assert any("vision_model" in name for name in names) == vision_tower


@pytest.mark.slow  # ~2 min (LoRA) and ~4 min (FULL) on 2 cores, after the one-time GGUF conversion (~30 s)
@pytest.mark.parametrize("mode", ["PEFT_ADAPTER", "FULL"])
def test_the_real_base_learns_a_task_it_fails_untuned(tmp_path, settings, mode):
    """SmolLM2-135M-Instruct (docs/quality.md, "The real base"): 0% held out before, at least 90% after, with the
    catalog's defaults; the held-out animals are never trained on, and answering one word scores under 50%."""
    from tuneforge.train.real_base import held_out_covering

    result = held_out_covering(tmp_path, mode, settings=settings)
    assert result["held_out_exact_match_before"] <= 0.1
    assert result["held_out_exact_match_after"] >= 0.9 > result["majority_answer_rate"] + 0.3


@pytest.mark.slow  # ~3 min on 2 cores: the supervised LoRA run, then DPO on it
def test_preference_tuning_of_the_real_base_learns_the_preferred_form(tmp_path, settings):
    """SmolLM2 (docs/quality.md, "The real base"): DPO continued from the supervised adapter, with the catalog's
    preference learning rate, makes the capitals the preferred answer on held-out animals and the greedy answer on
    some of them (the supervised model: 0% and 0%)."""
    from tuneforge.train.real_base import held_out_preference_covering

    result = held_out_preference_covering(tmp_path, settings=settings)
    assert result["preference_accuracy_before"] <= 0.1 and result["greedy_follows_rule_before"] <= 0.1
    assert result["preference_accuracy_after"] >= 0.9 and result["greedy_follows_rule_after"] >= 0.3
