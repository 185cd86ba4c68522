"""`tuneforge validate`: the report a run or a pipeline would give, before anything is submitted."""

from __future__ import annotations

from rich.markup import escape

from tuneforge.catalog import TuningMode, load_catalog
from tuneforge.cli.common import console
from tuneforge.data.formats import FORMAT_NAMES
from tuneforge.data.report import Report
from tuneforge.errors import WeightsNotConfigured
from tuneforge.settings import Settings


def report_for(
    file: str,
    template: str | None,
    model: str | None,
    mode: str,
    evaluation: str | None,
    strict_length: bool,
    settings: Settings,
) -> tuple[Report, str]:
    """(the report, a line about the limits it was checked against)."""
    if template is not None:
        from tuneforge.train.pipeline_data import check_pipeline_data  # lazy: it loads torch (the `tuneforge` start)

        report, counts = check_pipeline_data(template, file, evaluation, settings)
        report.info.setdefault("examples", counts.get("train_examples", 0))
        return report, f"rules of the {template} pipeline (SPEC §3.2, §5.2)"
    assert model is not None
    return _sft_report(file, model, TuningMode.parse(mode), strict_length, settings)


def _sft_report(file: str, model: str, mode: TuningMode, strict: bool, settings: Settings) -> tuple[Report, str]:
    catalog = load_catalog(settings)
    report = Report(source=file)
    encoder = None
    from tuneforge.data.validate import Limits  # lazy: as above
    from tuneforge.train.loading import chat_encoder, limits_for  # lazy: torch loads only when a command needs it
    from tuneforge.train.preflight import open_model, prepare  # lazy: as above

    try:
        source, limits = open_model(catalog, model, None, mode, dev=settings.dev, settings=settings, strict=strict)
        encoder = chat_encoder(source)
    except WeightsNotConfigured as exc:
        # Structure is still checked; token counts need the model's tokenizer.
        first = exc.message.splitlines()[0].split(". ", 1)[0].rstrip(":")
        report.warning(f"token limits not checked: {first} (or pass --dev to count with the tiny stand-in's tokenizer)")
        entry = catalog.models.get(model)  # None for a closed id that is not mapped yet
        if entry is not None:
            limits = limits_for(entry, model, mode, strict)
        else:
            limits = Limits(model_id=model, mode=mode.value, max_seq_len=0, strict=strict)
    prepared = prepare([file], limits, encoder, settings)[0]
    prepared.report.problems[:0] = report.problems
    line = ""
    if limits.max_seq_len:
        line = f"{model} in {mode.value} mode: at most {limits.max_seq_len} tokens per example" + "".join(
            f"; {v} in {m}" for m, v in limits.other_modes.items()
        )
    return prepared.report, line


def print_report(report: Report, limits_line: str) -> None:
    for p in report.errors:
        console.print(f"[red]error[/red]   {escape(str(p))}")
    for p in report.warnings:
        console.print(f"[yellow]warning[/yellow] {escape(str(p))}")
    info = report.info
    summary = f"{info.get('examples', 0)} examples" + (f" in {info['lines']} lines" if "lines" in info else "")
    if "labelled" in info:
        summary += f" ({info['labelled']} labelled, {info['unlabelled']} for the teacher to label)"
    if "format" in info:
        summary += f", format {FORMAT_NAMES.get(info['format'], info['format'])}"
    if "tokens" in info:
        summary += (
            f"; {info['tokens']:,} tokens (longest {info['max_tokens']:,}, {info['target_tokens']:,} "
            f"trained), {info['truncated']} over the limit"
        )
    console.print(summary)
    if limits_line:
        console.print(f"limits: {limits_line}")
    verdict = "[green]OK[/green]" if report.ok else f"[red]{len(report.errors)} error(s)[/red]"
    console.print(f"{verdict}, {len(report.warnings)} warning(s)")
