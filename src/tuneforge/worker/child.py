"""What every job's child process shares: its start-up, and the stop check it polls between steps."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import select

from tuneforge.control.db import Store
from tuneforge.quiet import quiet_libraries
from tuneforge.settings import Settings


def child_setup(db_url: str, settings_json: dict[str, Any]) -> tuple[Settings, Store]:
    """Quiet libraries, the worker's settings, the job store (already migrated by the server)."""
    quiet_libraries()
    return Settings(**settings_json), Store(db_url, migrate=False)


class StopCheck:
    """``should_stop`` for a job's child: the job was cancelled (or paused, for a table with ``pause_requested``),
    or the worker that started this child died (another worker then resumes the job; stopping here means it never
    runs twice at once)."""

    def __init__(self, store: Store, table: Any, job_id: str, parent_pid: int):
        self.store, self.table, self.job_id, self.parent_pid = store, table, job_id, parent_pid
        self.flags = [table.cancel_requested] + ([table.pause_requested] if hasattr(table, "pause_requested") else [])

    def __call__(self) -> bool:
        if os.getppid() != self.parent_pid:
            return True
        with self.store.session() as s:
            found = s.execute(select(*self.flags).where(self.table.id == self.job_id)).first()
            return found is not None and any(found)
