"""The report a dataset gets for what it is for: supervised or preference tuning (with a model: its token limits;
without one: structure only), distillation prompts, or a code pipeline's lines. ``tuneforge validate`` prints it and
the server's dataset views return it, so both say the same."""

from __future__ import annotations

from tuneforge.catalog import Catalog, TuningMode, load_catalog
from tuneforge.data import Limits, Report, prepare_dataset
from tuneforge.data.preference import prepare_preferences
from tuneforge.errors import InvalidArgument, WeightsNotConfigured
from tuneforge.settings import Settings
from tuneforge.train.loading import chat_encoder, limits_for
from tuneforge.train.pipeline_data import check_pipeline_data
from tuneforge.train.preflight import open_model

# What a dataset may be for, and the pipeline whose rules check it (None: a tuning job's supervised or preference
# lines, checked against a model's limits when one is named).
PURPOSES: dict[str, str | None] = {
    "supervised": None,
    "preference": None,
    "distillation": "distillation",
    "code-generation": "tune-large-model",
    "code-chat": "tune-large-chat-model",
}


def dataset_report(
    uri: str,
    purpose: str,
    model: str | None,
    mode: TuningMode,
    settings: Settings,
    *,
    evaluation: str | None = None,
    strict_length: bool = False,
) -> tuple[Report, str]:
    """(the report, a line about the limits it was checked against)."""
    if purpose not in PURPOSES:
        raise InvalidArgument(f"purpose must be one of {', '.join(PURPOSES)} (got {purpose!r})")
    template = PURPOSES[purpose]
    if template is not None:
        report, counts = check_pipeline_data(template, uri, evaluation, settings)
        report.info.setdefault("examples", counts.get("train_examples", 0))
        return report, f"rules of the {template} pipeline (SPEC §3.2, §5.2)"
    report = Report(source=uri)
    if model is None:
        limits, encoder, line = Limits(model_id="", mode=mode.value, max_seq_len=0), None, "structure only (no model)"
    else:
        limits, encoder, line = _model_limits(load_catalog(settings), model, mode, strict_length, settings, report)
    prepare = prepare_preferences if purpose == "preference" else prepare_dataset
    prepared = prepare(uri, limits, encoder, settings=settings)
    prepared.report.problems[:0] = report.problems
    return prepared.report, line


def _model_limits(catalog: Catalog, model: str, mode: TuningMode, strict: bool, settings: Settings, report: Report):
    """(limits, encoder or None, the limits line) of ``model`` in ``mode``; without its weights (and outside dev
    mode) structure is still checked, and the report says token limits were not."""
    encoder = None
    try:
        source, limits = open_model(catalog, model, None, mode, dev=settings.dev, settings=settings, strict=strict)
        encoder = chat_encoder(source, settings=settings)
    except WeightsNotConfigured as exc:
        first = exc.message.splitlines()[0].split(". ", 1)[0].rstrip(":")
        report.warning(f"token limits not checked: {first} (or pass --dev to count with the tiny stand-in's tokenizer)")
        entry = catalog.models.get(model)  # None for a closed id that is not mapped yet
        if entry is not None:
            limits = limits_for(entry, model, mode, strict)
        else:
            limits = Limits(model_id=model, mode=mode.value, max_seq_len=0, strict=strict)
    line = ""
    if limits.max_seq_len:
        line = f"{model} in {mode.value} mode: at most {limits.max_seq_len} tokens per example" + "".join(
            f"; {v} in {m}" for m, v in limits.other_modes.items()
        )
    return limits, encoder, line
