"""List filters (AIP-160 subset) for every collection: ``labels.KEY="V"`` and ``field="V"`` joined by AND."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func

from tuneforge.control.tables import ModelRow, PipelineJobRow, TuningJobRow
from tuneforge.errors import InvalidArgument

_CLAUSE = re.compile(r'^\s*(labels\.([\w.-]+)|[A-Za-z_]+)\s*(=|!=)\s*"?([^"]*)"?\s*$')


def filter_conditions(text: str | None, columns: dict[str, Any], labels: Any) -> list[Any]:
    """AIP-160 subset: ``labels.KEY="V"`` and ``field="V"`` (``=``, ``!=``) joined by AND, as SQL conditions.

    ``columns`` maps the field names a collection accepts (both spellings) to columns; ``labels`` is its JSON
    labels column (``json_extract`` on SQLite, ``->>`` on PostgreSQL).
    """
    if not text or not text.strip():
        return []
    usage = ", ".join(['labels.KEY="VALUE"', *(f'{name}="…"' for name in columns if "_" in name or name.islower())])
    conditions = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        m = _CLAUSE.match(part)
        if not m or (m.group(2) is None and m.group(1) not in columns):
            raise InvalidArgument(f"filter: cannot parse {part!r}; use {usage}, joined with AND")
        column = labels[m.group(2)].as_string() if m.group(2) else columns[m.group(1)]
        value = m.group(4)
        conditions.append(column == value if m.group(3) == "=" else column != value)
    return conditions


TUNING_JOB_FILTERS = {
    "display_name": TuningJobRow.display_name,
    "displayName": TuningJobRow.display_name,
    "state": TuningJobRow.state,
    "base_model": TuningJobRow.base_model,
    "baseModel": TuningJobRow.base_model,
    "method": TuningJobRow.config["method"].as_string(),  # supervised, preference, distillation (tuneforge's)
}
_PIPELINE_MODEL = func.coalesce(
    PipelineJobRow.parameters["large_model_reference"].as_string(),
    PipelineJobRow.parameters["student_model_reference"].as_string(),
)
PIPELINE_JOB_FILTERS = {
    "display_name": PipelineJobRow.resource["displayName"].as_string(),
    "displayName": PipelineJobRow.resource["displayName"].as_string(),
    "state": PipelineJobRow.state,
    "pipeline_name": PipelineJobRow.template,  # tune-large-model, tune-large-chat-model, distillation
    "base_model": _PIPELINE_MODEL,  # large_model_reference, or distillation's student_model_reference
}
MODEL_FILTERS = {"display_name": ModelRow.display_name, "displayName": ModelRow.display_name}
