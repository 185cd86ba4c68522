"""How long a job will take on this server, from jobs that finished here: the rate at which they trained tokens and
the time they spent outside optimizer steps (loading, evaluation, export). Nothing is assumed about the hardware: with
no finished job of the model yet, there is no estimate, and the preview says so."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from sqlalchemy import select

from tuneforge.catalog import Catalog
from tuneforge.control import states
from tuneforge.control.db import Store
from tuneforge.control.registry import DEV_LABEL
from tuneforge.control.tables import TuningJobRow
from tuneforge.errors import TuneforgeError
from tuneforge.settings import Settings
from tuneforge.wire.preview import Estimate

RECENT = 200  # finished jobs looked at, newest first
MEASURED = 5  # of which at most this many matching ones are used


@dataclass(frozen=True)
class Measured:
    tokens: float
    train_seconds: float
    wall_seconds: float
    exact: bool  # same model, mode and method (else the same model only)


def runs_on(catalog: Catalog, settings: Settings, base_model: str, labels: dict[str, str] | None) -> str:
    """The catalog model a job ran on: its dev stand-in, an alias's target, or its own id."""
    if labels and labels.get(DEV_LABEL):
        return labels[DEV_LABEL]
    try:
        return catalog.resolve(base_model, settings=settings).entry.id
    except TuneforgeError:
        return base_model


def _measured(store: Store, catalog: Catalog, settings: Settings, model: str, mode: str, method: str) -> list[Measured]:
    with store.session() as s:
        rows = s.execute(  # the columns it reads: a job's request echo and data statistics can be large
            select(
                TuningJobRow.base_model,
                TuningJobRow.labels,
                TuningJobRow.config,
                TuningJobRow.progress,
                TuningJobRow.start_time,
                TuningJobRow.end_time,
            )
            .where(TuningJobRow.state == states.SUCCEEDED)
            .order_by(TuningJobRow.end_time.desc())
            .limit(RECENT)
        ).all()
    found: list[Measured] = []
    for row in rows:
        progress = row.progress or {}
        tokens, seconds = float(progress.get("trainTokens") or 0), float(progress.get("trainSeconds") or 0)
        if tokens <= 0 or seconds <= 0 or row.start_time is None or row.end_time is None:
            continue
        if runs_on(catalog, settings, row.base_model, row.labels) != model:
            continue
        exact = row.config.get("tuning_mode") == mode and row.config.get("method", "supervised") == method
        wall = (row.end_time - row.start_time).total_seconds()
        found.append(Measured(tokens, seconds, wall, exact))
    exact = [m for m in found if m.exact]
    return (exact or found)[:MEASURED]


def estimate(
    store: Store, catalog: Catalog, settings: Settings, model: str, mode: str, method: str, tokens: int
) -> tuple[Estimate | None, str | None]:
    """(the estimate, or None and why) for a run of ``model`` in ``mode`` training ``tokens`` tokens."""
    jobs = _measured(store, catalog, settings, model, mode, method)
    if not jobs:
        return None, (
            f"no job on {model} has finished on this server yet; the estimate appears once one has (it is measured, "
            "not guessed)"
        )
    rate = sum(m.tokens for m in jobs) / sum(m.train_seconds for m in jobs)
    overhead = statistics.median(max(0.0, m.wall_seconds - m.train_seconds) for m in jobs)
    what = f"{mode} {method} jobs" if jobs[0].exact else "jobs (other modes or methods)"
    basis = f"{len(jobs)} finished {model} {what} on this server: {rate:,.0f} tokens/s, {overhead:.0f} s start-up"
    return (
        Estimate(
            seconds=overhead + tokens / rate,
            tokens_per_second=rate,
            overhead_seconds=overhead,
            jobs=len(jobs),
            basis=basis,
        ),
        None,
    )
