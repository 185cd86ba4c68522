"""The tuning-job service: turns Vertex TuningJob requests into engine configs, enforces quota, moves states.

Routers call these functions; they raise domain exceptions (tuneforge.errors) which the API maps to
google.rpc.Status in one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneforge import storage
from tuneforge.catalog import Catalog, ResolvedModel, TuningMode, load_catalog
from tuneforge.control import states
from tuneforge.control.db import Store, fetch, get_scoped
from tuneforge.control.filters import TUNING_JOB_FILTERS, filter_conditions
from tuneforge.control.paging import list_page
from tuneforge.control.registry import DEV_LABEL
from tuneforge.control.tables import MetricRow, PipelineJobRow, TuningJobRow, new_id, utcnow
from tuneforge.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, status
from tuneforge.settings import Settings
from tuneforge.train.config import TuningConfig
from tuneforge.train.preflight import check_datasets
from tuneforge.wire import names
from tuneforge.wire.base import dump, timestamp
from tuneforge.wire.tuning import (
    OUTPUT_ONLY,
    JobMetrics,
    ListTuningJobsResponse,
    Metric,
    Progress,
    SupervisedHyperParameters,
    TuningJob,
)
from tuneforge.wire.tuning import TuningMode as WireTuningMode

# Documented regions (SPEC §2.4 for open models, §3.3 for pipelines). Gemini-style jobs document none; the samples
# use us-central1, so tuningJobs accept the union.
OPEN_MODEL_REGIONS = ("us-central1", "europe-west4")
PIPELINE_REGIONS = (
    "us-central1",
    "europe-west4",
    "asia-southeast1",
    "us-west1",
    "europe-west3",
    "europe-west2",
    "asia-northeast1",
    "us-east4",
    "us-west4",
    "northamerica-northeast1",
    "europe-west9",
    "europe-west1",
    "asia-northeast3",
)
_HP = "supervisedTuningSpec.hyperParameters"
# What a TuningJob calls the run configuration's fields (errors of TuningConfig's rules name them so).
CONFIG_NAMES = {
    "learning_rate": f"{_HP}.learningRate",
    "learning_rate_multiplier": f"{_HP}.learningRateMultiplier",
    "adapter_size": f"{_HP}.adapterSize",
    "epochs": f"{_HP}.epochCount",
    "batch_size": f"{_HP}.batchSize",
    "tuning_mode": "supervisedTuningSpec.tuningMode",
    "base_model": "baseModel",
    "custom_base_model": "customBaseModel",
    "output_uri": "outputUri",
    "train_dataset": "supervisedTuningSpec.trainingDatasetUri",
    "validation_dataset": "supervisedTuningSpec.validationDatasetUri",
}


def finish_cancelled(row: TuningJobRow, now: datetime) -> None:
    """The final state of a cancelled job: CANCELLED, ended now, error code 1 (google.rpc CANCELLED)."""
    row.state = states.CANCELLED
    row.end_time = now
    row.error = status("CANCELLED", "CANCELED")


class TuningJobService:
    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings

    # -- create -------------------------------------------------------------------------------------------------
    def check_region(self, location: str, allowed: tuple[str, ...] = PIPELINE_REGIONS) -> None:
        if location not in allowed:
            raise InvalidArgument(f"location {location!r} is not supported; use one of {', '.join(allowed)}")

    def build_config(
        self, project: str, job_id: str, job: TuningJob, catalog: Catalog
    ) -> tuple[TuningConfig, dict[str, Any]]:
        """(the run's config, the stored request echo) from a create request; every problem a 400 naming the field."""
        spec = job.supervised_tuning_spec
        if spec is None:
            raise InvalidArgument('supervisedTuningSpec is required: {"trainingDatasetUri": "gs://…/train.jsonl"}')
        base_model = job.base_model or (job.pre_tuned_model.base_model if job.pre_tuned_model else None)
        if not base_model:
            raise InvalidArgument(
                "baseModel is required: a catalog model id such as meta/llama3_1@llama-3.1-8b or gemini-1.5-flash-002"
            )
        if not spec.training_dataset_uri:
            raise InvalidArgument("supervisedTuningSpec.trainingDatasetUri is required (a gs:// JSONL file)")
        display = job.tuned_model_display_name or f"tuned-{base_model.split('/')[-1]}-{job_id[-6:]}"
        if len(display) > 128:
            raise InvalidArgument(f"tunedModelDisplayName is {len(display)} characters; at most 128 are allowed")
        mode = self._mode(base_model, spec.tuning_mode, catalog)
        output_uri = job.output_uri or f"gs://tuneforge-{project}/tuningJobs/{job_id}"
        uris = {
            "supervisedTuningSpec.trainingDatasetUri": spec.training_dataset_uri,
            "outputUri": output_uri,
            "supervisedTuningSpec.validationDatasetUri": spec.validation_dataset_uri,
            "customBaseModel": job.custom_base_model,
        }
        for field, uri in uris.items():
            if uri:
                storage.check_client_uri(uri, field, self.settings)
        hp = spec.hyper_parameters or SupervisedHyperParameters()
        config = TuningConfig.build(
            CONFIG_NAMES,
            base_model=base_model,
            custom_base_model=job.custom_base_model or None,
            tuning_mode=mode,
            train_dataset=spec.training_dataset_uri,
            validation_dataset=spec.validation_dataset_uri or None,
            output_uri=output_uri,
            epochs=hp.epoch_count,
            learning_rate=hp.learning_rate,
            learning_rate_multiplier=hp.learning_rate_multiplier,
            adapter_size=hp.adapter_size.rank if hp.adapter_size else None,
            batch_size=hp.batch_size,
            dev=self.settings.dev,
        )
        resource = job.model_copy(update=dict.fromkeys(OUTPUT_ONLY))
        resource.tuned_model_display_name, resource.output_uri = display, output_uri
        return config, dump(resource)

    @staticmethod
    def _mode(base_model: str, requested: WireTuningMode | None, catalog: Catalog) -> TuningMode:
        """The tuning mode: as requested, else the model's (Gemini-style jobs tune adapters); one it allows."""
        allowed = catalog.modes(base_model)  # NOT_FOUND with suggestions for an unknown id
        if requested is None or requested == WireTuningMode.TUNING_MODE_UNSPECIFIED:
            return TuningMode.PEFT_ADAPTER if TuningMode.PEFT_ADAPTER in allowed else allowed[0]
        mode = TuningMode.parse(requested.value)
        if mode not in allowed:
            raise InvalidArgument(
                f"supervisedTuningSpec.tuningMode: {base_model} does not support {mode.value}; it "
                f"allows {', '.join(m.value for m in allowed)}"
            )
        return mode

    def preflight(self, config: TuningConfig, catalog: Catalog) -> ResolvedModel:
        """Resolve the model and validate the datasets now, before the job is stored: a bad request never becomes
        a job, and every dataset problem is reported at once. Returns what the job runs on."""
        return check_datasets(config, settings=self.settings, catalog=catalog).source.resolved

    def create(self, project: str, location: str, job: TuningJob) -> TuningJob:
        self.check_region(location)
        job_id = new_id()
        catalog = load_catalog(self.settings)
        config, resource = self.build_config(project, job_id, job, catalog)
        runs_on = self.preflight(config, catalog)
        labels = dict(job.labels)
        if runs_on.stand_in:
            labels[DEV_LABEL] = runs_on.entry.id
            resource["description"] = ((resource.get("description") or "") + "\n" + runs_on.note).strip()
        with self.store.session() as s:
            state = self._admit(s, project)
            now = utcnow()
            row = TuningJobRow(
                id=job_id,
                project=project,
                location=location,
                state=state,
                resource=resource,
                config=config.model_dump(mode="json", exclude_none=True),
                labels=labels,
                display_name=resource["tunedModelDisplayName"],
                base_model=config.base_model,
                create_time=now,
                update_time=now,
                cancel_requested=False,
                attempts=0,
            )
            s.add(row)
        return tuning_job(row)

    def _admit(self, s: Session, project: str) -> str:
        """PENDING, or QUEUED over the project's quota (when queueing is on; else RESOURCE_EXHAUSTED)."""
        active = (
            s.scalar(
                select(func.count())
                .select_from(TuningJobRow)
                .where(TuningJobRow.project == project, TuningJobRow.state.in_(states.ACTIVE))
            )
            or 0
        )
        if active < self.settings.max_running_jobs_per_project:
            return states.PENDING
        if not self.settings.queue_over_quota:
            raise ResourceExhausted(
                f"project {project} already has {active} active tuning job(s); the quota is "
                f"{self.settings.max_running_jobs_per_project} (TUNEFORGE_MAX_RUNNING_JOBS_PER_PROJECT). Wait "
                "for one to finish, cancel one, or turn queueing on (TUNEFORGE_QUEUE_OVER_QUOTA=1)"
            )
        return states.QUEUED

    # -- read ---------------------------------------------------------------------------------------------------
    def row(self, project: str, location: str, job_id: str) -> TuningJobRow:
        return get_scoped(self.store, TuningJobRow, job_id, project, location, "TuningJob", "tuningJobs")

    def get(self, project: str, location: str, job_id: str) -> TuningJob:
        return tuning_job(self.row(project, location, job_id))

    def list(
        self,
        project: str,
        location: str,
        *,
        filter: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListTuningJobsResponse:
        with self.store.session() as s:
            rows, token = list_page(
                s,
                TuningJobRow,
                project,
                location,
                page_size,
                page_token,
                *filter_conditions(filter, TUNING_JOB_FILTERS, TuningJobRow.labels),
            )
        return ListTuningJobsResponse(tuning_jobs=[tuning_job(r) for r in rows], next_page_token=token or None)

    def metrics(self, project: str, location: str, job_id: str, since_step: int = 0) -> JobMetrics:
        """Metrics streamed by the running job, and its progress (a tuneforge extension, for the CLI)."""
        progress = self.row(project, location, job_id).progress or {}
        with self.store.session() as s:
            q = select(MetricRow).where(MetricRow.job_id == job_id, MetricRow.step > since_step)
            rows = list(s.scalars(q.order_by(MetricRow.step, MetricRow.id)))
        return JobMetrics(
            metrics=[Metric(step=r.step, name=r.name, value=r.value) for r in rows],
            progress=Progress(
                step=progress.get("step", 0),
                total_steps=progress.get("totalSteps"),
                tokens_per_second=progress.get("tokensPerSecond"),
            ),
        )

    # -- cancel -------------------------------------------------------------------------------------------------
    def cancel(self, project: str, location: str, job_id: str) -> None:
        self.row(project, location, job_id)
        with self.store.session() as s:
            row = fetch(s, TuningJobRow, job_id, lock=True)
            if row.state in states.FINAL:
                raise FailedPrecondition(
                    f"TuningJob {names.name('tuningJobs', project, location, job_id)} is in state {row.state} "
                    "and cannot be cancelled"
                )
            now = utcnow()
            row.cancel_requested = True
            row.update_time = now
            if row.state in states.CLAIMABLE:  # not started: nothing to stop
                finish_cancelled(row, now)
            elif row.state == states.RUNNING:
                row.state = states.CANCELLING


# -- the resource ------------------------------------------------------------------------------------------------------


def server_fields(row: TuningJobRow | PipelineJobRow, name: str) -> dict[str, Any]:
    """What every job resource shows besides the request: name, state, labels, times and error."""
    out: dict[str, Any] = {
        "name": name,
        "state": row.state,
        "labels": row.labels or {},
        "createTime": timestamp(row.create_time),
        "updateTime": timestamp(row.update_time),
        "startTime": timestamp(row.start_time),
        "endTime": timestamp(row.end_time),
        "error": row.error,
    }
    return out


def tuning_job(row: TuningJobRow) -> TuningJob:
    """The TuningJob resource. ``experiment`` is never set (the SDK breaks on it, contract §10)."""
    return TuningJob.model_validate(
        {
            **row.resource,
            **server_fields(row, names.name("tuningJobs", row.project, row.location, row.id)),
            "tunedModel": row.tuned_model,
            "tuningDataStats": row.data_stats,
        }
    )
