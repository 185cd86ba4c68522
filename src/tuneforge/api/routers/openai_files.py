"""OpenAI's files API (``/v1/files``), as the ``openai`` client calls it: ``files.create`` (multipart: ``file`` and
``purpose``), ``list``, ``retrieve``, ``content``, ``delete``. The project comes from the API key (deps.openai_project);
errors are OpenAI's shape (api/errors.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import files, openai_project
from tuneforge.api.errors import OPENAI_ERRORS
from tuneforge.control.files import FileService, Upload
from tuneforge.errors import InvalidArgument
from tuneforge.wire.openai_ft import FILE_PURPOSES, FileDeleted, FileList, FileObject

if TYPE_CHECKING:  # the parser's TypedDict of callbacks exists for type checkers only
    from python_multipart.multipart import MultipartCallbacks

router = APIRouter(tags=["files (OpenAI)"], responses=OPENAI_ERRORS)
Service = Annotated[FileService, Depends(files)]
MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(FILE_PURPOSES)},
                    },
                }
            }
        },
    }
}
SMALL_FIELD = 1024  # purpose and any other plain field: a few bytes


MAX_FILENAME = 512  # what the files table keeps
MAX_HEADER = 8192  # a part's header value (its content-disposition, with the file name)


class _Form:
    """A multipart body parsed as it streams in: the ``file`` part goes to an Upload chunk by chunk, small fields
    are kept, anything else is refused."""

    def __init__(self, upload: Upload):
        self.upload = upload
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._header, self._value = b"", b""
        self._headers: dict[str, bytes] = {}
        self._name: str | None = None
        self._data = bytearray()
        self.error: InvalidArgument | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: setattr(self, "_header", self._header + d[s:e]),
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _begin(self) -> None:
        self._headers, self._name, self._data = {}, None, bytearray()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]
        if len(self._value) > MAX_HEADER:
            raise InvalidArgument(
                f"a part's header is over {MAX_HEADER:,} bytes; send a shorter file name", param="file"
            )

    def _header_end(self) -> None:
        self._headers[self._header.decode("latin-1").lower()] = self._value
        self._header, self._value = b"", b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file":
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            if len(self.filename) > MAX_FILENAME or "\x00" in self.filename:
                raise InvalidArgument(
                    f"the file's name must have at most {MAX_FILENAME} characters and no NUL byte", param="file"
                )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == "file":
            self.upload.write(data[start:end])
            return
        self._data += data[start:end]
        if len(self._data) > SMALL_FIELD:
            raise InvalidArgument(f"form field {self._name!r} is over {SMALL_FIELD} bytes", param=self._name)

    def _part_end(self) -> None:
        if self._name != "file" and self._name:
            self.fields[self._name] = self._data.decode("utf-8", "replace").strip()


async def _parse(request: Request, upload: Upload) -> _Form:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidArgument(
            "send the file as multipart/form-data with the parts 'file' and 'purpose' (openai: "
            "client.files.create(file=open(path, 'rb'), purpose='fine-tune'))"
        )
    form = _Form(upload)
    parser = MultipartParser(boundary, form.callbacks())
    try:
        async for chunk in request.stream():
            await run_in_threadpool(parser.write, chunk)  # the file part is written to disk as it arrives
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidArgument(f"the multipart body cannot be read ({exc}); keep file names short") from None
    if form.filename is None:
        raise InvalidArgument("the upload has no 'file' part; send the file as the form field 'file'", param="file")
    if "purpose" not in form.fields:
        raise InvalidArgument("purpose is required; fine-tuning files use purpose='fine-tune'", param="purpose")
    return form


@router.post("/v1/files", response_model=FileObject, openapi_extra=MULTIPART_BODY)
async def create_file(request: Request, service: Service) -> FileObject:
    """Upload a file (multipart ``file`` + ``purpose``); it is streamed to the bucket root under the project."""
    project = openai_project(request)
    upload = service.start()
    try:
        form = await _parse(request, upload)
    except BaseException:
        upload.abort()
        raise
    return await run_in_threadpool(service.finish, project, upload, form.filename or "", form.fields["purpose"])


@router.get("/v1/files", response_model=FileList, response_model_exclude_none=True)
async def list_files(
    request: Request,
    service: Service,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Literal["asc", "desc"] = "desc",
) -> FileList:
    """The project's files, newest first (``order=asc``: oldest first); ``after`` a listed id, at most ``limit``."""
    project = openai_project(request)
    return await run_in_threadpool(service.listed, project, purpose, after, limit, order)


@router.get("/v1/files/{file_id}", response_model=FileObject, response_model_exclude_none=True)
async def retrieve_file(request: Request, file_id: str, service: Service) -> FileObject:
    return await run_in_threadpool(service.retrieve, openai_project(request), file_id)


@router.get(
    "/v1/files/{file_id}/content",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def file_content(request: Request, file_id: str, service: Service) -> FileResponse:
    """The file's bytes, as uploaded."""
    path = await run_in_threadpool(service.content, openai_project(request), file_id)
    return FileResponse(path, media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}", response_model=FileDeleted)
async def delete_file(request: Request, file_id: str, service: Service) -> FileDeleted:
    """Delete the file (refused while a job that has not ended trains on it)."""
    return await run_in_threadpool(service.delete, openai_project(request), file_id)
