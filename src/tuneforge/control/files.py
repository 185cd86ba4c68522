"""Files of the OpenAI-compatible API (``/v1/files``): uploads streamed to the bucket root under the project's own
folder, listed, read back and deleted. A file an active job trains on is never deleted under it.

An upload is written chunk by chunk to a staging file (never whole in memory), refused once it passes
``TUNEFORGE_MAX_UPLOAD_BYTES``, and only then placed at its URI and recorded: a failed upload leaves nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge import storage
from tuneforge.control import states
from tuneforge.control.access import FILES_BUCKET
from tuneforge.control.datasets import too_large
from tuneforge.control.db import Store
from tuneforge.control.tables import FileRow, TuningJobRow, utcnow
from tuneforge.errors import FailedPrecondition, InvalidArgument, NotFound
from tuneforge.settings import Settings
from tuneforge.wire.openai_ft import FILE_PURPOSES, FileDeleted, FileList, FileObject


class Upload:
    """One upload in progress: ``write`` its chunks, then the service's ``finish`` or ``abort``."""

    def __init__(self, staged: Path, limit: int):
        self.staged, self.limit, self.size = staged, limit, 0
        self.sha = hashlib.sha256()
        self.file = staged.open("wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit, "split it, or ask the operator to raise the limit")
        self.sha.update(chunk)
        self.file.write(chunk)

    def close(self) -> None:
        self.file.close()

    def abort(self) -> None:
        self.close()
        self.staged.unlink(missing_ok=True)


def file_object(row: FileRow) -> FileObject:
    return FileObject(
        id=row.id,
        bytes=row.size_bytes,
        created_at=int(row.create_time.timestamp()),
        filename=row.filename,
        purpose=row.purpose,  # checked on upload
    )


def new_file(project: str, filename: str, purpose: str) -> FileRow:
    """A file's record before its bytes are in place: a new id and where it goes (its size and hash come after)."""
    file_id = "file-" + secrets.token_hex(12)
    suffix = Path(filename).suffix.lower()[:16] if Path(filename).suffix.isascii() else ""
    return FileRow(
        id=file_id,
        project=project,
        filename=filename[:512],
        purpose=purpose,
        uri=f"gs://{FILES_BUCKET}/{project}/{file_id}{suffix}",
        create_time=utcnow(),
    )


def add_file(s: Session, settings: Settings, project: str, filename: str, purpose: str, data: bytes) -> str:
    """A file the server makes (a job's results), written whole and recorded in the caller's transaction."""
    row = new_file(project, filename, purpose)
    row.size_bytes, row.sha256 = len(data), hashlib.sha256(data).hexdigest()
    storage.write_new(row.uri, data, settings)
    s.add(row)
    return row.id


class FileService:
    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings

    # -- upload ---------------------------------------------------------------------------------------------------
    def start(self) -> Upload:
        staging = self.settings.home / "staging" / "uploads"
        staging.mkdir(parents=True, exist_ok=True)
        return Upload(staging / f"{secrets.token_hex(12)}.part", self.settings.max_upload_bytes)

    def finish(self, project: str, upload: Upload, filename: str, purpose: str) -> FileObject:
        upload.close()
        try:
            check_purpose(purpose)
            if not filename:
                raise InvalidArgument("the file part has no filename; send the file as a named upload", param="file")
            if upload.size == 0:
                raise InvalidArgument(f"{filename} is empty; upload a file with at least one line", param="file")
        except InvalidArgument:
            upload.abort()
            raise
        row = new_file(project, filename, purpose)
        row.size_bytes, row.sha256 = upload.size, upload.sha.hexdigest()
        storage.place_new(upload.staged, row.uri, self.settings)
        with self.store.session() as s:
            s.add(row)
        return file_object(row)

    # -- reading --------------------------------------------------------------------------------------------------
    def row(self, project: str, file_id: str, param: str = "file_id") -> FileRow:
        """The project's file ``file_id``; ``param`` names the request field that gave it (for the 404)."""
        with self.store.session() as s:
            row = s.get(FileRow, file_id)
            if row is None or row.project != project:
                raise NotFound(f"No such File object: {file_id}", param=param)
            s.expunge(row)
            return row

    def retrieve(self, project: str, file_id: str) -> FileObject:
        return file_object(self.row(project, file_id))

    def content(self, project: str, file_id: str) -> Path:
        """A local path holding the file's bytes (the bucket root's own file, or a cached copy of a remote one)."""
        return storage.fetch(self.row(project, file_id).uri, self.settings)

    def listed(
        self,
        project: str,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 10000,
        order: str = "desc",
    ) -> FileList:
        with self.store.session() as s:
            q = select(FileRow).where(FileRow.project == project)
            if purpose:
                q = q.where(FileRow.purpose == purpose)
            newest_first = order != "asc"
            keys = [FileRow.create_time, FileRow.id]
            if newest_first:
                keys = [k.desc() for k in keys]  # type: ignore[misc]
            if after:
                cursor = s.get(FileRow, after)
                if cursor is None or cursor.project != project:
                    raise InvalidArgument(f"after: no file {after!r} in this project; pass the id of a listed file")
                key = (cursor.create_time, cursor.id)
                older = (FileRow.create_time < key[0]) | ((FileRow.create_time == key[0]) & (FileRow.id < key[1]))
                newer = (FileRow.create_time > key[0]) | ((FileRow.create_time == key[0]) & (FileRow.id > key[1]))
                q = q.where(older if newest_first else newer)
            rows = list(s.scalars(q.order_by(*keys).limit(limit + 1)))
        return FileList.page([file_object(r) for r in rows[:limit]], has_more=len(rows) > limit)

    # -- delete ---------------------------------------------------------------------------------------------------
    def delete(self, project: str, file_id: str) -> FileDeleted:
        row = self.row(project, file_id)
        active = self._active_jobs(project, row.uri)
        if active:
            raise FailedPrecondition(
                f"{file_id} is used by a job that has not ended ({', '.join(active)}); cancel the job or wait for it, "
                "then delete the file",
                param="file_id",
            )
        with self.store.session() as s:
            found = s.get(FileRow, file_id)
            if found is not None:
                s.delete(found)
        storage.remove(row.uri, self.settings)
        return FileDeleted(id=file_id)

    def _active_jobs(self, project: str, uri: str) -> list[str]:
        with self.store.session() as s:
            q = select(TuningJobRow.id, TuningJobRow.config).where(
                TuningJobRow.project == project, TuningJobRow.state.in_(states.UNFINISHED)
            )
            return [
                job_id
                for job_id, config in s.execute(q)
                if uri in (config.get("train_dataset"), config.get("validation_dataset"))
            ]


def check_purpose(purpose: str) -> None:
    if purpose not in FILE_PURPOSES:
        raise InvalidArgument(
            f"purpose {purpose!r} is not one of {', '.join(FILE_PURPOSES)}; fine-tuning files use 'fine-tune'",
            param="purpose",
        )
