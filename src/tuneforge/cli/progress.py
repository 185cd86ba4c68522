"""A run's progress, shown the same way for a run here and for a job followed on a server: a live bar with steps,
loss, tokens/s and ETA on a terminal; elsewhere (a file, a CI log) a plain line every few steps."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tuneforge.cli.client import Client
from tuneforge.cli.common import console, is_terminal
from tuneforge.train.callbacks import Callbacks

PLAIN_EVERY_SECONDS = 10.0


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


class RunView:
    """Steps, loss and speed of one run; ``enabled=False`` shows nothing (ranks other than 0 under torchrun)."""

    def __init__(self, label: str = "training", *, enabled: bool = True):
        self.label, self.enabled = label, enabled
        self.live = enabled and is_terminal()
        self.bar: Progress | None = None
        self.task: Any = None
        self.total: int | None = None
        self.started = time.monotonic()
        self.first_step = 0
        self.last_line = 0.0
        self.last_step = -1

    def __enter__(self) -> RunView:
        if self.live:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[tps]} tok/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.label, total=None, loss="-", tps="-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def state(self, text: str) -> None:
        """A job's state while it has not started training (queued, pending)."""
        if self.bar is not None:
            self.bar.update(self.task, description=text)

    def start(self, total: int | None, step: int) -> None:
        self.total, self.first_step = total, step
        self.started = time.monotonic()  # the ETA counts from here, not from the time a job waited in the queue
        if self.bar is not None:
            self.bar.update(self.task, description=self.label, total=total, completed=step)
        elif self.enabled:
            console.print(f"{self.label}: {total} steps" + (f", resuming at step {step}" if step else ""))

    def step(self, step: int, loss: float | None, tokens_per_second: float | None) -> None:
        if step <= self.last_step:
            return
        self.last_step = step
        loss_text = f"{loss:.4f}" if loss is not None else "-"
        tps_text = f"{tokens_per_second:,.0f}" if tokens_per_second else "-"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=loss_text, tps=tps_text)
            return
        now = time.monotonic()
        last = self.total is not None and step >= self.total
        if not self.enabled or not (last or step == 1 or now - self.last_line >= PLAIN_EVERY_SECONDS):
            return
        self.last_line = now
        elapsed = now - self.started
        done = step - self.first_step
        eta = f", ETA {_clock(elapsed / done * (self.total - step))}" if self.total and done > 0 else ""
        console.print(
            f"step {step}/{self.total or '?'}  loss {loss_text}  {tps_text} tok/s  {_clock(elapsed)} elapsed{eta}"
        )

    def evaluation(self, step: int, values: dict[str, float]) -> None:
        """An evaluation's line: its loss, and token accuracy (supervised) or reward accuracy and margin
        (preference tuning)."""
        text = f"step {step}: eval_total_loss {values['eval_total_loss']:.4f}"
        if values.get("eval_fraction_of_correct_next_step_preds") is not None:
            text += f", eval token accuracy {values['eval_fraction_of_correct_next_step_preds']:.3f}"
        if values.get("eval_reward_accuracy") is not None:
            text += f", eval reward accuracy {values['eval_reward_accuracy']:.3f}"
            text += f", reward margin {values.get('eval_reward_margin', 0.0):.3f}"
        self.message(text)

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.console if self.bar is not None else console).print(f"  {escape(text)}")


class ViewCallbacks(Callbacks):
    """A local run's callbacks feeding a RunView."""

    def __init__(self, view: RunView):
        self.view = view

    def on_start(self, total_steps: int, start_step: int, plan: Any) -> None:
        self.view.start(total_steps, start_step)

    def on_step(self, step: int, total_steps: int, metrics: dict) -> None:
        self.view.step(step, metrics.get("train_total_loss"), metrics.get("tokens_per_second"))

    def on_eval(self, step: int, metrics: dict) -> None:
        self.view.evaluation(step, metrics)

    def on_message(self, message: str) -> None:
        self.view.message(message)


def follow(c: Client, name: str, label: str = "training") -> dict:
    """Follow a tuning job on a server until it ends, every step it reports shown as a local run's are."""
    with RunView(label) as view:
        evaluated: set[int] = set()

        def update(job: dict, page: dict) -> None:
            progress = page["progress"]
            if view.total is None:  # not started yet: the job's state, until it reports its steps
                if progress.get("totalSteps"):
                    view.start(progress["totalSteps"], progress.get("step", 0))
                else:
                    view.state(job["state"].removeprefix("JOB_STATE_").lower())
            by_step: dict[int, dict[str, float]] = {}
            for m in page["metrics"]:
                by_step.setdefault(m["step"], {})[m["name"]] = m["value"]
            for step in sorted(by_step):
                values = by_step[step]
                if "train_total_loss" in values:  # the job's latest speed stands for the steps of this poll
                    view.step(step, values["train_total_loss"], progress.get("tokensPerSecond"))
                if "eval_total_loss" in values and step not in evaluated:
                    evaluated.add(step)
                    view.evaluation(step, values)

        return c.follow(name, on_progress=update)
