"""The tuning-job service: turns Vertex TuningJob requests into engine configs, enforces quota, moves states.

Routers call these functions; they raise domain exceptions (tuneforge.errors) which the API maps to
google.rpc.Status in one place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tuneforge import storage
from tuneforge.catalog import TuningMode, load_catalog
from tuneforge.errors import (
    DatasetInvalid,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
)
from tuneforge.control import states
from tuneforge.control.db import Store, get_scoped
from tuneforge.control.paging import page
from tuneforge.control.filters import TUNING_JOB_FILTERS, filter_conditions
from tuneforge.control.registry import DEV_LABEL
from tuneforge.control.tables import MetricRow, TuningJobRow, new_id, utcnow
from tuneforge.data import Report, prepare_dataset
from tuneforge.settings import Settings
from tuneforge.train.config import TuningConfig
from tuneforge.train.loading import chat_encoder, limits_for, resolve_source
from tuneforge.wire import names
from tuneforge.wire.base import timestamp

# Documented regions (SPEC §2.4 for open models, §3.3 for pipelines). Gemini-style jobs document none; the samples
# use us-central1, so tuningJobs accept the union.
OPEN_MODEL_REGIONS = ("us-central1", "europe-west4")
PIPELINE_REGIONS = ("us-central1", "europe-west4", "asia-southeast1", "us-west1", "europe-west3", "europe-west2",
                    "asia-northeast1", "us-east4", "us-west4", "northamerica-northeast1", "europe-west9",
                    "europe-west1", "asia-northeast3")
ADAPTER_SIZE_ENUM = {0: None, 1: 1, 2: 4, 3: 8, 4: 16, 5: 32, 6: 2}
ADAPTER_SIZE_NAMES = {"ADAPTER_SIZE_ONE": 1, "ADAPTER_SIZE_TWO": 2, "ADAPTER_SIZE_FOUR": 4, "ADAPTER_SIZE_EIGHT": 8,
                      "ADAPTER_SIZE_SIXTEEN": 16, "ADAPTER_SIZE_THIRTY_TWO": 32, "ADAPTER_SIZE_UNSPECIFIED": None}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def normalize_keys(value: Any, path: str = "") -> Any:
    """snake_case -> camelCase, recursively, as proto-JSON accepts both; the same field twice is an error (G2).

    ``labels`` keep their keys as given (they are user data, not field names).
    """
    if isinstance(value, list):
        return [normalize_keys(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:  # proto-JSON: null means "not set"
            continue
        camel = _camel(key)
        if camel in out:
            raise InvalidArgument(f"{path + '.' if path else ''}{camel} is given twice (as {key} and {camel}); give it once")
        out[camel] = item if camel == "labels" else normalize_keys(item, f"{path + '.' if path else ''}{camel}")
    return out


def _number(value: Any, field: str, what: str) -> float:
    """A JSON number or a numeric string (int64 fields arrive as strings, Struct numbers as doubles); not a bool."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{field} must be {what} (got {value!r})") from None


def _int(value: Any, field: str, *, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    number = _number(value, field, "an integer")
    if not number.is_integer():
        raise InvalidArgument(f"{field} must be an integer (got {value!r})")
    if minimum is not None and number < minimum:
        raise InvalidArgument(f"{field} must be at least {minimum} (got {int(number)})")
    return int(number)


def _float(value: Any, field: str) -> float | None:
    if value is None:
        return None
    number = _number(value, field, "a number")
    if not number > 0:
        raise InvalidArgument(f"{field} must be greater than 0 (got {value!r})")
    return number


def _adapter_size(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value in ADAPTER_SIZE_NAMES:
        return ADAPTER_SIZE_NAMES[value]
    number = _int(value, "supervisedTuningSpec.hyperParameters.adapterSize")
    if number in ADAPTER_SIZE_ENUM:
        return ADAPTER_SIZE_ENUM[number]
    raise InvalidArgument(
        "supervisedTuningSpec.hyperParameters.adapterSize must be one of ADAPTER_SIZE_ONE, _TWO, _FOUR, _EIGHT, "
        f"_SIXTEEN, _THIRTY_TWO (or their enum numbers 1-6); got {value!r}"
    )


def _tuning_mode(value: Any) -> TuningMode | None:
    if value is None or value in (0, "0", "TUNING_MODE_UNSPECIFIED"):
        return None
    try:
        return TuningMode.parse(value)
    except InvalidArgument:
        raise InvalidArgument(
            f"supervisedTuningSpec.tuningMode must be TUNING_MODE_FULL (1) or TUNING_MODE_PEFT_ADAPTER (2); got {value!r}"
        ) from None


def finish_cancelled(row: TuningJobRow, now) -> None:
    """The final state of a cancelled job: CANCELLED, ended now, error code 1 (google.rpc CANCELLED)."""
    row.state = states.CANCELLED
    row.end_time = now
    row.error = {"code": 1, "message": "CANCELED"}


class TuningJobService:
    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings

    # -- create -------------------------------------------------------------------------------------------------
    def check_region(self, location: str, allowed: tuple[str, ...] = PIPELINE_REGIONS) -> None:
        if location not in allowed:
            raise InvalidArgument(f"location {location!r} is not supported; use one of {', '.join(allowed)}")

    def build_config(self, project: str, job_id: str, body: dict, catalog) -> tuple[dict, dict, dict]:
        """(TuningConfig fields, resource echo, labels) from a create body; every problem is a 400 naming the field."""
        body = normalize_keys(body)
        known = {"tunedModelDisplayName", "baseModel", "customBaseModel", "supervisedTuningSpec", "labels",
                 "description", "outputUri", "serviceAccount", "encryptionSpec", "preTunedModel", "name", "state",
                 "experiment", "pipelineJob"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise InvalidArgument(f"unknown field(s) {', '.join(unknown)} in TuningJob; see the TuningJob resource")
        spec = body.get("supervisedTuningSpec")
        if not isinstance(spec, dict):
            raise InvalidArgument("supervisedTuningSpec is required: {\"trainingDatasetUri\": \"gs://…/train.jsonl\"}")
        base_model = body.get("baseModel") or (body.get("preTunedModel") or {}).get("baseModel")
        if not base_model or not isinstance(base_model, str):
            raise InvalidArgument("baseModel is required: a catalog model id such as meta/llama3_1@llama-3.1-8b or gemini-1.5-flash-002")
        train_uri = spec.get("trainingDatasetUri")
        if not isinstance(train_uri, str) or not train_uri:
            raise InvalidArgument("supervisedTuningSpec.trainingDatasetUri is required (a gs:// JSONL file)")
        hp = spec.get("hyperParameters") or {}
        if not isinstance(hp, dict):
            raise InvalidArgument("supervisedTuningSpec.hyperParameters must be an object")
        unknown_hp = sorted(set(hp) - {"epochCount", "learningRate", "learningRateMultiplier", "adapterSize", "batchSize"})
        if unknown_hp:
            raise InvalidArgument(f"unknown field(s) {', '.join(unknown_hp)} in supervisedTuningSpec.hyperParameters")
        if hp.get("learningRate") is not None and hp.get("learningRateMultiplier") is not None:
            raise InvalidArgument("give supervisedTuningSpec.hyperParameters.learningRate or learningRateMultiplier, not both")
        labels = body.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise InvalidArgument("labels must be an object of string keys and string values")
        for field in ("tunedModelDisplayName", "description", "outputUri", "customBaseModel", "serviceAccount"):
            if body.get(field) is not None and not isinstance(body[field], str):
                raise InvalidArgument(f"{field} must be a string (got {body[field]!r})")
        for field in ("validationDatasetUri",):
            if spec.get(field) is not None and not isinstance(spec[field], str):
                raise InvalidArgument(f"supervisedTuningSpec.{field} must be a string (got {spec[field]!r})")
        display = body.get("tunedModelDisplayName") or f"tuned-{base_model.split('/')[-1]}-{job_id[-6:]}"
        if len(display) > 128:
            raise InvalidArgument(f"tunedModelDisplayName is {len(display)} characters; at most 128 are allowed")

        mode = _tuning_mode(spec.get("tuningMode"))
        entry_modes = None
        if base_model in catalog.aliases:
            entry_modes = catalog.aliases[base_model].modes
        elif base_model in catalog.models:
            entry_modes = list(catalog.models[base_model].modes)
        else:
            catalog.resolve(base_model)  # raises ModelNotFound with suggestions
        if mode is None:  # Gemini-style jobs tune adapters; open models default to their first documented mode
            mode = TuningMode.PEFT_ADAPTER if TuningMode.PEFT_ADAPTER in entry_modes else entry_modes[0]
        if mode not in entry_modes:
            allowed = ", ".join(m.value for m in entry_modes)
            raise InvalidArgument(f"supervisedTuningSpec.tuningMode: {base_model} does not support {mode.value}; it allows {allowed}")
        adapter = _adapter_size(hp.get("adapterSize"))
        if adapter is not None and mode == TuningMode.FULL:
            raise InvalidArgument("supervisedTuningSpec.hyperParameters.adapterSize applies to PEFT_ADAPTER tuning only")
        output_uri = body.get("outputUri") or f"gs://tuneforge-{project}/tuningJobs/{job_id}"
        uris = {"supervisedTuningSpec.trainingDatasetUri": train_uri, "outputUri": output_uri,
                "supervisedTuningSpec.validationDatasetUri": spec.get("validationDatasetUri"),
                "customBaseModel": body.get("customBaseModel")}
        for field, uri in uris.items():
            if uri:
                try:
                    storage.check_client_uri(uri, field, self.settings)
                except storage.StorageError as exc:
                    raise InvalidArgument(str(exc)) from None
        config = dict(
            base_model=base_model, custom_base_model=body.get("customBaseModel") or None, tuning_mode=mode.value,
            train_dataset=train_uri, validation_dataset=spec.get("validationDatasetUri") or None, output_uri=output_uri,
            epochs=_int(hp.get("epochCount"), "supervisedTuningSpec.hyperParameters.epochCount", minimum=1),
            learning_rate=_float(hp.get("learningRate"), "supervisedTuningSpec.hyperParameters.learningRate"),
            learning_rate_multiplier=_float(hp.get("learningRateMultiplier"), "supervisedTuningSpec.hyperParameters.learningRateMultiplier"),
            adapter_size=adapter,
            batch_size=_int(hp.get("batchSize"), "supervisedTuningSpec.hyperParameters.batchSize", minimum=1),
            dev=self.settings.dev,
        )
        try:
            TuningConfig(**config)
        except ValueError as exc:
            raise InvalidArgument(f"invalid tuning request: {exc}") from exc
        resource = {k: v for k, v in body.items() if k not in ("name", "state", "experiment")}
        resource["tunedModelDisplayName"] = display
        resource["outputUri"] = output_uri
        return config, resource, dict(labels)

    def preflight(self, config: dict, catalog) -> dict:
        """Resolve the model and validate the datasets now, before the job is stored: a bad request never
        becomes a job, and every dataset problem is reported at once. Returns what the job should say about
        the model it runs on."""
        source = resolve_source(catalog, config["base_model"], config["custom_base_model"], dev=self.settings.dev,
                                settings=self.settings)
        limits = limits_for(source.resolved.entry, config["base_model"], TuningMode(config["tuning_mode"]))
        encoder = chat_encoder(source)
        reports = [prepare_dataset(uri, limits, encoder, settings=self.settings).report
                   for uri in (config["train_dataset"], config["validation_dataset"]) if uri]
        combined = Report(source="datasets", problems=[p for r in reports for p in r.problems])
        if combined.errors:
            raise DatasetInvalid(f"{len(combined.errors)} error(s) in the dataset(s); fix every line listed", combined)
        return {"stand_in": source.resolved.stand_in, "note": source.resolved.note, "runs_on": source.resolved.entry.id}

    def create(self, project: str, location: str, body: dict) -> TuningJobRow:
        self.check_region(location)
        job_id = new_id()
        catalog = load_catalog(self.settings)
        config, resource, labels = self.build_config(project, job_id, body, catalog)
        model_info = self.preflight(config, catalog)
        if model_info["stand_in"]:
            labels[DEV_LABEL] = model_info["runs_on"]
            note = model_info["note"]
            resource["description"] = ((resource.get("description") or "") + "\n" + note).strip()
        with self.store.session() as s:
            active = s.scalar(select(func.count()).select_from(TuningJobRow).where(
                TuningJobRow.project == project, TuningJobRow.state.in_(states.ACTIVE)))
            state = states.PENDING
            if active >= self.settings.max_running_jobs_per_project:
                if not self.settings.queue_over_quota:
                    raise ResourceExhausted(
                        f"project {project} already has {active} active tuning job(s); the quota is "
                        f"{self.settings.max_running_jobs_per_project} (TUNEFORGE_MAX_RUNNING_JOBS_PER_PROJECT). Wait "
                        "for one to finish, cancel one, or turn queueing on (TUNEFORGE_QUEUE_OVER_QUOTA=1)"
                    )
                state = states.QUEUED
            now = utcnow()
            row = TuningJobRow(
                id=job_id, project=project, location=location, state=state, resource=resource, config=config,
                labels=labels, display_name=resource["tunedModelDisplayName"], base_model=config["base_model"],
                create_time=now, update_time=now, cancel_requested=False, attempts=0,
            )
            s.add(row)
        return row

    # -- read ---------------------------------------------------------------------------------------------------
    def get(self, project: str, location: str, job_id: str) -> TuningJobRow:
        return get_scoped(self.store, TuningJobRow, job_id, project, location, "TuningJob", "tuningJobs")

    def list(self, project: str, location: str, *, filter: str | None = None, page_size: int | None = None,
             page_token: str | None = None) -> tuple[list[TuningJobRow], str]:
        q = select(TuningJobRow).where(TuningJobRow.project == project, TuningJobRow.location == location,
                                       *filter_conditions(filter, TUNING_JOB_FILTERS, TuningJobRow.labels))
        with self.store.session() as s:
            return page(s, q.order_by(TuningJobRow.create_time.desc(), TuningJobRow.id.desc()), page_size, page_token)

    def metrics(self, job_id: str, since_step: int = 0) -> list[MetricRow]:
        with self.store.session() as s:
            q = select(MetricRow).where(MetricRow.job_id == job_id, MetricRow.step > since_step)
            return list(s.scalars(q.order_by(MetricRow.step, MetricRow.id)))

    # -- cancel -------------------------------------------------------------------------------------------------
    def cancel(self, project: str, location: str, job_id: str) -> None:
        self.get(project, location, job_id)
        with self.store.session() as s:
            row = s.get(TuningJobRow, job_id, with_for_update=True)
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


# -- resource JSON -----------------------------------------------------------------------------------------------------

def job_name(row: TuningJobRow) -> str:
    return names.name("tuningJobs", row.project, row.location, row.id)


def job_resource_json(row, name: str) -> dict:
    """What every job resource shows: the stored request echo, name, state, labels, times and error."""
    out = dict(row.resource)
    out.update(name=name, state=row.state, labels=row.labels or {}, createTime=timestamp(row.create_time),
               updateTime=timestamp(row.update_time))
    if row.start_time:
        out["startTime"] = timestamp(row.start_time)
    if row.end_time:
        out["endTime"] = timestamp(row.end_time)
    if row.error:
        out["error"] = row.error
    return out


def tuning_job_json(row: TuningJobRow) -> dict:
    """The TuningJob resource. ``experiment`` is never set (the SDK breaks on it, contract §10)."""
    out = job_resource_json(row, job_name(row))
    if row.tuned_model:
        out["tunedModel"] = row.tuned_model
    if row.data_stats:
        out["tuningDataStats"] = row.data_stats
    return out
