"""Distillation step by step: the teacher step (prompt, parsing, reuse), the multi-task data, the weighted loss, the
serving rule that makes a student answer label-only. (A model teacher on the serving engine runs in
tests/integration/test_pipelines.py.)"""

from __future__ import annotations

import json

import pytest
import torch

from tuneforge.data.conversation import Conversation, apply_prompt_rules
from tuneforge.data.distill import DistillExample, read_examples
from tuneforge.data.report import Report
from tuneforge.train.recipes.distill import (
    ANSWER_MARKER,
    TeacherOutput,
    cot_prompt,
    label_with_teacher,
    parse_cot,
    prepare_student_data,
)


class CountingTeacher:
    name = "counting"

    def __init__(self):
        self.calls = 0

    def explain(self, examples, fewshot=None, should_stop=None):
        self.calls += 1
        return [
            TeacherOutput(f"because {len(e.input_text)}", e.output_text or f"label-{len(e.input_text)}")
            for e in examples
        ]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_cot_prompt_and_parsing():
    unlabelled = cot_prompt(DistillExample(1, "2 + 2?", None))
    assert unlabelled.rstrip().endswith("Q: 2 + 2?\nA:") and ANSWER_MARKER in unlabelled
    assert "The correct answer is 4" in cot_prompt(DistillExample(1, "2 + 2?", "4"))
    assert parse_cot(" Two and two make four. So the answer is 4.\nQ: more") == TeacherOutput(
        "Two and two make four.", "4"
    )
    assert parse_cot("no marker here") == TeacherOutput("no marker here", None)


def test_read_examples_reports_documented_problems(tmp_path, settings):
    path = write(
        tmp_path / "d.jsonl", [{"input_text": "a", "output_text": ""}, {"output_text": "x"}, {"input_text": "b"}]
    )
    examples, report = read_examples(path, settings)
    assert [str(p) for p in report.errors] == [
        "line 1, output_text: empty string; omit the field for an unlabeled example (the teacher will label it) or give the label",
        'line 2: distillation example is missing "input_text" (the prompt); every line needs input_text',
    ]
    assert [(e.line, e.output_text) for e in examples] == [(3, None)]
    big = write(tmp_path / "big.jsonl", [{"input_text": str(i)} for i in range(10_001)])
    _, report = read_examples(big, settings)
    assert [str(p) for p in report.errors] == [f"{big}: 10,001 examples; at most 10,000 are allowed"]
    _, report = read_examples(path, settings, require_labels=True, report=Report())
    assert any('missing "output_text"' in str(p) for p in report.errors)  # evaluation files need labels (SPEC §8 D12)


def _gc(*turns, system=None):
    line = {"contents": [{"role": role, "parts": [{"text": text}]} for role, text in turns]}
    return {**line, "systemInstruction": {"parts": [{"text": system}]}} if system else line


def test_generate_content_prompts_as_google_genai_sends_them(tmp_path, settings):
    """distillationSpec.promptDatasetUri lines: one user turn (the system instruction opens the input), optionally
    the model's answer as the label; every other shape is reported with its line and path."""
    good = write(tmp_path / "p.jsonl", [_gc(("user", "2+2?"), system="Be brief."), _gc(("user", "q"), ("model", "a"))])
    examples, report = read_examples(good, settings)
    assert report.ok and [(e.line, e.input_text, e.output_text) for e in examples] == [
        (1, "Be brief.\n\n2+2?", None),
        (2, "q", "a"),
    ]
    bad = [
        _gc(("user", "q"), ("model", "a"), ("user", "again")),
        _gc(("model", "a")),
        {
            "contents": [
                {"role": "user", "parts": [{"file_data": {"mime_type": "image/png", "file_uri": "gs://b/x.png"}}]}
            ]
        },
        {"input_text": "mixed shapes"},
    ]
    _, report = read_examples(write(tmp_path / "bad.jsonl", bad), settings)
    problems = [str(p) for p in report.errors]
    assert problems[0].startswith("line 1, contents: a distillation prompt is one user turn, optionally followed")
    assert "got 3 turn(s) (user, assistant, user)" in problems[0]
    assert problems[1].startswith("line 2, contents: a distillation prompt is one user turn")
    assert problems[2] == "line 3, contents[0].parts: distillation prompts hold text only; remove the image part"
    assert problems[3].startswith('line 4: this line uses "input_text" and earlier lines the other shape')
    _, report = read_examples(good, settings, require_labels=True)  # an evaluation set needs the answers
    assert [str(p) for p in report.errors] == [
        'line 1, contents: an evaluation example needs its answer: end contents with a {"role": "model"} turn'
    ]


def test_teacher_outputs_are_an_artifact_a_rerun_reuses(tmp_path):
    teacher = CountingTeacher()
    examples = [DistillExample(1, "q1", "yes"), DistillExample(2, "q22", None)]
    first = label_with_teacher(examples, teacher, tmp_path)
    assert teacher.calls == 1 and not first.reused
    assert first.records[0] == {
        "line": 1,
        "input_text": "q1",
        "label": "yes",
        "rationale": "because 2",
        "label_source": "given",
    }
    assert first.records[1]["label"] == "label-3" and first.records[1]["label_source"] == "teacher"
    again = label_with_teacher(examples, teacher, tmp_path)
    assert teacher.calls == 1 and again.reused and again.records == first.records
    label_with_teacher(examples[:1], teacher, tmp_path)  # other data: asked again
    assert teacher.calls == 2


def test_student_data_is_multitask_with_truncation_counted(tmp_path, settings):
    rows = [{"input_text": "x" * 8000, "output_text": "long"}, {"input_text": "short one"}]
    config_path = write(tmp_path / "train.jsonl", rows)
    from tuneforge.train.config import TuningConfig

    config = TuningConfig(
        base_model="tiny-llama", train_dataset=config_path, output_uri=str(tmp_path / "out"), max_steps=1
    )
    prepared = prepare_student_data(config, CountingTeacher(), settings=settings, rationale_weight=0.5)
    lines = [json.loads(x) for x in (tmp_path / "out" / "distill" / "train.jsonl").read_text().splitlines()]
    assert [x["input_text"][:9] for x in lines] == ["predict: ", "explain: ", "predict: ", "explain: "]
    assert lines[2] == {"input_text": "predict: short one", "output_text": "label-9"}
    assert lines[3] == {"input_text": "explain: short one", "output_text": "because 9"}
    # the byte-level student tokenizer: 8,000 characters are 8,000 tokens, cut to 7,168 (SPEC §5.2)
    assert len(lines[0]["input_text"]) == len("predict: ") + 7168
    assert prepared.summary["truncated_inputs"] == 1 and prepared.summary["tokens_truncated"] == 832
    report = json.loads((tmp_path / "out" / "distill" / "data_report.json").read_text())
    assert report["truncation_warnings"] == [  # invalid_examples.md case 24
        "line 1, input_text: 8,000 tokens, over the 7168-token limit; the excess 832 tokens will be truncated"
    ]
    assert prepared.config.rationale_weight == 0.5 and prepared.config.dataset_format == "text_pair"


def test_loss_is_label_loss_plus_lambda_rationale_loss(tiny_dir, tokenizer_of):
    """train_step's loss and gradients equal mean(label tokens) + lambda * mean(rationale tokens)."""
    from transformers import AutoModelForCausalLM

    from tuneforge.data import ChatEncoder, Report, collate, parse_lines
    from tuneforge.data.tokenize import IGNORE_INDEX
    from tuneforge.train.recipes.sft import train_step

    tok = tokenizer_of("tiny-llama")
    lines = [
        json.dumps({"input_text": "predict: 3+4", "output_text": "7"}),
        json.dumps({"input_text": "explain: 3+4", "output_text": "three and four make seven"}),
    ]
    encoder = ChatEncoder(tok, "<|eot_id|>")
    examples = [encoder.encode(c) for c in parse_lines(lines, Report(), expected="text_pair")]
    examples[1].task = 1
    batch = collate(examples, tok.pad_token_id, packing=True, row_tokens=4096)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir("tiny-llama")))
    lam = 0.3
    metrics = train_step(model, [batch], torch.device("cpu"), (1.0, lam))
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits[:, :-1].float()
    labels, tasks = batch.labels[:, 1:], batch.tasks[:, 1:]
    token_loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    trained = labels != IGNORE_INDEX
    label_mean = token_loss[trained & (tasks == 0)].mean()
    rationale_mean = token_loss[trained & (tasks == 1)].mean()
    (label_mean + lam * rationale_mean).backward()
    assert metrics["train_total_loss"] == pytest.approx(float((label_mean + lam * rationale_mean).detach()), rel=1e-4)
    assert metrics["train_label_loss"] == pytest.approx(float(label_mean.detach()), rel=1e-4)
    assert metrics["train_rationale_loss"] == pytest.approx(float(rationale_mean.detach()), rel=1e-4)
    for name, p in model.named_parameters():
        assert torch.allclose(got[name], p.grad, atol=1e-5, rtol=1e-3), name


def test_serving_rules_make_the_student_answer_label_only():
    rules = {"input_prefix": "predict: ", "task_prefixes": ["predict: ", "explain: "], "default_system": "Be terse."}
    asked = apply_prompt_rules(Conversation.from_pairs(("user", "2+2?")), rules)
    assert asked.template_messages() == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "predict: 2+2?"},
    ]
    explained = apply_prompt_rules(Conversation.from_pairs(("system", "Mine."), ("user", "explain: 2+2?")), rules)
    assert explained.template_messages() == [
        {"role": "system", "content": "Mine."},
        {"role": "user", "content": "explain: 2+2?"},
    ]
    assert apply_prompt_rules(Conversation.from_pairs(("user", "x")), {}).template_messages() == [
        {"role": "user", "content": "x"}
    ]
