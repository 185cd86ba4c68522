"""The tuning-job service: turns Vertex TuningJob requests into engine configs, enforces quota, moves states.

Routers call these functions; they raise domain exceptions (tuneforge.errors) which the API maps to
google.rpc.Status in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneforge import storage
from tuneforge.catalog import Catalog, ResolvedModel, TuningMode, load_catalog
from tuneforge.control import events, states
from tuneforge.control.access import BucketPolicy, default_output_bucket
from tuneforge.control.db import Store, fetch, get_scoped, lock_project
from tuneforge.control.filters import TUNING_JOB_FILTERS, filter_conditions
from tuneforge.control.paging import list_page
from tuneforge.control.registry import DEV_LABEL
from tuneforge.control.tables import MetricRow, ModelRow, PipelineJobRow, TuningJobRow, new_id, release, utcnow
from tuneforge.data.distill import DistillExample
from tuneforge.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, status
from tuneforge.settings import Settings
from tuneforge.train.config import TuningConfig
from tuneforge.train.preflight import check_datasets, check_distillation
from tuneforge.wire import names
from tuneforge.wire.base import dump, timestamp, whole_number
from tuneforge.wire.events import ListJobEventsResponse
from tuneforge.wire.locations import ListLocationsResponse, Location
from tuneforge.wire.tuning import (
    OUTPUT_ONLY,
    DistillationSpec,
    JobMetrics,
    ListTuningJobsResponse,
    Metric,
    PreferenceOptimizationSpec,
    Progress,
    SupervisedTuningSpec,
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
OPEN_MODEL_LABEL = "tuneforge-open-model-tuning"


def locations(project: str) -> ListLocationsResponse:
    """The regions jobs are accepted in (the pipelines' list, the union), the open-model documents' ones labelled."""
    return ListLocationsResponse(
        locations=[
            Location(
                name=f"projects/{project}/locations/{region}",
                location_id=region,
                display_name=region,
                labels={OPEN_MODEL_LABEL: "true"} if region in OPEN_MODEL_REGIONS else {},
            )
            for region in PIPELINE_REGIONS
        ]
    )


# What each method's spec is called on the wire, and where its training data is.
SPECS = {
    "supervised": ("supervisedTuningSpec", "trainingDatasetUri"),
    "preference": ("preferenceOptimizationSpec", "trainingDatasetUri"),
    "distillation": ("distillationSpec", "promptDatasetUri"),
}
METHOD_WORDS = {
    "supervised": "supervised tuning (SUPERVISED_FINE_TUNING)",
    "preference": "preference tuning (PREFERENCE_TUNING)",
    "distillation": "distillation (DISTILLATION)",
}
# reinforcementTuningSpec: google-genai sends evaluate_interval and checkpoint_interval there for every method.
INTERVALS = {"evaluateInterval": "eval_steps", "checkpointInterval": "save_steps"}


def config_names(method: str) -> dict[str, str]:
    """What a TuningJob of ``method`` calls the run configuration's fields (TuningConfig's errors name them so)."""
    spec = SPECS[method][0]
    hp = f"{spec}.hyperParameters"
    return {
        "learning_rate": f"{hp}.learningRate",
        "learning_rate_multiplier": f"{hp}.learningRateMultiplier",
        "adapter_size": f"{hp}.adapterSize",
        "epochs": f"{hp}.epochCount",
        "batch_size": f"{hp}.batchSize",
        "beta": f"{hp}.beta",
        "rationale_weight": f"{hp}.sftLossWeightMultiplier",
        "tune_vision_tower": f"{hp}.tuneVisionTower",
        "tune_experts": f"{hp}.tuneExperts",
        "teacher": f"{spec}.baseTeacherModel",
        "tuning_mode": f"{spec}.tuningMode",
        "base_model": "baseModel",
        "custom_base_model": "customBaseModel",
        "output_uri": "outputUri",
        "train_dataset": f"{spec}.{SPECS[method][1]}",
        "validation_dataset": f"{spec}.validationDatasetUri",
        "eval_steps": "reinforcementTuningSpec.hyperParameters.evaluateInterval",
        "save_steps": "reinforcementTuningSpec.hyperParameters.checkpointInterval",
    }


def _set_fields(value: Any, path: str) -> list[str]:
    """The JSON paths of every value set in ``value`` (a dumped wire object)."""
    if isinstance(value, dict) and value:
        return [p for key, v in value.items() for p in _set_fields(v, f"{path}.{key}")]
    return [] if value in (None, {}, []) else [path]


def tuning_method(job: TuningJob) -> str:
    """supervised, preference or distillation: the one spec that names training data. A spec of another method
    with values in it (google-genai sends every config field it is given) is refused, naming them."""
    given = {
        method: dump(spec)
        for method, spec in (
            ("supervised", job.supervised_tuning_spec),
            ("preference", job.preference_optimization_spec),
            ("distillation", job.distillation_spec),
        )
        if spec is not None
    }
    with_data = [m for m, spec in given.items() if spec.get(SPECS[m][1]) or spec.get("trainingDatasetUri")]
    if not with_data:
        raise InvalidArgument(
            "no training data: give supervisedTuningSpec.trainingDatasetUri (supervised tuning), "
            "preferenceOptimizationSpec.trainingDatasetUri (preference tuning) or distillationSpec.promptDatasetUri "
            "(distillation), a gs:// JSONL file"
        )
    if len(with_data) > 1:
        both = " and ".join(SPECS[m][0] for m in with_data)
        raise InvalidArgument(f"a tuning job has one method; {both} both name training data. Keep one")
    method = with_data[0]
    for other, spec in given.items():
        stray = _set_fields(spec, SPECS[other][0]) if other != method else []
        if stray:
            raise InvalidArgument(
                f"{', '.join(stray)} apply to {METHOD_WORDS[other]}, and this job is {METHOD_WORDS[method]}; "
                "remove them (or tune with that method)"
            )
    return method


def intervals(job: TuningJob) -> dict[str, int]:
    """eval_steps and save_steps from reinforcementTuningSpec.hyperParameters; any other reinforcement tuning field
    is refused (tuneforge does not do reinforcement tuning)."""
    spec = job.reinforcement_tuning_spec or {}
    hp = spec.get("hyperParameters", spec.get("hyper_parameters")) or {}
    other = [f"reinforcementTuningSpec.{k}" for k in spec if k not in ("hyperParameters", "hyper_parameters")]
    other += (
        [f"reinforcementTuningSpec.hyperParameters.{k}" for k in hp if k not in INTERVALS]
        if isinstance(hp, dict)
        else []
    )
    if other or not isinstance(hp, dict):
        raise InvalidArgument(
            f"reinforcement tuning is not supported by tuneforge ({', '.join(other) or 'reinforcementTuningSpec'}); "
            "use supervised, preference or distillation tuning. Only hyperParameters.evaluateInterval and "
            ".checkpointInterval are read from reinforcementTuningSpec"
        )
    out = {}
    for key, name in INTERVALS.items():
        if hp.get(key) is not None:
            value = whole_number(hp[key])
            if value is None or value < 1:
                raise InvalidArgument(
                    f"reinforcementTuningSpec.hyperParameters.{key} must be a positive whole number of steps "
                    f"(got {hp[key]!r})"
                )
            out[name] = value
    return out


Spec = SupervisedTuningSpec | PreferenceOptimizationSpec | DistillationSpec
# TuningConfig's field for each hyper-parameter a method's spec may have besides epochs, multiplier and adapter size.
OPTIONAL_HYPER_PARAMETERS = {
    "learning_rate": "learning_rate",
    "batch_size": "batch_size",
    "beta": "beta",
    "rationale_weight": "sft_loss_weight_multiplier",
    "tune_vision_tower": "tune_vision_tower",
    "tune_experts": "tune_experts",
}


def _spec(job: TuningJob, method: str) -> Spec:
    spec = {
        "supervised": job.supervised_tuning_spec,
        "preference": job.preference_optimization_spec,
        "distillation": job.distillation_spec,
    }[method]
    assert spec is not None  # tuning_method found its training data
    return spec


def _training_uri(spec: Spec) -> str:
    """The training data: distillation's prompt dataset (or its deprecated trainingDatasetUri)."""
    if isinstance(spec, DistillationSpec):
        if spec.prompt_dataset_uri and spec.training_dataset_uri:
            raise InvalidArgument(
                "give distillationSpec.promptDatasetUri or the deprecated .trainingDatasetUri, not both"
            )
        uri = spec.prompt_dataset_uri or spec.training_dataset_uri
    else:
        uri = spec.training_dataset_uri
    assert uri is not None  # tuning_method found it
    return uri


def _hyper_parameters(spec: Spec) -> dict[str, Any]:
    """TuningConfig's fields from a spec's hyperParameters (the methods share their names)."""
    hp = spec.hyper_parameters
    if hp is None:
        return {}
    out: dict[str, Any] = dict(
        epochs=hp.epoch_count,
        learning_rate_multiplier=hp.learning_rate_multiplier,
        adapter_size=hp.adapter_size.rank if hp.adapter_size else None,
    )
    for name, wire in OPTIONAL_HYPER_PARAMETERS.items():
        if getattr(hp, wire, None) is not None:  # not every method has each; unset keeps the config's default
            out[name] = getattr(hp, wire)
    return out


def refuse_unlabelled_for_stand_in_teacher(
    teacher: str, stand_in: str, examples: list[DistillExample], field: str
) -> None:
    """A dev-mode teacher is a tiny stand-in: it explains a given answer, but cannot label a prompt (its text never
    ends "… So the answer is X."), so a job with unlabelled prompts could only fail in its teacher step. Refuse it
    when it is created, where the SDK call reports it, instead."""
    unlabelled = [e.line for e in examples if e.output_text is None]
    if not unlabelled:
        return
    shown = ", ".join(map(str, unlabelled[:5])) + (" …" if len(unlabelled) > 5 else "")
    raise FailedPrecondition(
        f"{field} {teacher!r} runs on the dev-mode stand-in {stand_in}, which cannot label unlabelled "
        f"prompts ({len(unlabelled)} of {len(examples)}: lines {shown}); the job could only fail. Give every line "
        "its answer (output_text, or a final model turn) so the teacher only explains it, or configure real weights "
        f"for {teacher} (models.yaml) or use a teacher with weights"
    )


def finish_cancelled(row: TuningJobRow, now: datetime) -> None:
    """The final state of a cancelled job: CANCELLED, ended now, error code 1 (google.rpc CANCELLED)."""
    row.state = states.CANCELLED
    row.end_time = now
    row.error = status("CANCELLED", "CANCELED")


def finish_stopped(row: TuningJobRow, now: datetime) -> str | None:
    """Settle a job whose run stopped because it was asked to (the caller holds the row): CANCELLED when a cancel
    was asked (it wins over a pause), PAUSED when a pause was; what happened, for its event, or None when neither
    was asked. A pause is not a failed attempt, so it gives its attempt back (``max_attempts`` counts crashes)."""
    row.update_time = now
    if row.cancel_requested:
        finish_cancelled(row, now)
        row.pause_requested = False
        return "Cancelled"
    if row.pause_requested:
        row.pause_requested = False
        release(row, states.PAUSED)
        return "Paused"
    return None


class TuningJobService:
    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        self.buckets = BucketPolicy(store, settings)

    # -- create -------------------------------------------------------------------------------------------------
    def check_region(self, location: str, allowed: tuple[str, ...] = PIPELINE_REGIONS) -> None:
        if location not in allowed:
            raise InvalidArgument(f"location {location!r} is not supported; use one of {', '.join(allowed)}")

    def build_config(
        self, project: str, job_id: str, job: TuningJob, catalog: Catalog, *, claim: bool = True
    ) -> tuple[TuningConfig, dict[str, Any]]:
        """(the run's config, the stored request echo) from a create request; every problem a 400 naming the field.
        Every URI must be in a bucket the project may use (``claim=False``: a preview records no new bucket owner)."""
        steps = intervals(job)  # first: a reinforcement tuning request is refused as what it is
        method = tuning_method(job)
        spec_name, data_field = SPECS[method]
        spec = _spec(job, method)
        if spec.evaluation_config:
            raise InvalidArgument(
                f"{spec_name}.evaluationConfig (Gen AI evaluation during tuning) is not supported by tuneforge; remove "
                f"it. Validation loss and accuracy are computed from {spec_name}.validationDatasetUri"
            )
        teacher: dict[str, Any] = {}
        if isinstance(spec, DistillationSpec):
            job, teacher = self._distillation(project, job, spec)
        base_model, custom_base = self._starting_point(project, job)
        display = job.tuned_model_display_name or f"tuned-{base_model.split('/')[-1]}-{job_id[-6:]}"
        if len(display) > 128:
            raise InvalidArgument(f"tunedModelDisplayName is {len(display)} characters; at most 128 are allowed")
        mode = self._mode(base_model, spec.tuning_mode, catalog, spec_name)
        output_uri = job.output_uri or f"gs://{default_output_bucket(project)}/tuningJobs/{job_id}"
        train_uri = _training_uri(spec)
        uris = {
            f"{spec_name}.{data_field}": train_uri,
            "outputUri": output_uri,
            f"{spec_name}.validationDatasetUri": spec.validation_dataset_uri,
            "customBaseModel": job.custom_base_model,
        }
        access = self.buckets.for_project(project, claim=claim)
        for field, uri in uris.items():
            if uri:
                storage.check_client_uri(uri, field, self.settings, access=access, write=field == "outputUri")
        config = TuningConfig.build(
            config_names(method),
            method=method,
            base_model=base_model,
            custom_base_model=custom_base,
            tuning_mode=mode,
            train_dataset=train_uri,
            validation_dataset=spec.validation_dataset_uri or None,
            output_uri=output_uri,
            dev=self.settings.dev,
            **_hyper_parameters(spec),
            **steps,
            **teacher,
        )
        resource = job.model_copy(update=dict.fromkeys(OUTPUT_ONLY))
        resource.tuned_model_display_name, resource.output_uri = display, output_uri
        return config, dump(resource)

    def _distillation(self, project: str, job: TuningJob, spec: DistillationSpec) -> tuple[TuningJob, dict[str, Any]]:
        """The job with its student as baseModel, and the teacher: a catalog id (baseTeacherModel) or a tuned model
        of this project (tunedTeacherModelSource, checked here)."""
        if spec.student_model:
            if job.base_model and job.base_model != spec.student_model:
                raise InvalidArgument(
                    f"distillationSpec.studentModel ({spec.student_model!r}) and baseModel ({job.base_model!r}) "
                    "differ; give the student as baseModel (studentModel is deprecated)"
                )
            job = job.model_copy(update={"base_model": spec.student_model})
        base, tuned = spec.base_teacher_model, spec.tuned_teacher_model_source
        if bool(base) == bool(tuned):
            raise InvalidArgument(
                "distillation needs one teacher: distillationSpec.baseTeacherModel (a catalog id such as "
                "gemini-2.5-pro) or distillationSpec.tunedTeacherModelSource (projects/P/locations/L/models/ID)"
                + ("; give one, not both" if base else "")
            )
        if base:
            return job, {"teacher": base}  # resolved with the prompts at hand (check_teacher)
        parsed = names.parse(tuned or "", ("models",))
        if parsed is None or parsed.project != project:
            raise InvalidArgument(
                f"distillationSpec.tunedTeacherModelSource must be a model of this project: projects/{project}/"
                f"locations/LOCATION/models/ID (got {tuned!r})"
            )
        get_scoped(self.store, ModelRow, parsed.id, parsed.project, parsed.location, "Model", "models")
        return job, {"teacher": tuned}

    def _starting_point(self, project: str, job: TuningJob) -> tuple[str, str | None]:
        """(base model id, custom base folder): baseModel and customBaseModel, or a tuned model's output
        (preTunedModel: continued tuning; its base model is the tuned model's)."""
        pre = job.pre_tuned_model
        if pre is None or not pre.tuned_model_name:
            base_model = job.base_model or (pre.base_model if pre else None)
            if not base_model:
                raise InvalidArgument(
                    "baseModel is required: a catalog model id such as meta/llama3_1@llama-3.1-8b or gemini-2.5-flash "
                    "(or preTunedModel.tunedModelName to continue tuning a tuned model)"
                )
            return base_model, job.custom_base_model or None
        if job.custom_base_model:
            raise InvalidArgument("give preTunedModel or customBaseModel, not both: each names the starting weights")
        parsed = names.parse(pre.tuned_model_name, ("models",))
        if parsed is None or parsed.project != project:
            raise InvalidArgument(
                f"preTunedModel.tunedModelName must be a model of this project: projects/{project}/locations/"
                f"LOCATION/models/ID (got {pre.tuned_model_name!r})"
            )
        row = get_scoped(self.store, ModelRow, parsed.id, parsed.project, parsed.location, "Model", "models")
        checkpoints = self._checkpoint_ids(row)
        if pre.checkpoint_id and pre.checkpoint_id not in checkpoints:
            raise InvalidArgument(
                f"preTunedModel.checkpointId {pre.checkpoint_id!r} is not a checkpoint of {pre.tuned_model_name}; it "
                f"has {', '.join(checkpoints)} (leave it out for the final model)"
            )
        if job.base_model and job.base_model != row.base_model:
            raise InvalidArgument(
                f"baseModel {job.base_model!r} differs from the base model of {pre.tuned_model_name} "
                f"({row.base_model!r}); leave baseModel out when continuing from a tuned model"
            )
        return row.base_model, row.artifact_uri

    def _checkpoint_ids(self, row: ModelRow) -> list[str]:
        """The checkpoint ids a tuned model's job lists (the exported final model: one)."""
        with self.store.session() as s:
            job = s.get(TuningJobRow, row.job_id) if row.job_id else None
            tuned = (job.tuned_model or {}) if job is not None else {}
        return [str(c["checkpointId"]) for c in tuned.get("checkpoints", [])] or ["1"]

    @staticmethod
    def _mode(base_model: str, requested: WireTuningMode | None, catalog: Catalog, spec_name: str) -> TuningMode:
        """The tuning mode: as requested, else the model's (Gemini-style jobs tune adapters); one it allows."""
        allowed = catalog.modes(base_model)  # NOT_FOUND with suggestions for an unknown id
        if requested is None or requested == WireTuningMode.TUNING_MODE_UNSPECIFIED:
            return TuningMode.PEFT_ADAPTER if TuningMode.PEFT_ADAPTER in allowed else allowed[0]
        mode = TuningMode.parse(requested.value)
        if mode not in allowed:
            raise InvalidArgument(
                f"{spec_name}.tuningMode: {base_model} does not support {mode.value}; it "
                f"allows {', '.join(m.value for m in allowed)}"
            )
        return mode

    def preflight(self, project: str, config: TuningConfig, catalog: Catalog) -> tuple[ResolvedModel, str]:
        """Resolve the model and validate the datasets now, before the job is stored: a bad request never becomes
        a job, and every dataset problem is reported at once. Returns what the job runs on, and what was validated
        (the job's first event)."""
        if config.method == "distillation":
            source, examples = check_distillation(config, settings=self.settings, catalog=catalog)
            self.check_teacher(config.teacher, examples, catalog)
            return source.resolved, f"Validated the data: {config.train_dataset}: {len(examples):,} prompts"
        access = self.buckets.for_project(project)
        checked = check_datasets(config, settings=self.settings, catalog=catalog, access=access)
        return checked.source.resolved, checked.summary

    def check_teacher(self, teacher: str | None, examples: list[DistillExample], catalog: Catalog) -> None:
        """A catalog teacher (baseTeacherModel): NOT_FOUND with suggestions, or its weights not configured; in dev
        mode its stand-in needs every prompt's answer. (A tuned model as teacher was checked by _distillation.)"""
        if teacher is None or teacher.startswith("projects/"):
            return
        resolved = catalog.resolve(teacher, settings=self.settings)
        if resolved.stand_in:
            field = "distillationSpec.baseTeacherModel"
            refuse_unlabelled_for_stand_in_teacher(teacher, resolved.entry.id, examples, field)

    def create(
        self,
        project: str,
        location: str,
        job: TuningJob,
        *,
        run: dict[str, Any] | None = None,
        attach: Callable[[Session, TuningJobRow], None] | None = None,
    ) -> TuningJob:
        """Validate and store a job. Another front door (the OpenAI API) passes ``run``: run-configuration fields
        the TuningJob has no field for (the seed), and ``attach``: its own record, added in the same transaction."""
        self.check_region(location)
        job_id = new_id()
        catalog = load_catalog(self.settings)
        config, resource = self.build_config(project, job_id, job, catalog)
        if run:
            config = TuningConfig.build({}, **{**config.model_dump(exclude_none=True), **run})
        runs_on, validated = self.preflight(project, config, catalog)
        labels = dict(job.labels)
        if runs_on.stand_in:
            labels[DEV_LABEL] = runs_on.entry.id
        if runs_on.note and (runs_on.stand_in or self.settings.dev):  # what a dev-mode id runs on, said on the job
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
            if attach is not None:
                s.flush()  # the job row first: an attached record refers to it
                attach(s, row)
            events.record(s, events.TUNING, job_id, validated)
            events.record(s, events.TUNING, job_id, f"Created ({state.removeprefix('JOB_STATE_').lower()})")
        return tuning_job(row)

    def _admit(self, s: Session, project: str) -> str:
        """PENDING, or QUEUED over the project's quota (when queueing is on; else RESOURCE_EXHAUSTED); concurrent
        admissions of one project take turns (its lock row), so the count is exact."""
        lock_project(s, project)
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
        with self.store.session() as s:
            q = select(MetricRow).where(MetricRow.job_id == job_id, MetricRow.step > since_step)
            rows = list(s.scalars(q.order_by(MetricRow.step, MetricRow.id)))
        # Progress is read after the metrics, so it is never older than the last step listed (a step's metrics and
        # its speed are written together; read first, a step written in between came without its speed). The row
        # read is also the 404 for a job that is not there (or another project's): nothing listed is answered.
        progress = self.row(project, location, job_id).progress or {}
        return JobMetrics(
            metrics=[Metric(step=r.step, name=r.name, value=r.value) for r in rows],
            progress=Progress(
                step=progress.get("step", 0),
                total_steps=progress.get("totalSteps"),
                tokens_per_second=progress.get("tokensPerSecond"),
                train_tokens=progress.get("trainTokens"),
                train_seconds=progress.get("trainSeconds"),
                plan=progress.get("resolved"),
            ),
        )

    def events(self, project: str, location: str, job_id: str) -> ListJobEventsResponse:
        self.row(project, location, job_id)
        return events.listed(self.store, events.TUNING, job_id)

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
            if row.state in (*states.CLAIMABLE, states.PAUSED):  # not running: nothing to stop
                was = "while paused" if row.state == states.PAUSED else "before it started"
                finish_cancelled(row, now)
                events.record(s, events.TUNING, job_id, f"Cancelled {was}")
            elif row.state == states.RUNNING:
                row.state = states.CANCELLING
                events.record(s, events.TUNING, job_id, "Cancel requested: the run stops at its next step")

    def pause(self, project: str, location: str, job_id: str) -> None:
        """A running job stops at its next step, saving a checkpoint, then is PAUSED; a job not yet started is
        PAUSED at once. Only a job that is running or waiting to run can be paused."""
        self.row(project, location, job_id)
        with self.store.session() as s:
            row = fetch(s, TuningJobRow, job_id, lock=True)
            if row.state not in (*states.CLAIMABLE, states.RUNNING) or row.pause_requested:
                raise FailedPrecondition(self._cannot(row, "paused", "only a queued or running job"))
            now = utcnow()
            row.update_time = now
            if row.state == states.RUNNING:
                row.pause_requested = True
                message = "Pause requested: the run saves a checkpoint at its next step and stops"
            else:
                row.state = states.PAUSED
                message = "Paused before it started"
            events.record(s, events.TUNING, job_id, message)

    def resume(self, project: str, location: str, job_id: str) -> None:
        """A paused job goes back in the queue (admitted as a new one is: PENDING, or QUEUED over the project's
        quota) and continues from its last checkpoint; one still pausing simply keeps running."""
        self.row(project, location, job_id)
        with self.store.session() as s:
            row = fetch(s, TuningJobRow, job_id, lock=True)
            now = utcnow()
            if row.state == states.RUNNING and row.pause_requested:
                row.pause_requested, row.update_time = False, now
                events.record(s, events.TUNING, job_id, "Resumed before the pause took effect: the run goes on")
                return
            if row.state != states.PAUSED:
                raise FailedPrecondition(self._cannot(row, "resumed", "only a paused job"))
            row.state, row.update_time = self._admit(s, project), now
            step = (row.progress or {}).get("step")
            at = f"from step {step}" if step else "from the start"
            events.record(s, events.TUNING, job_id, f"Resumed: back in the queue, continues {at}")

    @staticmethod
    def _cannot(row: TuningJobRow, what: str, only: str) -> str:
        shown = f"{row.state} (pause requested)" if row.pause_requested else row.state
        name = names.name("tuningJobs", row.project, row.location, row.id)
        return f"TuningJob {name} is in state {shown} and cannot be {what}; {only} can"


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
