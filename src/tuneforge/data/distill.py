"""Distillation data: the examples a teacher labels and explains (SPEC §5.2), in either shape users send.

- The pipeline's text pairs: ``{"input_text": str, "output_text"?: str}`` (no output_text: the teacher labels it).
- google-genai's prompt datasets (tuningJobs ``distillationSpec.promptDatasetUri``), GenerateContent-shaped:
  ``{"systemInstruction"?: {...}, "contents": [{"role": "user", ...}, {"role": "model", ...}?]}``: one user turn,
  optionally followed by the model's answer as the label. The system instruction opens the input text.

Problems go into a :class:`Report` with their line and JSON path, as for every dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.data.conversation import ImagePart
from tuneforge.data.formats import _Line, _parse_generate_content, json_objects, text_pair_fields
from tuneforge.data.report import Report
from tuneforge.data.validate import read_lines
from tuneforge.settings import Settings

MAX_EXAMPLES = 10_000


@dataclass
class DistillExample:
    line: int
    input_text: str
    output_text: str | None  # None: unlabelled, the teacher labels it


def _prompt_fields(ctx: _Line, obj: dict, *, require_output: bool) -> tuple[str, str | None] | None:
    """(input text, label or None) of a GenerateContent-shaped prompt line."""
    turns = _parse_generate_content(ctx, obj)
    if turns is None or ctx.failed:
        return None
    system = [m.text for m, _ in turns if m.role == "system"]
    rest = [(m, path) for m, path in turns if m.role != "system"]
    roles = [m.role for m, _ in rest]
    if roles not in (["user"], ["user", "assistant"]):
        ctx.error(
            f"a distillation prompt is one user turn, optionally followed by the model's answer (the label); got "
            f"{len(rest)} turn(s) ({', '.join(roles) or 'none'}). Put earlier turns into the user text",
            "contents",
        )
        return None
    for message, path in rest:
        if any(isinstance(p, ImagePart) for p in message.parts):
            ctx.error("distillation prompts hold text only; remove the image part", f"{path}.parts")
            return None
        if not message.text.strip():
            ctx.error("empty text; give the prompt (or the label) or drop the line", f"{path}.parts")
            return None
    label = rest[1][0].text if len(rest) > 1 else None
    if require_output and label is None:
        ctx.error('an evaluation example needs its answer: end contents with a {"role": "model"} turn', "contents")
        return None
    prompt = rest[0][0].text
    return ("\n\n".join([*system, prompt]) if system else prompt), label


def read_examples(
    uri: str, settings: Settings, *, require_labels: bool = False, report: Report | None = None
) -> tuple[list[DistillExample], Report]:
    """Parse a distillation JSONL file (either shape, one per file); every problem goes into the report (nothing is
    raised here)."""
    report = report or Report(source=uri)
    lines = read_lines(uri, report, settings)
    examples: list[DistillExample] = []
    shapes: set[str] = set()
    for ctx, obj in json_objects(lines or [], report):
        shape = "contents" if "contents" in obj else "input_text"
        if shapes and shape not in shapes:
            ctx.error(
                f'this line uses "{shape}" and earlier lines the other shape; one file holds one shape '
                "(input_text/output_text, or contents)"
            )
            continue
        shapes.add(shape)
        if shape == "contents":
            fields = _prompt_fields(ctx, obj, require_output=require_labels)
        else:
            fields = text_pair_fields(ctx, obj, require_output=require_labels, what="distillation")
        if fields is not None:
            examples.append(DistillExample(ctx.line, fields[0], fields[1]))
    if lines is not None and not examples and report.ok:
        report.error("the dataset has no examples; give one JSON object per line")
    if len(examples) > MAX_EXAMPLES:
        report.error(f"{len(examples):,} examples; at most {MAX_EXAMPLES:,} are allowed")
    labelled = sum(e.output_text is not None for e in examples)
    report.info.update(examples=len(examples), labelled=labelled, unlabelled=len(examples) - labelled)
    return examples, report
