"""Workers: claim runnable jobs, run each in a child process, keep heartbeats, cancel, recover.

State lives in the database (DESIGN.md rule 8): a worker may die at any moment. A job whose heartbeat goes stale
is resumed by any worker (training picks up from its last checkpoint in the output folder) up to
``max_attempts`` runs, then failed with a clear error. A child whose worker died stops at its next step, so a
recovered job never runs twice at once.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.process import BaseProcess
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, text, update
from sqlalchemy.orm import Session, object_session

from tuneforge.control import events, states
from tuneforge.control import pipeline_jobs as p
from tuneforge.control.db import Store, lock_project
from tuneforge.control.tables import PipelineJobRow, TuningJobRow, release, utcnow
from tuneforge.control.tuning_jobs import finish_stopped
from tuneforge.errors import status
from tuneforge.settings import Settings
from tuneforge.worker.child import LeaseLost

log = logging.getLogger("tuneforge.worker")
CANCEL_GRACE_SECONDS = 6.0  # after this the child is killed: cancel completes well inside 10 s


@dataclass(frozen=True)
class JobKind:
    """One kind of job the worker runs: its table, its state spellings, its child entry point and its cancel."""

    name: str
    table: Any  # the job's table class (TuningJobRow, PipelineJobRow)
    pending: str
    running: str
    cancelling: str
    failed: str
    claimable: tuple[str, ...]
    final: tuple[str, ...]
    target: str  # "module:function" run in the child (job_id, db_url, settings_json, parent_pid, worker_id)
    finish_stopped: Callable[[Any, Any], str | None]  # (row, now): settle a cancel or pause asked; what, or None


def job_kinds() -> tuple[JobKind, ...]:
    tuning = JobKind(
        "tuning",
        TuningJobRow,
        states.PENDING,
        states.RUNNING,
        states.CANCELLING,
        states.FAILED,
        states.CLAIMABLE,
        states.FINAL,
        "tuneforge.worker.tuning:run_job",
        finish_stopped,
    )
    pipeline = JobKind(
        "pipeline",
        PipelineJobRow,
        p.PENDING,
        p.RUNNING,
        p.CANCELLING,
        p.FAILED,
        (p.PENDING,),
        p.FINAL,
        "tuneforge.worker.pipeline:run_job",
        p.finish_stopped,
    )
    return (tuning, pipeline)


@dataclass
class Running:
    kind: JobKind
    job_id: str
    process: BaseProcess
    started: float
    cancel_seen_at: float | None = None


def _child(target: str, *args: Any) -> None:
    module, function = target.split(":")
    try:
        getattr(importlib.import_module(module), function)(*args)
    except LeaseLost as lost:  # another attempt owns the job now: leave without a word written
        log.warning("stopped without writing: %s", lost)


class Worker:
    def __init__(self, store: Store, settings: Settings, *, slots: int = 1, worker_id: str | None = None):
        self.store = store
        self.settings = settings
        self.slots = max(1, slots)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.kinds = job_kinds()
        self.running: dict[tuple[str, str], Running] = {}
        self._ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited locks, threads or CUDA state

    # -- claiming ---------------------------------------------------------------------------------------------------
    def claim(self, kind: JobKind | None = None) -> str | None:
        """Atomically take the oldest runnable job of ``kind`` whose project is under its running quota."""
        kind = kind or self.kinds[0]
        table = kind.table
        limit = self.settings.max_running_jobs_per_project
        with self.store.session() as s:
            name = table.__tablename__
            running = (
                select(func.count())
                .select_from(table.__table__.alias("r"))
                .where(text(f"r.project = {name}.project"), text(f"r.state IN ('{kind.running}', '{kind.cancelling}')"))
                .scalar_subquery()
            )
            q = (
                select(table.id)
                .where(table.state.in_(kind.claimable), running < limit)
                .order_by(table.create_time, table.id)
                .limit(1)
            )
            if self.store.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True, of=table)
            job_id = s.scalar(q)
            if job_id is None or not self._under_quota(s, kind, job_id, limit):
                return None
            now = utcnow()
            done = cast(
                CursorResult[Any],
                s.execute(
                    update(table)
                    .where(table.id == job_id, table.state.in_(kind.claimable))
                    .values(
                        state=kind.running,
                        worker_id=self.worker_id,
                        heartbeat_time=now,
                        update_time=now,
                        start_time=func.coalesce(table.start_time, now),
                        attempts=table.attempts + 1,
                    )
                ),
            ).rowcount
            if done != 1:
                return None
            attempt = s.scalar(select(table.attempts).where(table.id == job_id))
            events.record(s, kind.name, job_id, f"Started on worker {self.worker_id} (attempt {attempt})")
            return job_id

    def _under_quota(self, s: Session, kind: JobKind, job_id: str, limit: int) -> bool:
        """Recount the job's project under its admission lock: two workers claiming at once stay within quota."""
        table = kind.table
        project = s.scalar(select(table.project).where(table.id == job_id))
        if project is None:
            return False
        lock_project(s, project)
        running = s.scalar(
            select(func.count())
            .select_from(table)
            .where(table.project == project, table.state.in_((kind.running, kind.cancelling)))
        )
        return (running or 0) < limit

    # -- one pass of the loop -------------------------------------------------------------------------------------
    def tick(self) -> None:
        self.recover_stale()
        self._watch_children()
        for kind in self.kinds:
            while len(self.running) < self.slots:
                job_id = self.claim(kind)
                if job_id is None:
                    break
                settings = self.settings.model_dump(mode="json")
                args = (kind.target, job_id, self.store.url, settings, os.getpid(), self.worker_id)
                process = self._ctx.Process(
                    target=_child, args=args, name=f"tuneforge-{kind.name}-{job_id}", daemon=False
                )
                process.start()
                self.running[(kind.name, job_id)] = Running(kind, job_id, process, time.monotonic())
                log.info("%s job %s started in process %s", kind.name, job_id, process.pid)

    def _watch_children(self) -> None:
        now = utcnow()
        for key, run in list(self.running.items()):
            kind = run.kind
            with self.store.session() as s:
                row = s.get(kind.table, run.job_id)
                if row is not None and row.state in (kind.running, kind.cancelling):
                    row.heartbeat_time = now
                cancel = row is not None and row.cancel_requested
            if cancel and run.process.is_alive():
                run.cancel_seen_at = run.cancel_seen_at or time.monotonic()
                if time.monotonic() - run.cancel_seen_at > CANCEL_GRACE_SECONDS:
                    run.process.kill()
            if run.process.is_alive():
                continue
            run.process.join()
            del self.running[key]
            self._after_exit(kind, run.job_id, run.process.exitcode)

    def _after_exit(self, kind: JobKind, job_id: str, exitcode: int | None) -> None:
        """A child that ended without writing a final state crashed or was killed."""
        with self.store.session() as s:
            row = s.get(kind.table, job_id)
            # The child settled it (a final state, paused, back in the queue), or another worker has it by now.
            if row is None or row.state not in (kind.running, kind.cancelling) or row.worker_id != self.worker_id:
                return
            self._requeue_or_fail(
                kind,
                row,
                f"process exited with {exitcode}",
                status(
                    "INTERNAL",
                    f"the training process exited unexpectedly (exit code {exitcode}) {row.attempts} times; "
                    "see the worker log",
                ),
            )

    def recover_stale(self) -> None:
        """Jobs RUNNING on a worker whose heartbeat stopped (killed, machine lost): requeue or fail them."""
        cutoff = utcnow() - timedelta(seconds=self.settings.heartbeat_timeout_seconds)
        for kind in self.kinds:
            table = kind.table
            with self.store.session() as s:
                q = select(table).where(table.state.in_((kind.running, kind.cancelling)), table.heartbeat_time < cutoff)
                if self.store.dialect == "postgresql":
                    q = q.with_for_update(skip_locked=True)
                for row in s.scalars(q):
                    if (kind.name, row.id) in self.running:
                        continue
                    self._requeue_or_fail(
                        kind,
                        row,
                        f"worker lost (no heartbeat since {row.heartbeat_time})",
                        status(
                            "DEADLINE_EXCEEDED",
                            f"the worker running this job stopped responding {row.attempts} times "
                            "(no heartbeat); giving up",
                        ),
                    )

    def _requeue_or_fail(self, kind: JobKind, row: Any, why: str, failure: dict[str, Any]) -> None:
        """A job whose run ended without a final state: cancelled if asked, else back to PENDING (it resumes from its
        last checkpoint on the next claim) until ``max_attempts`` runs, then failed with ``failure``."""
        now = utcnow()
        session = object_session(row)  # the event lands with the state change
        assert session is not None
        row.update_time, row.worker_id = now, None
        stopped = kind.finish_stopped(row, now)
        if stopped is not None:
            events.record(session, kind.name, row.id, f"{stopped} ({why})")
        elif row.attempts < self.settings.max_attempts:
            row.state = kind.pending
            events.record(
                session,
                kind.name,
                row.id,
                f"{why}; back in the queue, resumes from its last checkpoint (attempt {row.attempts} of "
                f"{self.settings.max_attempts})",
                "WARNING",
            )
            log.warning(
                "%s job %s: %s; requeued (attempt %s of %s)",
                kind.name,
                row.id,
                why,
                row.attempts,
                self.settings.max_attempts,
            )
        else:
            row.state, row.end_time, row.error = kind.failed, now, failure
            events.record(session, kind.name, row.id, f"Failed: {failure['message']}", "ERROR")

    def run(self, stop: threading.Event, poll_seconds: float | None = None) -> None:
        poll = poll_seconds or min(1.0, self.settings.heartbeat_seconds)
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must survive a database hiccup
                log.exception("worker tick failed")
            stop.wait(poll)
        self.shutdown()

    def shutdown(self) -> None:
        """Stop children; their jobs go back to PENDING and resume from their checkpoints on the next worker."""
        for run in self.running.values():
            if run.process.is_alive():
                run.process.terminate()
        for run in list(self.running.values()):
            run.process.join(timeout=10)
            if run.process.is_alive():
                run.process.kill()
                run.process.join()
            kind = run.kind
            with self.store.session() as s:
                row = s.get(kind.table, run.job_id)
                if row is None or row.state not in (kind.running, kind.cancelling):
                    continue  # its child settled it
                stopped = kind.finish_stopped(row, utcnow())
                if stopped is not None:
                    events.record(s, kind.name, row.id, f"{stopped} (the worker stopped)")
                else:
                    release(row, kind.pending)
                    events.record(s, kind.name, row.id, "The worker stopped; back in the queue", "WARNING")
        self.running.clear()
