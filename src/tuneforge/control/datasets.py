"""Dataset files of a project: uploaded through the API into the bucket root (the console's upload), or named by its
jobs. Each is listed with its format, counts and the number of problems a structure check finds; one file's whole
report (against a model's token limits when one is named) comes from the same check ``tuneforge validate`` runs."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from tuneforge import storage
from tuneforge.catalog import TuningMode
from tuneforge.control.access import BucketPolicy
from tuneforge.control.db import Store
from tuneforge.control.previews import problems
from tuneforge.control.tables import DatasetRow, PipelineJobRow, TuningJobRow, utcnow
from tuneforge.data import Report
from tuneforge.errors import AlreadyExists, InvalidArgument
from tuneforge.settings import Settings
from tuneforge.train.dataset_check import PURPOSES, dataset_report
from tuneforge.wire import names
from tuneforge.wire.base import timestamp
from tuneforge.wire.datasets import DatasetFile, DatasetReport, InspectDatasetRequest, ListDatasetFilesResponse

CACHED = 1000  # structure checks kept (one per file version and purpose)
PIPELINE_PURPOSES = {"tune-large-model": "code-generation", "tune-large-chat-model": "code-chat"}


@dataclass
class _Use:
    purpose: str
    jobs: list[str]


def _uses(store: Store, project: str, location: str) -> dict[str, _Use]:
    """Every dataset URI the project's jobs name, with what it was for and which jobs (newest first)."""
    uses: dict[str, _Use] = {}

    def add(uri: str | None, purpose: str, job: str) -> None:
        if uri:
            uses.setdefault(uri, _Use(purpose, [])).jobs.append(job)

    with store.session() as s:
        tuning = select(TuningJobRow.id, TuningJobRow.config).where(
            TuningJobRow.project == project, TuningJobRow.location == location
        )
        for job_id, config in s.execute(tuning.order_by(TuningJobRow.create_time.desc())):
            name = names.name("tuningJobs", project, location, job_id)
            add(config.get("train_dataset"), config.get("method", "supervised"), name)
            add(config.get("validation_dataset"), config.get("method", "supervised"), name)
        pipelines = select(PipelineJobRow.pipeline_job_id, PipelineJobRow.template, PipelineJobRow.parameters).where(
            PipelineJobRow.project == project, PipelineJobRow.location == location
        )
        for job_id, template, params in s.execute(pipelines.order_by(PipelineJobRow.create_time.desc())):
            name = names.name("pipelineJobs", project, location, job_id)
            purpose = PIPELINE_PURPOSES.get(template, template)
            add(params.get("dataset_uri"), purpose, name)
            add(params.get("evaluation_data_uri"), purpose, name)
    return uses


class DatasetService:
    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self.buckets = BucketPolicy(store, settings)
        self._checked: dict[tuple[str, str, int, float], Report] = {}  # (uri, purpose, size, mtime) -> report
        self._lock = threading.Lock()

    def upload(self, project: str, location: str, uri: str, purpose: str, data: bytes) -> DatasetFile:
        """Write a new file into the bucket root (never over an existing one) and record the upload."""
        storage.check_client_uri(uri, "uri", self.settings, access=self.buckets.for_project(project), write=True)
        if not uri.startswith("gs://") or not uri.endswith(".jsonl"):
            raise InvalidArgument(f"uri must be a gs://BUCKET/path/NAME.jsonl URI (got {uri[:256]!r})")
        _purpose(purpose)
        if len(data) > self.settings.max_upload_bytes:
            raise too_large(self.settings.max_upload_bytes)
        if not data:
            raise InvalidArgument("the file is empty; a dataset has one JSON object per line")
        try:
            storage.write_new(uri, data, self.settings)
        except FileExistsError:
            raise AlreadyExists(
                f"{uri} already exists; upload under another name (an existing file is never replaced: a job may "
                "be reading it)"
            ) from None
        with self.store.session() as s:
            row = DatasetRow(
                project=project,
                location=location,
                uri=uri,
                purpose=purpose,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                create_time=utcnow(),
            )
            s.add(row)
        return self._file(uri, purpose, [], row)

    def list(self, project: str, location: str) -> ListDatasetFilesResponse:
        """Uploads and the files the project's jobs name, newest first."""
        uses = _uses(self.store, project, location)
        with self.store.session() as s:
            where = (DatasetRow.project == project, DatasetRow.location == location)
            uploads = list(s.scalars(select(DatasetRow).where(*where).order_by(DatasetRow.create_time.desc())))
        files = []
        for row in uploads:
            use = uses.pop(row.uri, None)
            files.append(self._file(row.uri, use.purpose if use else row.purpose, use.jobs if use else [], row))
        files += [self._file(uri, use.purpose, use.jobs, None) for uri, use in uses.items()]
        return ListDatasetFilesResponse(datasets=files)

    def inspect(self, project: str, location: str, req: InspectDatasetRequest) -> DatasetReport:
        """One file's whole report, for a purpose and (optionally) a model's token limits."""
        storage.check_client_uri(req.uri, "uri", self.settings, access=self.buckets.for_project(project))
        _purpose(req.purpose)
        mode = TuningMode.parse(req.tuning_mode or "PEFT_ADAPTER")
        report, limits = dataset_report(req.uri, req.purpose, req.base_model, mode, self.settings)
        uses = _uses(self.store, project, location).get(req.uri)
        file = self._file(req.uri, req.purpose, uses.jobs if uses else [], None, report)
        return DatasetReport(file=file, problems=problems(report), checked_against=limits or None)

    def _file(
        self, uri: str, purpose: str, jobs: Sequence[str], upload: DatasetRow | None, report: Report | None = None
    ) -> DatasetFile:
        found = storage.stat(uri, self.settings)
        out = DatasetFile(
            uri=uri,
            purpose=purpose,
            uploaded=upload is not None,
            used_by=list(jobs),
            size_bytes=found[0] if found else None,
            create_time=timestamp(upload.create_time) if upload else None,
            exists=found is not None,
        )
        if found is None:
            return out
        report = report or self._structure(uri, purpose, found)
        out.format, out.lines, out.examples = (report.info.get(k) for k in ("format", "lines", "examples"))
        out.errors, out.warnings = report.count("error"), report.count("warning")
        return out

    def _structure(self, uri: str, purpose: str, found: tuple[int, float]) -> Report:
        """The structure check of a file as it is now (cached until its size or time changes)."""
        key = (uri, purpose, *found)
        with self._lock:
            if key in self._checked:
                return self._checked[key]
        report, _ = dataset_report(uri, purpose, None, TuningMode.PEFT_ADAPTER, self.settings)
        with self._lock:
            if len(self._checked) > CACHED:
                self._checked.clear()
            self._checked[key] = report
        return report


def too_large(
    limit: int, fix: str = "copy larger files into the bucket root and give their gs:// URI"
) -> InvalidArgument:
    """An upload over the server's limit (the console's dataset upload and the OpenAI files API share it)."""
    return InvalidArgument(
        f"the file is over {limit:,} bytes, the most an upload may have (TUNEFORGE_MAX_UPLOAD_BYTES); {fix}",
        param="file",
    )


def _purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise InvalidArgument(f"purpose must be one of {', '.join(PURPOSES)} (got {purpose!r})")
