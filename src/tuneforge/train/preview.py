"""A run before it runs: the datasets checked and tokenised as the recipe will (the same preflight), the plan it will
resolve and the data statistics its job will report. Nothing is loaded but the tokenizer; no weights, no files
written. The create forms of the console show it (``tuningJobs:preview``, ``pipelineJobs:preview``)."""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge import storage
from tuneforge.catalog import Catalog
from tuneforge.devices import pick_device, pick_dtype
from tuneforge.settings import Settings
from tuneforge.train.config import ResolvedRun, TuningConfig
from tuneforge.train.distributed import SINGLE
from tuneforge.train.preflight import Preflight, check_datasets
from tuneforge.train.recipes.dpo import STATS_KEY as PREFERENCE_STATS
from tuneforge.train.recipes.dpo import preference_stats
from tuneforge.train.recipes.sft import STATS_KEY as SUPERVISED_STATS
from tuneforge.train.recipes.sft import resolve_plan, supervised_stats


@dataclass
class RunPreview:
    data: Preflight
    plan: ResolvedRun
    stats_key: str  # where the statistics go in TuningDataStats
    data_stats: dict
    tokens: int  # tokens the run trains on: every training example's tokens x the effective epochs


def preview_run(
    config: TuningConfig, *, settings: Settings, catalog: Catalog, access: storage.Access | None = None
) -> RunPreview:
    """The run's preflight, plan and statistics; a dataset with errors raises DatasetInvalid (with its report)."""
    data = check_datasets(config, settings=settings, catalog=catalog, access=access)
    device = pick_device(config.device)
    plan = resolve_plan(config, data, SINGLE, device, pick_dtype(config.dtype, device))
    if config.method == "preference":
        key, stats = PREFERENCE_STATS, preference_stats(data, plan)
    else:
        key, stats = SUPERVISED_STATS, supervised_stats(data, plan)
    tokens = round(sum(len(e) for e in data.train.examples) * plan.epochs_effective)
    return RunPreview(data, plan, key, stats, tokens)
