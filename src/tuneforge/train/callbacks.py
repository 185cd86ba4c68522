"""The hooks a run reports through (progress bars, the job store, pipeline tasks); every one optional."""

from __future__ import annotations

from typing import Any


class Callbacks:
    """Hooks for progress display and the service; all optional."""

    def on_start(self, total_steps: int, start_step: int, plan: Any) -> None: ...
    def on_step(self, step: int, total_steps: int, metrics: dict) -> None: ...
    def on_eval(self, step: int, metrics: dict) -> None: ...
    def on_message(self, message: str) -> None: ...
