"""Fine-tuning jobs of the OpenAI-compatible API (``/v1/fine_tuning/jobs``): one more door to the same engine.

``create`` turns OpenAI's request into a Vertex TuningJob (the training file's URI, the hyper-parameters, the
suffix as the tuned model's name) and creates it through the tuning-job service, so it is validated, admitted
(quota, queue), run, recovered and listed exactly as a tuningJob is; what only OpenAI's API has (the file ids, the
suffix, metadata, the seed, the method as asked) is stored beside it in the same transaction. ``ftjob-<id>`` is
the tuning job's own id, so each door finds the other's job.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.catalog import load_catalog
from tuneforge.control import states
from tuneforge.control.db import Store
from tuneforge.control.deployments import Deployments
from tuneforge.control.files import FileService, add_file
from tuneforge.control.tables import FileRow, FineTuningJobRow, JobEventRow, MetricRow, ModelRow, TuningJobRow
from tuneforge.control.tuning_jobs import TuningJobService
from tuneforge.errors import RPC_CODES, FailedPrecondition, InvalidArgument, NotFound, rpc_name
from tuneforge.infer.engine import Deployment
from tuneforge.settings import Settings
from tuneforge.wire import names
from tuneforge.wire.base import messages
from tuneforge.wire.openai import ModelList, OpenAIModel
from tuneforge.wire.openai_ft import (
    CheckpointList,
    CheckpointMetrics,
    CreateFineTuningJob,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobEventList,
    FineTuningJobList,
    Hyperparameters,
    JobError,
    Method,
    MethodConfig,
    ModelDeleted,
)
from tuneforge.wire.tuning import (
    PreferenceOptimizationHyperParameters,
    PreferenceOptimizationSpec,
    SupervisedHyperParameters,
    SupervisedTuningSpec,
    TuningJob,
)

PREFIX = "ftjob-"
T = TypeVar("T")
STATUS = {
    states.PENDING: "queued",
    states.QUEUED: "queued",
    states.RUNNING: "running",
    states.CANCELLING: "running",
    states.SUCCEEDED: "succeeded",
    states.FAILED: "failed",
    states.CANCELLED: "cancelled",
    states.PAUSED: "paused",
}
METRIC_NAMES = {  # what the job's metrics are called in OpenAI's events
    "train_total_loss": "train_loss",
    "train_fraction_of_correct_next_step_preds": "train_mean_token_accuracy",
    "eval_total_loss": "valid_loss",
    "eval_fraction_of_correct_next_step_preds": "valid_mean_token_accuracy",
}


CSV_COLUMNS = ("train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy")


def _number(value: Any) -> Any:
    return None if value in (None, "auto") else value


class FineTuningService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        tuning: TuningJobService,
        files: FileService,
        deployments: Deployments | None = None,
    ):
        self.store, self.settings, self.tuning, self.files = store, settings, tuning, files
        self.deployments = deployments  # loads a fine-tuned model for chat (None: no serving engine)

    # -- create ---------------------------------------------------------------------------------------------------
    def create(self, project: str, req: CreateFineTuningJob) -> FineTuningJob:
        method = _method(req)
        hp = _hyperparameters(method)
        train = _tuning_file(self.files.row(project, req.training_file, param="training_file"), "training_file")
        validation = (
            _tuning_file(self.files.row(project, req.validation_file, "validation_file"), "validation_file")
            if req.validation_file
            else None
        )
        if req.metadata is not None:
            _check_metadata(req.metadata)
        seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
        try:
            job = self._tuning_job(req, method, hp, train, validation)
        except ValidationError as exc:  # a value the Vertex side refuses (a model id it cannot hold, …)
            raise InvalidArgument("; ".join(text for _, text in messages(exc, "request"))) from None

        def attach(s: Session, row: TuningJobRow) -> None:
            s.add(
                FineTuningJobRow(
                    id=row.id,
                    project=project,
                    model=req.model,
                    training_file=req.training_file,
                    validation_file=req.validation_file,
                    suffix=req.suffix,
                    seed=seed,
                    job_metadata=req.metadata,
                    method=method.model_dump(exclude_none=True),
                    create_time=row.create_time,
                )
            )

        run = {
            "seed": seed,
            **({"batch_size": hp.batch_size} if method.type == "dpo" and _number(hp.batch_size) else {}),
        }
        created = self.tuning.create(project, self.settings.location, job, run=run, attach=attach)
        return self.retrieve(project, PREFIX + str(created.name).rsplit("/", 1)[-1])

    @staticmethod
    def _tuning_job(
        req: CreateFineTuningJob, method: Method, hp: Hyperparameters, train: FileRow, validation: FileRow | None
    ) -> TuningJob:
        """The Vertex TuningJob that runs ``req``: the files' URIs, the hyper-parameters ("auto": unset), the suffix
        in the tuned model's name; a supervised spec, or a preference one for dpo."""
        uris = {"training_dataset_uri": train.uri, "validation_dataset_uri": validation.uri if validation else None}
        common = {"epoch_count": _number(hp.n_epochs), "learning_rate_multiplier": _number(hp.learning_rate_multiplier)}
        display = f"{req.model.split('/')[-1]}-{req.suffix}"[:128] if req.suffix else None
        if method.type == "dpo":
            preference = PreferenceOptimizationHyperParameters(**common, beta=_number(hp.beta))
            spec = PreferenceOptimizationSpec(**uris, hyper_parameters=preference)
            return TuningJob(base_model=req.model, tuned_model_display_name=display, preference_optimization_spec=spec)
        supervised = SupervisedHyperParameters(**common, batch_size=_number(hp.batch_size))
        return TuningJob(
            base_model=req.model,
            tuned_model_display_name=display,
            supervised_tuning_spec=SupervisedTuningSpec(**uris, hyper_parameters=supervised),
        )

    # -- read -----------------------------------------------------------------------------------------------------
    def _rows(self, s: Session, project: str, ft_id: str) -> tuple[FineTuningJobRow, TuningJobRow]:
        job_id = ft_id.removeprefix(PREFIX)
        ours = s.get(FineTuningJobRow, job_id) if ft_id.startswith(PREFIX) else None
        if ours is None or ours.project != project:
            raise NotFound(f"No such fine-tuning job: {ft_id}", param="fine_tuning_job_id")
        return ours, s.get_one(TuningJobRow, job_id)

    def retrieve(self, project: str, ft_id: str) -> FineTuningJob:
        with self.store.session() as s:
            return fine_tuning_job(*self._rows(s, project, ft_id))

    def listed(
        self, project: str, after: str | None, limit: int, metadata: dict[str, str] | None = None
    ) -> FineTuningJobList:
        with self.store.session() as s:
            q = (
                select(FineTuningJobRow, TuningJobRow)
                .join(TuningJobRow, TuningJobRow.id == FineTuningJobRow.id)
                .where(FineTuningJobRow.project == project)
                .order_by(FineTuningJobRow.create_time.desc(), FineTuningJobRow.id.desc())
            )
            pairs = [(a, b) for a, b in s.execute(q) if _matches(a.job_metadata, metadata)]
        pairs = _after(pairs, [PREFIX + a.id for a, _ in pairs], after, "fine-tuning job", "this project")
        return FineTuningJobList(data=[fine_tuning_job(a, b) for a, b in pairs[:limit]], has_more=len(pairs) > limit)

    def cancel(self, project: str, ft_id: str) -> FineTuningJob:
        return self._control(project, ft_id, self.tuning.cancel, "only a job that has not ended is cancelled")

    def pause(self, project: str, ft_id: str) -> FineTuningJob:
        """A running job saves a checkpoint at its next step and stops ("pausing", then "paused")."""
        return self._control(project, ft_id, self.tuning.pause, "only a queued or running job is paused")

    def resume(self, project: str, ft_id: str) -> FineTuningJob:
        """A paused job goes back in the queue and continues from the checkpoint it paused at."""
        return self._control(project, ft_id, self.tuning.resume, "only a paused job is resumed")

    def _control(self, project: str, ft_id: str, action: Callable[[str, str, str], None], only: str) -> FineTuningJob:
        """Cancel, pause or resume through the tuning-job service (one state machine for both doors); a request the
        job's state refuses is a 400 in OpenAI's words."""
        with self.store.session() as s:
            _, row = self._rows(s, project, ft_id)
        try:
            action(project, row.location, row.id)
        except FailedPrecondition:
            now = self.retrieve(project, ft_id).status
            ended = {STATUS[s] for s in states.FINAL}
            state = f"has already ended ({now})" if now in ended else f"is {now}"
            raise InvalidArgument(f"{ft_id} {state}; {only}", param="fine_tuning_job_id") from None
        return self.retrieve(project, ft_id)

    def events(self, project: str, ft_id: str, after: str | None, limit: int) -> FineTuningJobEventList:
        """The job's events, newest first: what happened (created, started, messages of the run, ended) and each
        step's metrics."""
        with self.store.session() as s:
            ours, _ = self._rows(s, project, ft_id)
            found = [_event(e) for e in s.scalars(select(JobEventRow).where(JobEventRow.job_id == ours.id))]
            found += _metric_events(list(s.scalars(select(MetricRow).where(MetricRow.job_id == ours.id))))
        found.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        found = _after(found, [e.id for e in found], after, "event", ft_id)
        return FineTuningJobEventList(data=found[:limit], has_more=len(found) > limit)

    def checkpoints(self, project: str, ft_id: str, after: str | None, limit: int) -> CheckpointList:
        """The job's exported checkpoints (tuneforge exports one: the last step's, or the best-evaluated one's),
        newest first, each with the metrics of its step and a model id chat takes."""
        with self.store.session() as s:
            ours, row = self._rows(s, project, ft_id)
            if row.state != states.SUCCEEDED:
                return CheckpointList(data=[])
            by_step = _by_step(list(s.scalars(select(MetricRow).where(MetricRow.job_id == ours.id))))
        found = []
        for checkpoint in reversed((row.tuned_model or {}).get("checkpoints", [])):
            step = int(checkpoint["step"])
            at = _named(by_step.get(step, []))
            found.append(
                FineTuningJobCheckpoint(
                    id=f"ftckpt-{ours.id}-{step}",
                    created_at=_seconds(row.end_time) or 0,
                    fine_tuned_model_checkpoint=f"{_ft_name(ours)}:ckpt-step-{step}",
                    fine_tuning_job_id=PREFIX + ours.id,
                    metrics=CheckpointMetrics(step=step, **{k: at[k] for k in CSV_COLUMNS if k in at}),
                    step_number=step,
                )
            )
        found = _after(found, [c.id for c in found], after, "checkpoint", ft_id)
        return CheckpointList.page(found[:limit], has_more=len(found) > limit)

    # -- the fine-tuned models -------------------------------------------------------------------------------------
    def _model_rows(self, s: Session, project: str, model: str) -> tuple[FineTuningJobRow, TuningJobRow]:
        """The job behind ``ft:<model>:<project>:<suffix>:<id>`` (or one of its checkpoints, ``…:ckpt-step-N``) in
        ``project``; 404 for another project's, or none."""
        model, marker, step = model.partition(":ckpt-step-")
        parts = model.split(":")
        ours = s.get(FineTuningJobRow, parts[-1]) if model.startswith("ft:") and len(parts) >= 5 else None
        row = s.get(TuningJobRow, ours.id) if ours is not None else None
        if ours is None or row is None or ours.project != project or parts[-3] != project:
            raise NotFound(f"The model {model!r} does not exist in this project", param="model")
        if row.state != states.SUCCEEDED or ours.model_deleted or not (row.tuned_model or {}).get("model"):
            why = "its job has not succeeded, or it was deleted"
            raise NotFound(f"The model {model!r} does not exist ({why})", param="model")
        if marker and step not in [str(c.get("step")) for c in (row.tuned_model or {}).get("checkpoints", [])]:
            raise NotFound(f"{model} has no checkpoint at step {step}; list them with checkpoints.list", param="model")
        return ours, row

    def models(self, project: str) -> ModelList:
        """The project's fine-tuned models (jobs that succeeded, not deleted), newest first."""
        with self.store.session() as s:
            q = (
                select(FineTuningJobRow, TuningJobRow)
                .join(TuningJobRow, TuningJobRow.id == FineTuningJobRow.id)
                .where(FineTuningJobRow.project == project, TuningJobRow.state == states.SUCCEEDED)
                .where(FineTuningJobRow.model_deleted.is_(False))
                .order_by(TuningJobRow.end_time.desc())
            )
            return ModelList(data=[_model(a, b) for a, b in s.execute(q)])

    def model(self, project: str, model: str) -> OpenAIModel:
        with self.store.session() as s:
            return _model(*self._model_rows(s, project, model))

    def delete_model(self, project: str, model: str) -> ModelDeleted:
        """The model leaves models.list and chat; its job, its Vertex model and its files stay."""
        with self.store.session() as s:
            ours, _ = self._model_rows(s, project, model)
            ours.model_deleted = True
        if self.deployments is not None:
            self.deployments.unload(PREFIX + ours.id)
        return ModelDeleted(id=model)

    def serving(self, project: str, model: str) -> Deployment:
        """The engine's deployment of a fine-tuned model, loaded on first use (on the shared base of its family)."""
        assert self.deployments is not None
        if not model.startswith("ft:"):  # a base model: a catalog id (an OpenAI id on its mapped open model)
            catalog = load_catalog(self.settings)
            if model not in catalog.models and model not in catalog.aliases:  # gpt-* patterns name no model
                raise NotFound(
                    f"the model {model[:128]!r} does not exist: name a fine-tuned model (ft:…, GET /v1/models lists "
                    "them) or a catalog model id",
                    param="model",
                )
            resolved = catalog.resolve(model, settings=self.settings)
            return self.deployments.load_base(resolved)
        with self.store.session() as s:
            _, row = self._model_rows(s, project, model)
            parsed = names.parse((row.tuned_model or {})["model"], ("models",))
            registered = s.get_one(ModelRow, parsed.id if parsed else "")
            s.expunge(registered)
        return self.deployments.load_registered(PREFIX + row.id, registered)


def write_results(s: Session, settings: Settings, job_id: str) -> None:
    """When a job made through the OpenAI API succeeds: its metrics as a CSV file (``result_files``), one row per
    step, in the transaction that records the success. Other tuning jobs have none."""
    ours = s.get(FineTuningJobRow, job_id)
    if ours is None:
        return
    lines = [",".join(["step", *CSV_COLUMNS])]
    for step, found in _by_step(list(s.scalars(select(MetricRow).where(MetricRow.job_id == job_id)))).items():
        values = _named(found)
        lines.append(",".join([str(step), *(f"{values[c]:.6g}" if c in values else "" for c in CSV_COLUMNS)]))
    data = ("\n".join(lines) + "\n").encode()
    ours.result_file = add_file(s, settings, ours.project, "step_metrics.csv", "fine-tune-results", data)


def _ft_name(ours: FineTuningJobRow) -> str:
    """The fine-tuned model's id, as OpenAI spells it: ``ft:<model>:<project>:<suffix>:<job id>``."""
    return f"ft:{ours.model}:{ours.project}:{ours.suffix or ''}:{ours.id}"


def _model(ours: FineTuningJobRow, row: TuningJobRow) -> OpenAIModel:
    return OpenAIModel(id=_ft_name(ours), created=_seconds(row.end_time), owned_by=ours.project, root=ours.model)


def _method(req: CreateFineTuningJob) -> Method:
    """The method as asked (the legacy top-level hyperparameters are the supervised method's)."""
    if req.integrations:
        kinds = ", ".join(str(i.get("type")) for i in req.integrations)
        raise InvalidArgument(
            f"integrations ({kinds}) are not supported: tuneforge writes TensorBoard event files under the job's "
            "output instead; remove integrations",
            param="integrations",
        )
    method = req.method or Method(type="supervised", supervised=MethodConfig(hyperparameters=req.hyperparameters))
    if req.method is not None and req.hyperparameters is not None:
        raise InvalidArgument("give method or the legacy hyperparameters, not both", param="hyperparameters")
    if method.type == "reinforcement":
        raise InvalidArgument(
            "method.type 'reinforcement' (reinforcement fine-tuning with graders) is not supported; use "
            "'supervised', or 'dpo' for preference pairs",
            param="method.type",
        )
    if method.type not in ("supervised", "dpo"):
        raise InvalidArgument(f"method.type {method.type!r} is not one of supervised, dpo", param="method.type")
    other = "dpo" if method.type == "supervised" else "supervised"
    if getattr(method, other) is not None:
        raise InvalidArgument(f"method.{other} is set but method.type is {method.type!r}; remove one", param=other)
    hp = _hyperparameters(method)
    if method.type == "supervised" and hp.beta is not None:
        raise InvalidArgument("beta is a dpo hyper-parameter; remove it for supervised tuning", param="beta")
    return method


def _hyperparameters(method: Method) -> Hyperparameters:
    """The method's hyper-parameters as asked (none: every one "auto")."""
    config = method.dpo if method.type == "dpo" else method.supervised
    return (config.hyperparameters if config else None) or Hyperparameters()


def _tuning_file(row: FileRow, param: str) -> FileRow:
    if row.purpose != "fine-tune":
        raise InvalidArgument(
            f"{param} {row.id} was uploaded with purpose {row.purpose!r}; upload it with purpose 'fine-tune'",
            param=param,
        )
    return row


def _check_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > 16:
        raise InvalidArgument(f"metadata has {len(metadata)} keys; at most 16 are allowed", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise InvalidArgument(
                f"metadata {key[:64]!r}: keys are at most 64 characters, values 512", param=f"metadata.{key[:64]}"
            )


def _after(items: list[T], ids: list[str], after: str | None, what: str, where: str) -> list[T]:
    """The items listed after the one whose id is ``after`` (OpenAI's cursor); an id not listed is a 400."""
    if not after:
        return items
    if after not in ids:
        raise InvalidArgument(f"after: no {what} {after!r} in {where}", param="after")
    return items[ids.index(after) + 1 :]


def _matches(stored: dict[str, Any] | None, wanted: dict[str, str] | None) -> bool:
    return not wanted or all((stored or {}).get(k) == v for k, v in wanted.items())


def _seconds(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _resolved(ours: FineTuningJobRow, progress: dict[str, Any]) -> Hyperparameters:
    """The hyper-parameters as asked, "auto" replaced by what the run resolved once it has (progress["resolved"])."""
    plan = progress.get("resolved") or {}
    kind = ours.method.get("type", "supervised")
    asked = (ours.method.get(kind) or {}).get("hyperparameters") or {}
    epochs = plan.get("epochs")
    if epochs is not None and float(epochs).is_integer():
        epochs = int(epochs)
    return Hyperparameters(
        n_epochs=epochs if epochs is not None else asked.get("n_epochs", "auto"),
        batch_size=plan.get("batch_size") or asked.get("batch_size", "auto"),
        learning_rate_multiplier=_number(asked.get("learning_rate_multiplier")) or (1.0 if plan else "auto"),
        beta=(plan.get("beta") or asked.get("beta", "auto")) if kind == "dpo" else None,
    )


def fine_tuning_job(ours: FineTuningJobRow, row: TuningJobRow) -> FineTuningJob:
    """The OpenAI job object of a tuning job, from its row (state, progress, error, tuned model) and ours."""
    progress = row.progress or {}
    resolved = _resolved(ours, progress)
    status = "pausing" if row.state == states.RUNNING and row.pause_requested else STATUS[row.state]
    error = None
    if row.state == states.FAILED and row.error:
        code = rpc_name(
            int(row.error.get("code", RPC_CODES["UNKNOWN"]))
        ).lower()  # google.rpc's name: "invalid_argument"
        error = JobError(code=code, message=row.error.get("message", ""))
    done = row.state == states.SUCCEEDED
    return FineTuningJob(
        id=PREFIX + ours.id,
        created_at=_seconds(row.create_time) or 0,
        finished_at=_seconds(row.end_time) if row.state in states.FINAL else None,
        error=error,
        fine_tuned_model=_ft_name(ours) if done else None,
        hyperparameters=resolved,
        model=ours.model,
        organization_id=ours.project,
        seed=ours.seed,
        status=status,
        trained_tokens=int(progress["trainTokens"]) if done and "trainTokens" in progress else None,
        training_file=ours.training_file,
        validation_file=ours.validation_file,
        result_files=[ours.result_file] if ours.result_file else [],
        estimated_finish=_estimated_finish(progress) if status == "running" else None,
        metadata=ours.job_metadata,
        method=Method.model_validate(
            {
                **ours.method,
                ours.method.get("type", "supervised"): {"hyperparameters": resolved.model_dump(exclude_none=True)},
            }
        ),
        user_provided_suffix=ours.suffix,
    )


def _estimated_finish(progress: dict[str, Any]) -> int | None:
    step, total, spent = progress.get("step") or 0, progress.get("totalSteps"), progress.get("trainSeconds")
    if not step or not total or not spent:
        return None
    return int(time.time() + (total - step) * spent / step)


_LEVELS: dict[str, Literal["info", "warn", "error"]] = {"INFO": "info", "WARNING": "warn", "ERROR": "error"}


def _event(e: JobEventRow) -> FineTuningJobEvent:
    return FineTuningJobEvent(
        id=f"ftevent-e{e.id}",
        created_at=_seconds(e.time) or 0,
        level=_LEVELS.get(e.severity, "info"),
        message=e.message,
    )


def _by_step(rows: list[MetricRow]) -> dict[int, list[MetricRow]]:
    """A job's metric rows grouped by step, in step order."""
    by_step: dict[int, list[MetricRow]] = {}
    for r in sorted(rows, key=lambda r: r.step):
        by_step.setdefault(r.step, []).append(r)
    return by_step


def _named(rows: list[MetricRow]) -> dict[str, float]:
    """One step's values under OpenAI's names (the rest under tuneforge's)."""
    return {METRIC_NAMES.get(r.name, r.name): r.value for r in rows}


def _metric_events(rows: list[MetricRow]) -> list[FineTuningJobEvent]:
    """One "metrics" event per step, its values under OpenAI's names (the rest under tuneforge's)."""
    out = []
    for step, found in _by_step(rows).items():
        data: dict[str, Any] = {"step": step, **_named(found)}
        shown = ", ".join(f"{k}={v:.4f}" for k, v in data.items() if k != "step" and isinstance(v, float))
        out.append(
            FineTuningJobEvent(
                id=f"ftevent-m{found[0].job_id}-{step}",
                created_at=_seconds(max(r.time for r in found)) or 0,
                level="info",
                message=f"Step {step}: {shown}",
                type="metrics",
                data=data,
            )
        )
    return out
