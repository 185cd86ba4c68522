"""What every job's child process shares: its start-up, and the stop check it polls between steps.

A job has one trainer. A child dies with the worker that started it (Linux's parent-death signal), and its stop
check fences it besides: once its worker is gone, or the job's row names another worker (recovery gave the job to a
new attempt), it raises LeaseLost, which ends the child without a checkpoint, a metric or a state written. SIGTERM
(the worker shutting down) is a stop like a pause: the run saves its checkpoint and the job goes back to the queue.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from sqlalchemy import select

from tuneforge.control.db import Store
from tuneforge.quiet import quiet_libraries
from tuneforge.settings import Settings
from tuneforge.train.launch import die_with_parent


class LeaseLost(BaseException):
    """This child no longer owns its job (its worker died, or another attempt has it): it must write nothing more.
    A BaseException, so no ``except Exception`` on the way out turns it into a failed job."""


def child_setup(db_url: str, settings_json: dict[str, Any], parent_pid: int) -> tuple[Settings, Store]:
    """Die with the worker, stop on SIGTERM at the next step, quiet libraries; the worker's settings and the job
    store (already migrated by the server)."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, _terminate)
    quiet_libraries()
    return Settings(**settings_json), Store(db_url, migrate=False)


def _die_with_parent(parent_pid: int) -> None:
    die_with_parent()
    if os.getppid() != parent_pid:  # the worker died before the signal was armed
        raise LeaseLost(f"the worker {parent_pid} is gone")


_TERMINATING = False


def _terminate(signum: int, frame: Any) -> None:
    global _TERMINATING
    _TERMINATING = True


def terminating() -> bool:
    """The worker asked this child to stop (SIGTERM): it is shutting down, the job goes back to the queue."""
    return _TERMINATING


class StopCheck:
    """``should_stop`` for a job's child: the job was cancelled (or paused, for a table with ``pause_requested``),
    or the worker is shutting down (SIGTERM); raises LeaseLost when the child no longer owns the job."""

    def __init__(self, store: Store, table: Any, job_id: str, parent_pid: int, worker_id: str):
        self.store, self.table, self.job_id, self.parent_pid = store, table, job_id, parent_pid
        self.worker_id = worker_id
        self.flags = [table.cancel_requested] + ([table.pause_requested] if hasattr(table, "pause_requested") else [])

    def __call__(self) -> bool:
        if os.getppid() != self.parent_pid:
            raise LeaseLost(f"the worker {self.parent_pid} is gone")
        with self.store.session() as s:
            found = s.execute(select(self.table.worker_id, *self.flags).where(self.table.id == self.job_id)).first()
        if found is None or found[0] != self.worker_id:
            raise LeaseLost(f"job {self.job_id} is no longer this worker's ({self.worker_id})")
        return _TERMINATING or any(found[1:])
