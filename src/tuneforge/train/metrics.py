"""Metrics under the documents' names, to a JSONL file and TensorBoard event files.

JSONL keys are the bare names (``train_total_loss``); TensorBoard tags carry the leading slash Vertex shows
(``/train_total_loss``), as SPEC §8 S4 suggests.
"""

from __future__ import annotations

import json
from pathlib import Path

TRAIN_METRICS = ("train_total_loss", "train_fraction_of_correct_next_step_preds", "train_num_predictions")
EVAL_METRICS = ("eval_total_loss", "eval_fraction_of_correct_next_step_preds", "eval_num_predictions")


def train_metrics(task_sums, correct: int, counts, task_weights) -> dict:
    """A step's metrics from its totals: token-loss sums per task, correct next-token predictions, target tokens
    per task. The loss is sum over tasks of weight x mean token loss (one task with weight 1 in plain SFT); with a
    second task (distillation step-by-step's rationales) both task losses are reported too."""
    sums = [float(s) for s in task_sums]
    total = sum(counts)
    metrics = {
        "train_total_loss": sum(w * s / max(n, 1) for w, s, n in zip(task_weights, sums, counts)),
        "train_fraction_of_correct_next_step_preds": correct / max(total, 1),
        "train_num_predictions": total,
    }
    if counts[1]:
        metrics["train_label_loss"] = sums[0] / max(counts[0], 1)
        metrics["train_rationale_loss"] = sums[1] / counts[1]
    return metrics


def eval_metrics(loss_sum: float, correct: int, total: int) -> dict:
    """Evaluation metrics: mean token loss and next-token accuracy over every target token, whatever its task."""
    return {
        "eval_total_loss": loss_sum / max(total, 1),
        "eval_fraction_of_correct_next_step_preds": correct / max(total, 1),
        "eval_num_predictions": total,
    }


class MetricsWriter:
    def __init__(
        self, jsonl_path: Path, tensorboard_dir: Path, resume_step: int = 0, extra_tensorboard_dir: Path | None = None
    ):
        self.jsonl_path = Path(jsonl_path)
        self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_after(resume_step)
        from tensorboardX import SummaryWriter

        # purge_step drops events a crashed run logged after its last checkpoint, so a resumed curve is clean.
        purge = resume_step + 1 if resume_step else None
        self._writers = [SummaryWriter(logdir=str(tensorboard_dir), purge_step=purge)]
        if extra_tensorboard_dir is not None:
            self._writers.append(SummaryWriter(logdir=str(extra_tensorboard_dir), purge_step=purge))

    def _truncate_after(self, step: int) -> None:
        if not self.jsonl_path.exists():
            return
        kept = [line for line in self.jsonl_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.jsonl_path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, values: dict[str, float], **context) -> None:
        record = {"step": step, **context, **values}
        with self.jsonl_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        # add_scalar would strip the leading "/" (tensorboardX cleans tags); the documented names keep it, so the
        # summary is written as it is.
        from tensorboardX.proto.summary_pb2 import Summary

        summary = Summary(
            value=[Summary.Value(tag="/" + name, simple_value=float(value)) for name, value in values.items()]
        )
        for w in self._writers:
            w._get_file_writer().add_summary(summary, global_step=step)
            w.flush()

    def close(self) -> None:
        for w in self._writers:
            w.close()


def read_metrics(jsonl_path: Path) -> list[dict]:
    path = Path(jsonl_path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
