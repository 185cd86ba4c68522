"""The dataset rules of the pipelines (SPEC §3.2, §5.2): formats, example and author-field counts, the evaluation
set's size. The pipeline's validate-data task and `tuneforge validate --for …` check data through here."""

from __future__ import annotations

from typing import Any

from tuneforge.data.distill import read_examples
from tuneforge.data.formats import parse_lines
from tuneforge.data.report import Report
from tuneforge.data.validate import read_lines
from tuneforge.settings import Settings

MIN_EXAMPLES, MAX_EXAMPLES, MAX_AUTHOR_FIELDS = 10, 10_000, 10_000
EVAL_RANGE = (10, 250)
# The format each pipeline reads its training file as (distillation: input_text with an optional output_text).
FORMATS = {"tune-large-model": "text_pair", "tune-large-chat-model": "codechat", "distillation": "text_pair"}


def check_pipeline_data(
    template: str, train_uri: str, eval_uri: str | None, settings: Settings
) -> tuple[Report, dict[str, Any]]:
    """Every problem of a pipeline's data (nothing raised), and counts for the task's outputs."""
    if template == "distillation":
        report, out = _distillation_data(train_uri, settings)
    else:
        report, out = _code_data(train_uri, settings, chat=template == "tune-large-chat-model")
    if eval_uri:
        eval_report = Report(source=eval_uri)  # problems name the evaluation file, not the training file
        if template == "distillation":
            n_eval = len(read_examples(eval_uri, settings, require_labels=True, report=eval_report)[0])
        else:
            eval_lines = read_lines(eval_uri, eval_report, settings)
            n_eval = len(parse_lines(eval_lines or [], eval_report, expected="text_pair"))
        report.problems.extend(eval_report.problems)
        if not EVAL_RANGE[0] <= n_eval <= EVAL_RANGE[1] and report.ok:
            report.error(
                f"evaluation_data_uri: {n_eval} examples; the evaluation set must have {EVAL_RANGE[0]}–{EVAL_RANGE[1]}"
            )
        out["evaluation_examples"] = n_eval
    return report, out


def _distillation_data(uri: str, settings: Settings) -> tuple[Report, dict[str, Any]]:
    examples, report = read_examples(uri, settings)
    n = len(examples)
    labelled = sum(e.output_text is not None for e in examples)
    out: dict[str, Any] = {"train_examples": n, "labelled_examples": labelled, "unlabelled_examples": n - labelled}
    warnings = []
    if labelled and labelled < 100:
        warnings.append(f"{labelled} labelled examples; hundreds are recommended")
    if n - labelled and n - labelled < 1000:
        warnings.append(f"{n - labelled} unlabelled examples; more than 1,000 are recommended")
    if warnings:
        out["warnings"] = "; ".join(warnings)
    return report, out


def _code_data(uri: str, settings: Settings, *, chat: bool) -> tuple[Report, dict[str, Any]]:
    report = Report(source=uri)
    lines = read_lines(uri, report, settings)
    conversations = parse_lines(lines or [], report, expected="codechat" if chat else "text_pair")
    n = len(conversations)
    out: dict[str, Any] = {"train_examples": n}
    if chat:
        authors = sum(sum(1 for m in c.messages if m.role != "system") for c in conversations)
        out["author_fields"] = authors
        if authors > MAX_AUTHOR_FIELDS:
            report.error(
                f"dataset_uri: {authors:,} author fields; the code chat limit is {MAX_AUTHOR_FIELDS:,} "
                "across all examples"
            )
    elif n > MAX_EXAMPLES:
        report.error(f"dataset_uri: {n:,} examples; at most {MAX_EXAMPLES:,} are allowed")
    if lines is not None and n < MIN_EXAMPLES and report.ok:
        report.error(f"dataset_uri: {n} examples; code-model tuning needs at least {MIN_EXAMPLES} (500+ recommended)")
    return report, out
