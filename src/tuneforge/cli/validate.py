"""`tuneforge validate`: the report a run or a pipeline would give, printed (train/dataset_check.py makes it)."""

from __future__ import annotations

from rich.markup import escape

from tuneforge.cli.common import console
from tuneforge.data.formats import FORMAT_NAMES
from tuneforge.data.report import Report


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
    if "images" in info:
        summary += f", {info['images']} image(s) opened and checked"
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
