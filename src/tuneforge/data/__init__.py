"""Datasets: parse every documented format into one conversation type, validate, tokenise, pack, describe.
Imports only the base (wire, settings, errors, storage)."""

from tuneforge.data.conversation import Conversation, ImagePart, Message, TextPart
from tuneforge.data.formats import parse_lines
from tuneforge.data.pack import Batch, collate
from tuneforge.data.report import Problem, Report
from tuneforge.data.stats import supervised_tuning_data_stats
from tuneforge.data.tokenize import IGNORE_INDEX, ChatEncoder, Encoded
from tuneforge.data.validate import Limits, PreparedDataset, prepare_dataset

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
