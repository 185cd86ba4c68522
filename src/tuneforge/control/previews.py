"""``tuningJobs:preview`` and ``pipelineJobs:preview``: what a create request would do, checked exactly as create
checks it (the same services' rules, the same dataset preflight) but stored nowhere. A request create would refuse
for its fields is refused here the same way; problems in its datasets come back as a line-numbered report, with
warnings, so a form can show them all."""

from __future__ import annotations

from typing import Any

from tuneforge.catalog import Catalog, load_catalog
from tuneforge.control import estimates
from tuneforge.control.db import Store
from tuneforge.control.pipeline_jobs import PipelineJobService, pipeline_tuning_config
from tuneforge.control.tuning_jobs import TuningJobService
from tuneforge.data import Report
from tuneforge.errors import DatasetInvalid
from tuneforge.settings import Settings
from tuneforge.storage import Access
from tuneforge.train.config import TuningConfig
from tuneforge.train.pipeline_data import check_pipeline_data
from tuneforge.train.preflight import check_distillation
from tuneforge.train.preview import preview_run
from tuneforge.wire.pipelines import PipelineJob
from tuneforge.wire.preview import DatasetSummary, JobPreview, ReportProblem
from tuneforge.wire.tuning import TuningDataStats, TuningJob

PREVIEW_ID = "preview"  # the job id build_config names default outputs with (nothing is written there)
TEACHER_FIRST = (
    "the teacher writes the student's training text first, so its tokens and duration are known only after the "
    "teacher's step"
)


def problems(report: Report) -> list[ReportProblem]:
    return [
        ReportProblem(severity=p.severity, message=p.message, line=p.line, path=p.path, source=p.source)
        for p in [*report.errors, *report.warnings]
    ]


def _summary(dataset: Any, role: str) -> DatasetSummary:
    info = dataset.report.info
    return DatasetSummary(
        uri=dataset.source,
        role=role,
        format=info.get("format"),
        lines=info.get("lines"),
        examples=len(dataset.examples),
    )


def _run_preview(
    store: Store, config: TuningConfig, catalog: Catalog, settings: Settings, access: Access | None
) -> JobPreview:
    """The preview of a run the SFT or DPO recipe executes (a tuning job, or a code pipeline's tune task); its
    images are read with ``access``."""
    try:
        run = preview_run(config, settings=settings, catalog=catalog, access=access)
    except DatasetInvalid as exc:
        return JobPreview(ready=False, problems=problems(exc.report))
    resolved = run.data.source.resolved
    estimate, why = estimates.estimate(
        store, catalog, settings, resolved.entry.id, config.tuning_mode.value, config.method, run.tokens
    )
    roles = [(run.data.train, "training"), (run.data.validation, "validation")]
    return JobPreview(
        ready=True,
        problems=problems(run.data.report),
        datasets=[_summary(d, role) for d, role in roles if d is not None],
        runs_on=resolved.entry.id,
        stand_in=resolved.stand_in,
        note=resolved.note or None,
        plan=run.plan.model_dump(mode="json"),
        tuning_data_stats=TuningDataStats.model_validate({run.stats_key: run.data_stats}),
        examples=len(run.data.train.examples),
        trained_tokens=run.tokens,
        estimate=estimate,
        estimate_note=why,
    )


def preview_tuning_job(service: TuningJobService, project: str, location: str, job: TuningJob) -> JobPreview:
    service.check_region(location)
    catalog = load_catalog(service.settings)
    config, _ = service.build_config(project, PREVIEW_ID, job, catalog, claim=False)
    if config.method != "distillation":
        access = service.buckets.for_project(project, claim=False)
        return _run_preview(service.store, config, catalog, service.settings, access)
    try:
        source, examples = check_distillation(config, settings=service.settings, catalog=catalog)
    except DatasetInvalid as exc:
        return JobPreview(ready=False, problems=problems(exc.report))
    service.check_teacher(config.teacher, examples, catalog)  # as create checks it (a dev stand-in cannot label)
    return JobPreview(
        ready=True,
        runs_on=source.resolved.entry.id,
        stand_in=source.resolved.stand_in,
        note=source.resolved.note or None,
        examples=len(examples),
        estimate_note=TEACHER_FIRST,
    )


def preview_pipeline_job(service: PipelineJobService, project: str, location: str, job: PipelineJob) -> JobPreview:
    template, params, _ = service.validate(project, location, job, claim=False)
    settings = service.settings
    report, counts = check_pipeline_data(template, params["dataset_uri"], params.get("evaluation_data_uri"), settings)
    if not report.ok:
        return JobPreview(ready=False, problems=problems(report))
    if template == "distillation":
        return JobPreview(
            ready=True, problems=problems(report), examples=counts.get("train_examples"), estimate_note=TEACHER_FIRST
        )
    catalog = load_catalog(settings)
    config = pipeline_tuning_config(template, params, "gs://preview", catalog)
    preview = _run_preview(service.store, config, catalog, settings, service.buckets.for_project(project, claim=False))
    seen = problems(report)  # the pipeline's own rules first, then what the tune task's preflight adds
    preview.problems = seen + [p for p in preview.problems if p not in seen]
    return preview
