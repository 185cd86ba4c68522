"""Dataset statistics in the shape of Vertex's ``tuningDataStats``: ``supervisedTuningDataStats`` and
``preferenceOptimizationDataStats``.

int64 fields are strings and doubles are numbers, as on the wire, so the stored JSON is served as it is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from tuneforge.data.conversation import Conversation
from tuneforge.data.preference import EncodedPair, PreferencePair
from tuneforge.data.tokenize import Encoded

NUM_BUCKETS = 10
SAMPLE_EXAMPLES = 3


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def as_double(supervised: dict) -> dict:
    """A ``SupervisedTuningDatasetDistribution`` as a ``DatasetDistribution``: the sum a number, no billable sum."""
    out = {k: v for k, v in supervised.items() if k != "billableSum"}
    out["sum"] = float(out["sum"])
    return out


def distribution(values: Sequence[float], billable_multiplier: int = 1, *, double: bool = False) -> dict:
    """``{sum, min, max, mean, median, p5, p95, buckets, billableSum}`` of per-example values (``double``: the
    ``DatasetDistribution`` shape, whose sum is a number and which has no billable sum)."""
    if double:
        return as_double(distribution(values))
    if not values:
        return {
            "sum": "0",
            "billableSum": "0",
            "min": 0.0,
            "max": 0.0,
            "mean": 0.0,
            "median": 0.0,
            "p5": 0.0,
            "p95": 0.0,
            "buckets": [],
        }
    ordered = sorted(values)
    lo, hi = ordered[0], ordered[-1]
    width = max(1.0, math.ceil((hi - lo + 1) / NUM_BUCKETS))
    counts: dict[int, int] = {}
    for v in ordered:
        counts[int((v - lo) // width)] = counts.get(int((v - lo) // width), 0) + 1
    buckets = [
        {"count": float(counts[b]), "left": float(lo + b * width), "right": float(lo + (b + 1) * width)}
        for b in sorted(counts)
    ]
    total = sum(ordered)
    return {
        "sum": str(total),
        "billableSum": str(total * billable_multiplier),
        "min": float(lo),
        "max": float(hi),
        "mean": total / len(ordered),
        "median": float(statistics.median(ordered)),
        "p5": _percentile(ordered, 5),
        "p95": _percentile(ordered, 95),
        "buckets": buckets,
    }


def _contents(conversations: Sequence[Conversation]) -> list[dict]:
    """Sample messages as Vertex shows them: Content objects with roles user/model (system prompts left out)."""
    return [
        {
            "role": "model" if m.role == "assistant" else "user",
            "parts": [{"text": m.text}]
            # gs:// images by reference; inline ones are left out of the sample (their bytes would bloat the job)
            + [
                {"fileData": {"mimeType": p.mime_type, "fileUri": p.uri}} for p in m.images if p.uri.startswith("gs://")
            ],
        }
        for c in conversations
        for m in c.messages
        if m.role != "system"
    ]


def supervised_tuning_data_stats(
    encoded: Sequence[Encoded],
    conversations: Sequence[Conversation],
    *,
    epochs: float,
    steps: int,
    dropped: Sequence[str] = (),
) -> dict:
    """The ``supervisedTuningDataStats`` of a training set as it will be trained (after truncation and drops)."""
    input_tokens = [len(e) - e.num_target_tokens for e in encoded]
    output_tokens = [e.num_target_tokens for e in encoded]
    total_tokens = sum(len(e) for e in encoded)
    chars = sum(e.chars for e in encoded)
    billable = max(1, math.ceil(epochs))
    truncated = [e.index for e in encoded if e.truncated]
    images = {"userImagePerExampleDistribution": distribution([len(e.images) for e in encoded])}
    return {
        **(images if any(e.images for e in encoded) else {}),
        "tuningDatasetExampleCount": str(len(encoded)),
        "totalTuningCharacterCount": str(chars),
        "totalBillableCharacterCount": str(chars * billable),
        "totalBillableTokenCount": str(total_tokens * billable),
        "tuningStepCount": str(steps),
        "userInputTokenDistribution": distribution(input_tokens, billable),
        "userOutputTokenDistribution": distribution(output_tokens, billable),
        "userMessagePerExampleDistribution": distribution([e.num_messages for e in encoded]),
        "userDatasetExamples": _contents(conversations[:SAMPLE_EXAMPLES]),
        "totalTruncatedExampleCount": str(len(truncated)),
        "truncatedExampleIndices": [str(i) for i in truncated],
        "droppedExampleReasons": list(dropped),
    }


def _content(message_role: str, text: str) -> dict:
    return {"role": "model" if message_role == "assistant" else "user", "parts": [{"text": text}]}


def preference_data_stats(
    encoded: Sequence[EncodedPair], pairs: Sequence[PreferencePair], *, epochs: float, steps: int
) -> dict:
    """The ``preferenceOptimizationDataStats`` of a training set: prompt tokens in, both completions' tokens out."""
    billable = max(1, math.ceil(epochs))
    samples = [
        {
            "contents": [_content(m.role, m.text) for m in p.prompt.messages if m.role != "system"],
            "completions": [
                {"score": 1.0, "completion": _content("assistant", p.chosen)},
                {"score": 0.0, "completion": _content("assistant", p.rejected)},
            ],
        }
        for p in pairs[:SAMPLE_EXAMPLES]
    ]
    return {
        "tuningDatasetExampleCount": str(len(encoded)),
        "totalBillableTokenCount": str(sum(len(e.chosen) + len(e.rejected) for e in encoded) * billable),
        "tuningStepCount": str(steps),
        "userInputTokenDistribution": distribution([e.prompt_tokens for e in encoded], double=True),
        "userOutputTokenDistribution": distribution(
            [e.chosen.num_target_tokens + e.rejected.num_target_tokens for e in encoded], double=True
        ),
        "scoresDistribution": distribution([1.0, 0.0] * len(encoded), double=True),
        "scoreVariancePerExampleDistribution": distribution([0.25] * len(encoded), double=True),
        "userDatasetExamples": samples,
        "droppedExampleIndices": [],
        "droppedExampleReasons": [],
    }


def distillation_data_stats(student: dict, examples: int, dropped_lines: Sequence[int]) -> dict:
    """``distillationDataStats`` from the student's ``supervisedTuningDataStats`` (over the multi-task lines the
    teacher's answers made) and the prompt dataset: its example count, and the lines dropped because the teacher
    gave no readable answer."""
    same = (
        "totalTuningCharacterCount",
        "totalBillableCharacterCount",
        "tuningStepCount",
        "userDatasetExamples",
    )
    distributions = ("userInputTokenDistribution", "userOutputTokenDistribution", "userMessagePerExampleDistribution")
    stats = {key: student[key] for key in same if key in student}
    stats.update({key: as_double(student[key]) for key in distributions if key in student})
    stats.update(
        tuningDatasetExampleCount=str(examples),
        droppedExampleIndices=[str(line - 1) for line in dropped_lines],
        droppedExampleReasons=[f"line {line}: the teacher gave no readable answer" for line in dropped_lines],
    )
    return {"trainingDatasetStats": stats}
