"""Datasets: parse every documented format into one conversation type, validate, tokenise, pack, describe.
Imports only the base (wire, settings, errors, storage).

The conversation, format and report modules are light; tokenising and packing load torch, so this package's names
load their module on first use (``from tuneforge.data.formats import …`` never pulls torch in).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneforge.data.conversation import Conversation, ImagePart, Message, TextPart
    from tuneforge.data.formats import parse_lines
    from tuneforge.data.pack import Batch, collate
    from tuneforge.data.report import Problem, Report
    from tuneforge.data.stats import supervised_tuning_data_stats
    from tuneforge.data.tokenize import IGNORE_INDEX, ChatEncoder, Encoded
    from tuneforge.data.validate import Limits, PreparedDataset, prepare_dataset

_HOMES = {
    "Conversation": "conversation",
    "ImagePart": "conversation",
    "Message": "conversation",
    "TextPart": "conversation",
    "parse_lines": "formats",
    "Batch": "pack",
    "collate": "pack",
    "Problem": "report",
    "Report": "report",
    "supervised_tuning_data_stats": "stats",
    "IGNORE_INDEX": "tokenize",
    "ChatEncoder": "tokenize",
    "Encoded": "tokenize",
    "Limits": "validate",
    "PreparedDataset": "validate",
    "prepare_dataset": "validate",
}
__all__ = [
    "IGNORE_INDEX",
    "Batch",
    "ChatEncoder",
    "Conversation",
    "Encoded",
    "ImagePart",
    "Limits",
    "Message",
    "PreparedDataset",
    "Problem",
    "Report",
    "TextPart",
    "collate",
    "parse_lines",
    "prepare_dataset",
    "supervised_tuning_data_stats",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"tuneforge.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'tuneforge.data' has no attribute {name!r}")
