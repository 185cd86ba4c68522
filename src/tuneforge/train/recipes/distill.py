"""Distillation step by step (Hsieh et al., 2023): a teacher's rationales become a second training task for the student.

Method, top to bottom:
1. Read the examples (data/distill.py): ``input_text`` and, when labelled, ``output_text`` (SPEC §5.2), or
   GenerateContent-shaped prompts (one user turn, the model's answer as an optional label).
2. The teacher explains each example with a few-shot chain-of-thought prompt. Labelled examples get a rationale for
   their given label; unlabelled ones get a rationale and a label (the teacher's answer). The outputs are saved as a
   dataset artifact (``teacher/outputs.jsonl``) keyed by the data, the teacher and the prompt, so a rerun (a resumed
   job, the same output folder) reuses them instead of asking the teacher again.
3. Multi-task data: ``predict: <input>`` -> label and ``explain: <input>`` -> rationale. Inputs are cut to 7,168
   student tokens and outputs to 1,024 (SPEC §5.2, counted with the student's tokenizer, §8 D11); every cut is
   counted and reported.
4. Train the student with the shared engine (recipes/sft.py): loss = label loss + lambda x rationale loss, each the
   mean over its own target tokens (lambda = 1 by default).
5. The saved model answers label-only: serving prefixes ``predict: `` to prompts that carry no task prefix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tuneforge import storage
from tuneforge.catalog import load_catalog
from tuneforge.catalog.weights import materialize
from tuneforge.data.distill import DistillExample, read_examples
from tuneforge.errors import DatasetInvalid, FailedPrecondition
from tuneforge.infer.offline import generate_offline
from tuneforge.infer.sampling import SamplingParams
from tuneforge.settings import Settings, get_settings
from tuneforge.train.artifacts import write_json
from tuneforge.train.config import EXPLAIN_PREFIX, PREDICT_PREFIX, TuningConfig
from tuneforge.train.loading import load_tokenizer, resolve_source
from tuneforge.train.recipes.sft import run_sft

INPUT_TOKEN_LIMIT = 7168
OUTPUT_TOKEN_LIMIT = 1024
DEFAULT_RATIONALE_WEIGHT = 1.0
PROMPT_VERSION = "cot-v1"
ANSWER_MARKER = "So the answer is"

# Generic demonstrations for the teacher's few-shot chain-of-thought prompt; give your own (same keys) for a task.
FEWSHOT = (
    {
        "input_text": "Classify the ticket into one of [billing, shipping, technical]. Ticket: I was charged twice.",
        "rationale": "Being charged twice is a problem with a payment, and payments are billing matters.",
        "output_text": "billing",
    },
    {
        "input_text": "question: How many legs do three spiders have in total? context: A spider has eight legs.",
        "rationale": "Each spider has 8 legs. Three spiders have 3 x 8 = 24 legs.",
        "output_text": "24",
    },
)


@dataclass
class TeacherOutput:
    rationale: str
    label: str | None  # None when the teacher's answer could not be read


class Teacher(Protocol):
    """Anything that explains examples: a model on the serving engine, an HTTP endpoint, or an exact program."""

    name: str

    def explain(
        self, examples: list[DistillExample], fewshot=FEWSHOT, should_stop: Callable[[], bool] | None = None
    ) -> list[TeacherOutput]: ...


# --- 2: the teacher ----------------------------------------------------------------------------------------------


def cot_prompt(example: DistillExample, fewshot=FEWSHOT) -> str:
    """Few-shot chain of thought: demonstrations, then the question. A labelled example shows its answer, and the
    teacher is asked for the reasoning that leads to it."""
    shots = "\n\n".join(
        f"Q: {d['input_text']}\nA: {d['rationale']} {ANSWER_MARKER} {d['output_text']}." for d in fewshot
    )
    hint = f"\n(The correct answer is {example.output_text}; explain how to reach it.)" if example.output_text else ""
    return (
        f'Answer the last question. Think step by step, then end with "{ANSWER_MARKER} <answer>."\n\n'
        f"{shots}\n\nQ: {example.input_text}{hint}\nA:"
    )


def parse_cot(text: str) -> TeacherOutput:
    """Split a chain-of-thought answer into (rationale, label) at the last answer marker."""
    text = text.strip()
    at = text.rfind(ANSWER_MARKER)
    if at < 0:
        return TeacherOutput(rationale=text, label=None)
    label = text[at + len(ANSWER_MARKER) :].strip().split("\n", 1)[0].strip().rstrip(".").strip()
    return TeacherOutput(rationale=text[:at].strip(), label=label or None)


class ModelTeacher:
    """A model folder (catalog weights, a tuned model, or the model deployed on an endpoint) on the serving engine."""

    def __init__(
        self, name: str, folder: Path, base_dir: Path | None = None, *, max_tokens: int = 256, device: str = "auto"
    ):
        self.name, self.folder, self.base_dir = name, Path(folder), base_dir
        self.max_tokens, self.device = max_tokens, device

    def explain(self, examples, fewshot=FEWSHOT, should_stop=None):
        texts = generate_offline(
            self.folder,
            self.base_dir,
            [cot_prompt(e, fewshot) for e in examples],
            SamplingParams(max_tokens=self.max_tokens, temperature=0.0),
            device=self.device,
            should_stop=should_stop,
            keep_last_tokens=True,
        )
        return [parse_cot(t) for t in texts]


class HttpTeacher:
    """An OpenAI-compatible chat endpoint (a tuneforge endpoint's ``…/chat/completions``, vLLM, …)."""

    def __init__(self, url: str, *, model: str = "teacher", api_key: str | None = None, max_tokens: int = 256):
        self.name, self.url, self.model, self.api_key = url, url.rstrip("/"), model, api_key
        self.max_tokens = max_tokens

    def explain(self, examples, fewshot=FEWSHOT, should_stop=None):
        import httpx

        url = self.url if self.url.endswith("/chat/completions") else self.url + "/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        out = []
        with httpx.Client(timeout=600, headers=headers) as client:
            for e in examples:
                if should_stop is not None and should_stop():
                    raise InterruptedError("teacher labelling stopped")
                r = client.post(
                    url,
                    json={
                        "model": self.model,
                        "temperature": 0,
                        "max_tokens": self.max_tokens,
                        "messages": [{"role": "user", "content": cot_prompt(e, fewshot)}],
                    },
                )
                if r.status_code != 200:
                    raise FailedPrecondition(f"teacher {self.url} answered {r.status_code}: {r.text[:300]}")
                out.append(parse_cot(r.json()["choices"][0]["message"]["content"]))
        return out


def teacher_from_reference(
    reference: str,
    settings: Settings,
    resolve_resource: Callable[[str], tuple] | None = None,
    *,
    api_key: str | None = None,
) -> Teacher:
    """A teacher from an OpenAI-compatible URL, a model folder (local or gs://), a catalog id, or (with
    ``resolve_resource``, which returns the weights' (folder, base)) a registered model or endpoint name."""
    if reference.startswith(("http://", "https://")):
        return HttpTeacher(reference, api_key=api_key)
    if reference.startswith("projects/"):
        if resolve_resource is None:
            raise FailedPrecondition(
                f"teacher {reference}: a model or endpoint resource needs a server; run with "
                "--server, or give the endpoint's OpenAI-compatible URL (…/endpoints/ID)"
            )
        folder, base = resolve_resource(reference)
        return ModelTeacher(reference, folder, base)
    if reference.startswith("gs://") or Path(reference).is_dir():
        return ModelTeacher(reference, materialize(reference, settings))
    resolved = load_catalog(settings).resolve(reference, settings=settings)
    return ModelTeacher(reference, materialize(resolved.weights, settings))


@dataclass
class TeacherData:
    """What the teacher step produced, and what the student will train on."""

    records: list[dict]  # {"line", "input_text", "label", "rationale", "label_source": given|teacher}
    artifact: Path
    reused: bool
    unusable: list[int] = field(default_factory=list)  # lines whose teacher answer had no readable label


def teacher_key(examples: list[DistillExample], teacher: Teacher, fewshot) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([PROMPT_VERSION, teacher.name, list(fewshot)], sort_keys=True).encode())
    for e in examples:
        h.update(json.dumps([e.input_text, e.output_text]).encode())
    return h.hexdigest()


def label_with_teacher(
    examples: list[DistillExample],
    teacher: Teacher,
    out_dir: Path,
    *,
    fewshot=FEWSHOT,
    should_stop: Callable[[], bool] | None = None,
) -> TeacherData:
    """Step 2. The artifact's first line holds the key; a matching artifact is reused as it is."""
    artifact = out_dir / "teacher" / "outputs.jsonl"
    key = teacher_key(examples, teacher, fewshot)
    if artifact.exists():
        lines = artifact.read_text().splitlines()
        if lines and json.loads(lines[0]).get("key") == key:
            records = [json.loads(x) for x in lines[1:]]
            return TeacherData(records, artifact, True, [r["line"] for r in records if r["label"] is None])
    outputs = teacher.explain(examples, fewshot, should_stop)
    records = []
    for e, o in zip(examples, outputs):
        given = e.output_text is not None
        records.append(
            {
                "line": e.line,
                "input_text": e.input_text,
                "label": e.output_text if given else o.label,
                "rationale": o.rationale,
                "label_source": "given" if given else "teacher",
            }
        )
    artifact.parent.mkdir(parents=True, exist_ok=True)
    tmp = artifact.with_suffix(".tmp")
    tmp.write_text(
        "\n".join(
            json.dumps(x, ensure_ascii=False)
            for x in [{"key": key, "teacher": teacher.name, "prompt": PROMPT_VERSION}, *records]
        )
        + "\n"
    )
    tmp.replace(artifact)
    return TeacherData(records, artifact, False, [r["line"] for r in records if r["label"] is None])


# --- 3: multi-task data ------------------------------------------------------------------------------------------


@dataclass
class Truncation:
    inputs: int = 0
    outputs: int = 0
    tokens_cut: int = 0
    warnings: list[str] = field(default_factory=list)  # as invalid_examples.md case 24 words them


def _cut(tokenizer, text: str, limit: int, counter: Truncation, field_name: str, where: str) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= limit:
        return text
    counter.tokens_cut += len(ids) - limit
    setattr(counter, field_name, getattr(counter, field_name) + 1)
    counter.warnings.append(
        f"{where}: {len(ids):,} tokens, over the {limit}-token limit; the excess "
        f"{len(ids) - limit:,} tokens will be truncated"
    )
    return tokenizer.decode(ids[:limit])


def multitask_lines(records: list[dict], tokenizer, cut: Truncation, *, with_rationales: bool = True) -> list[str]:
    """``predict:`` -> label and (step-by-step) ``explain:`` -> rationale, as input_text/output_text lines."""
    out = []
    for i, r in enumerate(records, start=1):
        if r["label"] is None:
            continue
        line = f"line {r.get('line', i)}"
        x = _cut(tokenizer, r["input_text"], INPUT_TOKEN_LIMIT, cut, "inputs", f"{line}, input_text")
        label = _cut(tokenizer, r["label"], OUTPUT_TOKEN_LIMIT, cut, "outputs", f"{line}, output_text")
        out.append(json.dumps({"input_text": PREDICT_PREFIX + x, "output_text": label}))
        if with_rationales and r.get("rationale"):
            rationale = _cut(tokenizer, r["rationale"], OUTPUT_TOKEN_LIMIT, cut, "outputs", f"{line}, rationale")
            out.append(json.dumps({"input_text": EXPLAIN_PREFIX + x, "output_text": rationale}))
    return out


# --- 4-5: train --------------------------------------------------------------------------------------------------


def student_files(out_dir: Path) -> tuple[Path, Path | None]:
    """The multi-task training file and (when there is an evaluation set) the predict-only evaluation file."""
    folder = out_dir / "distill"
    val = folder / "eval.jsonl"
    return folder / "train.jsonl", val if val.exists() else None


def student_tokenizer(config: TuningConfig, settings: Settings):
    dev = settings.dev if config.dev is None else config.dev
    source = resolve_source(
        load_catalog(settings), config.base_model, config.custom_base_model, dev=dev, settings=settings
    )
    return load_tokenizer(source)


@dataclass
class StudentData:
    config: TuningConfig  # the student's run on the multi-task data
    teacher: TeacherData
    summary: dict  # counts for reports: examples, teacher labels, truncation, multi-task lines


def prepare_student_data(
    config: TuningConfig,
    teacher: Teacher,
    *,
    settings: Settings | None = None,
    fewshot=FEWSHOT,
    rationale_weight: float = DEFAULT_RATIONALE_WEIGHT,
    should_stop: Callable[[], bool] | None = None,
) -> StudentData:
    """Steps 1-3. ``config`` is the student's tuning run on the original dataset (input_text, optional output_text)."""
    settings = settings or get_settings()
    examples, report = read_examples(config.train_dataset, settings)
    eval_examples: list[DistillExample] = []
    if config.validation_dataset:
        eval_examples, report = read_examples(config.validation_dataset, settings, require_labels=True, report=report)
    if report.errors:
        raise DatasetInvalid(f"{len(report.errors)} error(s) in the distillation data; nothing was trained", report)
    out_dir = storage.output_dir(config.output_uri, settings)
    data = label_with_teacher(examples, teacher, out_dir, fewshot=fewshot, should_stop=should_stop)
    if len(data.unusable) == len(data.records):
        raise FailedPrecondition(
            f'the teacher {teacher.name} gave no readable answer ("... {ANSWER_MARKER} X.") for '
            f"any unlabelled example; see {data.artifact}. Label the data, or use a stronger teacher"
        )
    tokenizer = student_tokenizer(config, settings)
    cut = Truncation()
    train_lines = multitask_lines(data.records, tokenizer, cut)
    eval_lines = multitask_lines(
        [{"input_text": e.input_text, "label": e.output_text} for e in eval_examples],
        tokenizer,
        Truncation(),
        with_rationales=False,
    )
    train_path, _ = student_files(out_dir)
    train_path.parent.mkdir(parents=True, exist_ok=True)
    train_path.write_text("\n".join(train_lines) + "\n")
    val_path = train_path.with_name("eval.jsonl")
    val_path.unlink(missing_ok=True)
    if eval_lines:
        val_path.write_text("\n".join(eval_lines) + "\n")
    summary = {
        "examples": len(examples),
        "labelled": sum(e.output_text is not None for e in examples),
        "teacher_labelled": sum(r["label_source"] == "teacher" and r["label"] is not None for r in data.records),
        "teacher_unusable": len(data.unusable),
        "rationales": sum(bool(r.get("rationale")) and r["label"] is not None for r in data.records),
        "teacher_outputs_uri": f"{config.output_uri}/teacher/outputs.jsonl",
        "teacher_reused": data.reused,
        "truncated_inputs": cut.inputs,
        "truncated_outputs": cut.outputs,
        "tokens_truncated": cut.tokens_cut,
        "multitask_examples": len(train_lines),
        "rationale_weight": rationale_weight,
    }
    write_json(
        train_path.with_name("data_report.json"),
        {**summary, "teacher_unusable_lines": data.unusable, "truncation_warnings": cut.warnings},
    )
    student = config.model_copy(
        update={
            "train_dataset": str(train_path),
            "validation_dataset": str(val_path) if eval_lines else None,
            "dataset_format": "text_pair",
            "rationale_weight": rationale_weight,
            "method": "supervised",  # the student's run: SFT on the multi-task lines
            "teacher": None,
        }
    )
    return StudentData(student, data, summary)


def run_distill(
    config: TuningConfig,
    teacher: Teacher,
    *,
    settings: Settings | None = None,
    fewshot=FEWSHOT,
    rationale_weight: float = DEFAULT_RATIONALE_WEIGHT,
    callbacks=None,
    should_stop: Callable[[], bool] | None = None,
):
    """Steps 1-5: returns (StudentData, the student's RunResult)."""
    prepared = prepare_student_data(
        config, teacher, settings=settings, fewshot=fewshot, rationale_weight=rationale_weight, should_stop=should_stop
    )
    result = run_sft(prepared.config, settings=settings, callbacks=callbacks, should_stop=should_stop)
    return prepared, result


def answer_matches(prediction: str, label: str) -> bool:
    """Exact match after trimming whitespace and a final full stop (how the benchmark and evaluation score)."""
    norm = lambda s: re.sub(r"\s+", " ", s.strip().rstrip(".").strip())  # noqa: E731
    return norm(prediction) == norm(label)
