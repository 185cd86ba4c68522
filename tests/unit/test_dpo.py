"""Preference tuning (DPO): the loss and gradients equal TRL's DPOTrainer, masks, packing, accumulation, dataset
validation, and the recipe's metrics, reference, checkpoints and resume."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tuneforge.data import ChatEncoder, Report
from tuneforge.data.conversation import Conversation
from tuneforge.data.preference import PreferencePair, encode_pair, parse_preference_lines
from tuneforge.data.tokenize import IGNORE_INDEX
from tuneforge.train.config import TuningConfig
from tuneforge.train.preference import SequenceLogProbs, dpo_loss, pack_pairs, preference_backward
from tuneforge.train.preference_task import preference_line, write_lines

END_OF_TURN = {"tiny-llama": "<|eot_id|>", "tiny-gemma3": "<end_of_turn>", "tiny-qwen3": "<|im_end|>"}
PAIRS = [
    PreferencePair(Conversation.from_pairs(("user", "abc")), "ABC", "abc"),
    PreferencePair(
        Conversation.from_pairs(("system", "Be loud."), ("user", "hello there"), ("assistant", "hi"), ("user", "x")),
        "X!",
        "a much longer dispreferred answer",
    ),
    PreferencePair(Conversation.from_pairs(("user", "é ✓")), "É ✓ OK", "no"),
    PreferencePair(Conversation.from_pairs(("user", "q")), "yes", "nope nope"),
]


def _encoder(tokenizer_of, name="tiny-llama"):
    return ChatEncoder(tokenizer_of(name), END_OF_TURN[name])


def _encoded(tokenizer_of, name="tiny-llama"):
    encoder = _encoder(tokenizer_of, name)
    return [encode_pair(encoder, p, index=i) for i, p in enumerate(PAIRS)]


def _trained_text(tokenizer, encoded):
    return tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX])


@pytest.mark.parametrize("name", sorted(END_OF_TURN))
def test_only_the_completion_and_its_end_of_turn_are_trained(tokenizer_of, name):
    tokenizer = tokenizer_of(name)
    pair = _encoded(tokenizer_of, name)[1]  # a system prompt and an earlier model turn in the prompt
    assert _trained_text(tokenizer, pair.chosen) == "X!" + END_OF_TURN[name]
    assert _trained_text(tokenizer, pair.rejected) == "a much longer dispreferred answer" + END_OF_TURN[name]
    # The prompt (earlier model turn included) is the same untrained prefix of both sequences.
    start = pair.prompt_tokens
    assert pair.chosen.input_ids[:start] == pair.rejected.input_ids[:start]
    assert all(t == IGNORE_INDEX for t in pair.chosen.labels[:start] + pair.rejected.labels[:start])
    assert "hi" in tokenizer.decode(pair.chosen.input_ids[:start])  # the earlier model turn is context


def _perturbed(model, seed=7, scale=0.02):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def _trl_loss_and_grads(policy, reference, tokenizer, encoded, beta, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    dummy = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b"}],
          "rejected": [{"role": "assistant", "content": "c"}]}]
    )  # fmt: skip
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, bf16=False, beta=beta, loss_type=["sigmoid"],
        max_length=None, precompute_ref_log_probs=False,
    )  # fmt: skip
    trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=dummy, processing_class=tokenizer)
    examples = []
    for pair in encoded:
        start = pair.prompt_tokens
        trained = [
            [t for t, lab in zip(e.input_ids[start:], e.labels[start:]) if lab != IGNORE_INDEX]
            for e in (pair.chosen, pair.rejected)
        ]
        examples.append(
            {"prompt_ids": pair.chosen.input_ids[:start], "chosen_ids": trained[0], "rejected_ids": trained[1]}
        )
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, trainer.data_collator(examples))
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


@pytest.mark.parametrize("layout", ["one row", "rows"])
def test_loss_and_gradients_equal_trl_dpo_trainer(random_tiny_dir, tokenizer_of, tmp_path, layout):
    """The same model, batch and beta: TRL's DPOTrainer (sigmoid loss) and ours agree on the loss and every
    gradient (float32; tolerances below). Our batch is packed (attention never crosses sequences), TRL's padded."""
    from transformers import AutoModelForCausalLM

    folder = str(random_tiny_dir("tiny-llama"))
    reference = AutoModelForCausalLM.from_pretrained(folder).eval()
    policy = _perturbed(AutoModelForCausalLM.from_pretrained(folder))
    encoded = _encoded(tokenizer_of)
    beta = 0.3

    ours = copy.deepcopy(policy).train()
    longest = max(max(len(p.chosen), len(p.rejected)) for p in encoded)
    batch = pack_pairs(encoded, pad_id=0, row_tokens=None if layout == "one row" else longest)
    logps = SequenceLogProbs(ours, chunk=7)  # several chunks per batch
    assert logps.chunked
    with torch.no_grad():
        ref_logps = SequenceLogProbs(copy.deepcopy(reference))(batch)
    losses, _, _ = dpo_loss(logps(batch), ref_logps, beta)
    losses.mean().backward()

    trl_loss, trl_grads = _trl_loss_and_grads(policy, reference, tokenizer_of("tiny-llama"), encoded, beta, tmp_path)
    assert float(losses.mean()) == pytest.approx(trl_loss, rel=1e-5)
    assert trl_loss > 0.05  # policy and reference differ: a loss with a real gradient, not log 2 at the start
    for name, p in ours.named_parameters():
        _assert_same_gradient(p.grad, trl_grads[name], name)


def _assert_same_gradient(got, expected, name):
    """Equal up to float32 summation order (packed rows, chunks, tiles): each element within 5e-5 of the gradient's
    largest element, the whole gradient within 2e-5 relative (norm). A wrong term would be off by far more."""
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected, rtol=0, atol=5e-5 * scale, msg=lambda m: f"{name}: {m}")
    assert float((got - expected).norm()) <= 2e-5 * float(expected.norm()), name


def test_accumulation_gives_the_same_gradient_whatever_the_micro_batching(random_tiny_dir, tokenizer_of):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(random_tiny_dir("tiny-llama")))
    encoded = _encoded(tokenizer_of)
    with torch.no_grad():
        ref_model = _perturbed(copy.deepcopy(base), seed=3)
    grads = []
    for split in ([encoded], [encoded[:1], encoded[1:3], encoded[3:]]):
        model = copy.deepcopy(base).train()
        ref = SequenceLogProbs(ref_model)
        totals = preference_backward(
            SequenceLogProbs(model), ref, [pack_pairs(g, 0, None) for g in split], 0.5, torch.device("cpu")
        )
        assert totals.pairs == 4
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        _assert_same_gradient(grads[1][name], grad, name)


# --- dataset validation ----------------------------------------------------------------------------------------


def _line(**over):
    line = preference_line("abc", system="Be brief.")
    line.update(over)
    return json.dumps(line)


def _completion(score, text="x", role="model"):
    return {"score": score, "completion": {"role": role, "parts": [{"text": text}]}}


def test_preference_lines_parse_and_every_problem_names_its_line_path_and_fix():
    good = parse_preference_lines([_line()], Report())
    assert good[0].chosen == "ABC" and good[0].rejected == "abc"
    assert [m.role for m in good[0].prompt.messages] == ["system", "user"]
    lines = [
        _line(completions=[_completion(1)]),  # 2: one completion
        _line(completions=[_completion(1, "a"), _completion(1, "b")]),  # 3: two preferred
        _line(completions=[_completion(1, "a"), _completion(0.5, "b")]),  # 4: a score that is not 0 or 1
        _line(contents=[{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [{"text": "a"}]}]),
        _line(
            contents=[
                {"role": "user", "parts": [{"file_data": {"mime_type": "image/png", "file_uri": "gs://b/i.png"}}]}
            ]
        ),
        _line(completions=[_completion(1, "same"), _completion(0, "same")]),  # 7: nothing to prefer
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),  # 8: SFT
        _line(completions=[_completion(1, "a", role="user"), _completion(0, "b")]),  # 9: not a model turn
    ]
    report = Report(source="pairs.jsonl")
    pairs = parse_preference_lines([_line(), *lines], report)
    assert len(pairs) == 1
    errors = {p.line: p for p in report.errors}
    assert sorted(errors) == list(range(2, 10))
    assert errors[2].path == "completions" and "has 1 completion(s); give exactly two" in errors[2].message
    assert "scores are 1 and 1; one completion must have score 1" in errors[3].message
    assert errors[4].path == "completions[1].score" and "must be 1 (preferred) or 0" in errors[4].message
    assert errors[5].path == "contents[1]" and "must end with a user turn" in errors[5].message
    assert errors[6].path == "contents[0].parts[0]" and "text only" in errors[6].message
    assert "same text" in errors[7].message
    assert 'missing "completions" (this looks like a supervised tuning line)' in errors[8].message
    assert errors[9].path == "completions[0].completion.role"


def _openai_dpo(messages=None, preferred="ABC", rejected="abc", **extra) -> str:
    messages = messages or [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "abc"}]
    return json.dumps(
        {
            "input": {"messages": messages},
            "preferred_output": [{"role": "assistant", "content": preferred}],
            "non_preferred_output": [{"role": "assistant", "content": rejected}],
            **extra,
        }
    )


def test_openais_dpo_lines_are_the_same_pairs_and_their_problems_are_named():
    """OpenAI's DPO format (input.messages, preferred_output, non_preferred_output) gives the pair Vertex's gives."""
    [ours] = parse_preference_lines([_openai_dpo()], Report())
    [vertex] = parse_preference_lines([_line()], Report())
    assert (ours.chosen, ours.rejected) == (vertex.chosen, vertex.rejected)
    assert [(m.role, m.text) for m in ours.prompt.messages] == [(m.role, m.text) for m in vertex.prompt.messages]
    report = Report(source="dpo.jsonl")
    bad = [
        _openai_dpo(preferred="same", rejected="same"),  # 1
        _openai_dpo(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),  # 2
        json.dumps({"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": "x"}),  # 3
        _openai_dpo(messages=[{"role": "robot", "content": "q"}]),  # 4
    ]
    assert parse_preference_lines(bad, report) == []
    errors = {p.line: p for p in report.errors}
    assert "same text" in errors[1].message
    assert errors[2].path == "input.messages[1]" and "must end with a user message" in errors[2].message
    found = {(p.line, p.path) for p in report.errors if "one assistant message" in p.message}
    assert {(3, "preferred_output"), (3, "non_preferred_output")} <= found  # a string, and missing
    assert errors[4].path == "input.messages[0].role"


def test_over_long_pairs_and_sft_files_are_refused_with_the_fix(tmp_path, settings, tokenizer_of):
    from tuneforge.data.preference import prepare_preferences
    from tuneforge.data.validate import Limits, prepare_dataset

    path = write_lines(tmp_path / "p.jsonl", [preference_line("abc"), preference_line("x" * 300)])
    limits = Limits(model_id="tiny-llama", mode="FULL", max_seq_len=100, other_modes={"PEFT_ADAPTER": 1024})
    prepared = prepare_preferences(str(path), limits, _encoder(tokenizer_of), settings=settings)
    (error,) = prepared.report.errors
    assert error.line == 2 and "over the 100-token limit" in error.message and "use PEFT_ADAPTER mode" in error.message
    # The same file given to supervised tuning says which method reads it.
    sft = prepare_dataset(str(path), limits, None, settings=settings)
    assert "a preference tuning line" in sft.report.errors[0].message


def test_preference_config_rules():
    with pytest.raises(Exception, match="beta applies to preference tuning only"):
        TuningConfig.build(base_model="tiny-llama", train_dataset="t", output_uri="o", beta=0.2)
    config = TuningConfig.build(base_model="tiny-llama", train_dataset="t", output_uri="o", method="preference")
    assert config.beta is None  # the catalog's default is resolved by the recipe


# --- the recipe ----------------------------------------------------------------------------------------------------

STRINGS = ["abc", "hello", "xyz", "qwerty", "pq", "mnop", "stuv", "ab", "zz", "kite", "lamp", "road"]
LOG2 = 0.6931471805599453


def _config(tmp_path, out="out", **over):
    train = write_lines(tmp_path / "pairs.jsonl", [preference_line(s, system="Shout.") for s in STRINGS])
    val = write_lines(tmp_path / "val.jsonl", [preference_line(s) for s in ("moon", "sun", "star")])
    fields = dict(
        method="preference", base_model="tiny-llama", train_dataset=str(train), validation_dataset=str(val),
        output_uri=str(tmp_path / out), batch_size=4, epochs=2, eval_steps=3, save_steps=2, seed=1,
    )  # fmt: skip
    return TuningConfig(**{**fields, **over})


class _StopAt:
    def __init__(self, step):
        from tuneforge.train.callbacks import Callbacks

        self.stop_at, self.step, self.callbacks = step, 0, Callbacks()
        self.callbacks.on_step = lambda step, total, metrics: setattr(self, "step", step)


def test_lora_run_logs_preference_metrics_and_stats_and_exports_an_adapter(tmp_path, settings):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tuneforge.catalog.model_folder import is_adapter
    from tuneforge.train.metrics import read_metrics
    from tuneforge.train.recipes.dpo import REFERENCE_LOGPS, run_dpo

    result = run_dpo(_config(tmp_path, tuning_mode="PEFT_ADAPTER"), settings=settings)
    assert result.steps == 6 and result.resolved.beta == 0.1 and is_adapter(result.final_dir)
    assert not (result.output_dir / REFERENCE_LOGPS).exists()  # the reference is the model with its adapter off
    lines = read_metrics(result.output_dir / "metrics.jsonl")
    train = [m for m in lines if "train_total_loss" in m]
    assert [m["step"] for m in train] == [1, 2, 3, 4, 5, 6]
    # A new adapter starts as the base (LoRA's B = 0): the first step's policy is its reference, the loss log 2.
    assert train[0]["train_total_loss"] == pytest.approx(LOG2, abs=1e-6) and train[0]["train_reward_margin"] == 0
    for m in train:
        assert m["train_reward_margin"] == pytest.approx(m["train_chosen_reward"] - m["train_rejected_reward"])
        assert 0 <= m["train_reward_accuracy"] <= 1 and m["train_num_pairs"] == 4
    evals = [m for m in lines if "eval_total_loss" in m]
    assert [m["step"] for m in evals] == [3, 6] and all(m["eval_num_pairs"] == 3 for m in evals)
    events = EventAccumulator(str(result.output_dir / "tensorboard")).Reload()
    assert {"/train_reward_accuracy", "/train_reward_margin", "/eval_reward_accuracy"} <= set(events.Tags()["scalars"])
    stats = json.loads((result.output_dir / "tuning_data_stats.json").read_text())["preferenceOptimizationDataStats"]
    assert stats["tuningDatasetExampleCount"] == "12" and stats["tuningStepCount"] == "6"
    assert stats["userDatasetExamples"][0]["completions"][0]["score"] == 1.0
    assert result.stats_key == "preferenceOptimizationDataStats" and result.data_stats == stats


def test_full_run_precomputes_its_reference_and_resumes_to_the_same_curve(tmp_path, settings):
    from tuneforge.train.metrics import read_metrics
    from tuneforge.train.recipes.dpo import REFERENCE_LOGPS, run_dpo

    whole = run_dpo(_config(tmp_path, "a", tuning_mode="FULL"), settings=settings)
    assert (whole.output_dir / REFERENCE_LOGPS).exists()
    stop = _StopAt(3)
    stopped = run_dpo(
        _config(tmp_path, "b", tuning_mode="FULL"),
        settings=settings,
        callbacks=stop.callbacks,
        should_stop=lambda: stop.step >= stop.stop_at,
    )
    assert stopped.cancelled and stopped.steps == 3 and stopped.final_dir is None
    resumed = run_dpo(_config(tmp_path, "b", tuning_mode="FULL"), settings=settings)
    assert resumed.resumed_from == 3 and resumed.steps == whole.steps == 6
    a, b = (read_metrics(tmp_path / out / "metrics.jsonl") for out in ("a", "b"))
    assert [m["step"] for m in a] == [m["step"] for m in b]
    assert a[0]["train_total_loss"] == pytest.approx(LOG2, abs=1e-6)  # the reference is the starting weights
    for x, y in zip(a, b):
        for key in ("train_total_loss", "train_reward_margin", "eval_total_loss", "eval_reward_accuracy"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), (x["step"], key)


def test_preference_tuning_continues_from_an_sft_runs_adapter(tmp_path, settings):
    """The documented advice: SFT on the preferred completions, then preference tuning from that checkpoint. The
    reference is the SFT model (not the base), so the first step's loss is log 2 again."""
    from tuneforge.train.metrics import read_metrics
    from tuneforge.train.recipes.dpo import REFERENCE_LOGPS, run_dpo
    from tuneforge.train.recipes.sft import run_sft

    sft_lines = [
        {"contents": [*preference_line(s)["contents"], {"role": "model", "parts": [{"text": s.upper()}]}]}
        for s in STRINGS
    ]
    sft = run_sft(
        TuningConfig(
            base_model="tiny-llama", train_dataset=str(write_lines(tmp_path / "sft.jsonl", sft_lines)),
            output_uri=str(tmp_path / "sft"), tuning_mode="PEFT_ADAPTER", epochs=1, batch_size=4,
        ),
        settings=settings,
    )  # fmt: skip
    result = run_dpo(
        _config(tmp_path, "dpo", tuning_mode="PEFT_ADAPTER", custom_base_model=str(sft.final_dir)), settings=settings
    )
    assert (result.output_dir / REFERENCE_LOGPS).exists()  # an adapter's starting point is not the base
    first = read_metrics(result.output_dir / "metrics.jsonl")[0]
    assert first["train_total_loss"] == pytest.approx(LOG2, abs=1e-6)
    assert json.loads((result.final_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
