"""URIs for datasets, weights and outputs.

``gs://BUCKET/path`` maps to ``<bucket_root>/BUCKET/path`` unless real GCS is configured; ``file://`` URIs and
plain paths are local. Everything else goes through fsspec when its backend is installed. Training code only ever
sees local paths: remote inputs are downloaded into a cache, remote outputs are written locally and uploaded.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from tuneforge.errors import InvalidArgument
from tuneforge.settings import Settings, get_settings


class StorageError(InvalidArgument, ValueError):
    """A URI that cannot be read or written (INVALID_ARGUMENT); the message says what to do."""


class Access(Protocol):
    """Who may use which bucket: one project's view (control/access.py decides, from the operator's configuration
    and the store). ``check`` raises PermissionDenied, never saying whether the object exists."""

    def check(self, bucket: str, path: str, *, write: bool, uri: str, field: str) -> None: ...


def _split_gs(uri: str) -> tuple[str, str]:
    rest = uri[len("gs://") :]
    bucket, _, path = rest.partition("/")
    if not bucket:
        raise StorageError(f"{uri!r}: a gs:// URI needs a bucket name, like gs://my-bucket/path/file.jsonl")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise StorageError(f"{uri!r}: '.' and '..' are not allowed in gs:// paths")
    return bucket, "/".join(parts)


def is_remote(uri: str, settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    scheme = urlparse(uri).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive
        return False
    if scheme == "gs":
        return settings.real_gcs
    return True


def local_path(uri: str | Path, settings: Settings | None = None) -> Path:
    """The local path a URI maps to, without touching the file system.

    Raises for URIs that live remotely (real GCS, s3://, ...): use :func:`fetch` / :func:`publish` for those.
    """
    settings = settings or get_settings()
    uri = str(uri)
    if uri.startswith("gs://") and not settings.real_gcs:
        bucket, path = _split_gs(uri)
        root = settings.resolved_bucket_root
        mapped = root / bucket / path
        # A symlink inside the bucket root must not lead out of it.
        if not mapped.resolve().is_relative_to(root.resolve()):
            raise StorageError(
                f"{uri!r} resolves outside the bucket root (a symbolic link?); gs:// URIs must stay inside it"
            )
        return mapped
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if is_remote(uri, settings):
        raise StorageError(f"{uri!r} is remote; it has no local path until fetched")
    return Path(uri).expanduser()


def check_client_uri(
    uri: str, field: str, settings: Settings | None = None, *, access: Access | None, write: bool = False
) -> str:
    """A URI from an API client: gs:// (mapped under the bucket root), or a file path inside the bucket root.

    Operators' own paths (catalog weights, CLI arguments) are not limited; what a client sends over the API can
    never reach outside the bucket root: no '..', no absolute path or file:// URI elsewhere, no symlink out. With
    ``access`` (a server with API keys: several tenants), the bucket must also be one the client's project may read
    (or, with ``write``, write); ``access=None`` is for one tenant and the operator's own paths.
    """
    settings = settings or get_settings()
    if not isinstance(uri, str) or not uri:
        raise StorageError(f"{field} must be a gs:// URI")
    if "\x00" in uri or len(uri) > MAX_URI or not uri.isprintable() or not _encodable(uri):
        raise StorageError(
            f"{field} must be a gs:// URI of at most {MAX_URI} characters, without NUL bytes, control characters or "
            "lone surrogates"
        )
    if uri.startswith("gs://"):
        bucket, path = _split_gs(uri)
        if any(len(part) > MAX_SEGMENT for part in [bucket, *path.split("/")]):
            raise StorageError(f"{field}: each part of a gs:// path may have at most {MAX_SEGMENT} characters")
        if not settings.real_gcs:
            local_path(uri, settings)  # raises for '..' and symlinks out of the root
    else:
        bucket, path = _inside_root(uri, field, settings)
    if access is not None:
        access.check(bucket, path, write=write, uri=uri, field=field)
    return uri


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


MAX_URI = 2048
MAX_SEGMENT = 255  # what a file system allows a name (longer ones would fail with an OSError)


def _inside_root(uri: str, field: str, settings: Settings) -> tuple[str, str]:
    """(bucket, path) of a client's local path, which must lie inside the bucket root."""
    scheme = urlparse(uri).scheme
    if scheme not in ("", "file"):
        raise StorageError(f"{field}: {uri!r} is not supported; use a gs://BUCKET/path URI")
    path = local_path(uri, settings)
    root = settings.resolved_bucket_root.resolve()
    if any(len(part) > MAX_SEGMENT for part in path.parts):
        raise StorageError(f"{field}: each part of a path may have at most {MAX_SEGMENT} characters")
    if not path.is_absolute() or not path.resolve().is_relative_to(root):
        raise StorageError(f"{field}: {uri!r} is outside the bucket root; use a gs://BUCKET/path URI")
    parts = path.resolve().relative_to(root).parts
    if not parts:
        raise StorageError(f"{field}: {uri!r} is the bucket root itself; name a file in a bucket")
    return parts[0], "/".join(parts[1:])


def client_text(message: str, settings: Settings | None = None) -> str:
    """``message`` as a client may read it: a path under the bucket root as its gs:// URI, other server paths
    (tuneforge's home: caches, built models) as <home>. A job's error or event never shows where the server keeps
    things."""
    settings = settings or get_settings()
    root = str(settings.resolved_bucket_root.resolve()).rstrip("/") + "/"
    for prefix in {root, str(settings.resolved_bucket_root).rstrip("/") + "/"}:
        message = message.replace(prefix, "gs://")
    for home in {str(settings.home.resolve()), str(settings.home)}:
        message = message.replace(home, "<home>")
    return message


def _fs_for(uri: str):
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec is a dependency
        raise StorageError(str(exc)) from exc
    scheme = urlparse(uri).scheme
    try:
        return fsspec.filesystem(scheme)
    except (ImportError, ValueError) as exc:
        hint = " (pip install gcsfs)" if scheme == "gs" else ""
        raise StorageError(f"cannot open {uri!r}: no fsspec backend for {scheme}://{hint}") from exc


def fetch(uri: str | Path, settings: Settings | None = None) -> Path:
    """A local path holding the object or folder at ``uri``; remote objects are downloaded into a cache once."""
    settings = settings or get_settings()
    uri = str(uri)
    if not is_remote(uri, settings):
        path = local_path(uri, settings)
        if not path.exists():
            raise StorageError(f"{uri} not found; upload it there or fix the path")
        return path
    cache = settings.home / "cache" / urlparse(uri).scheme / uri.split("://", 1)[1].strip("/")
    if not cache.exists():
        fs = _fs_for(uri)
        if not fs.exists(uri):
            raise StorageError(f"{uri} not found (or not readable by the service); upload it or fix the path")
        cache.parent.mkdir(parents=True, exist_ok=True)
        fs.get(uri, str(cache), recursive=fs.isdir(uri))
    return cache


def output_dir(uri: str | Path, settings: Settings | None = None) -> Path:
    """The local folder a run writes ``uri``'s contents into (the mapped path, or a staging folder for remote URIs)."""
    settings = settings or get_settings()
    uri = str(uri)
    if not is_remote(uri, settings):
        return local_path(uri, settings)
    return settings.home / "staging" / urlparse(uri).scheme / uri.split("://", 1)[1].strip("/")


def publish(local: Path, uri: str | Path, settings: Settings | None = None) -> None:
    """Make the staged folder ``local`` visible at ``uri`` (a no-op when ``uri`` maps to ``local``)."""
    settings = settings or get_settings()
    uri = str(uri)
    if not is_remote(uri, settings):
        target = local_path(uri, settings)
        if target.resolve() != Path(local).resolve():
            shutil.copytree(local, target, dirs_exist_ok=True)
        return
    _fs_for(uri).put(str(local), uri, recursive=True)


def write_new(uri: str, data: bytes, settings: Settings | None = None) -> None:
    """Write ``data`` as a new object at ``uri``; an existing one is never replaced (a job may be reading it).
    Raises FileExistsError when it exists. Locally the file appears whole or not at all."""
    settings = settings or get_settings()
    if is_remote(uri, settings):
        fs = _fs_for(uri)
        if fs.exists(uri):
            raise FileExistsError(uri)
        with fs.open(uri, "wb") as f:
            f.write(data)
        return
    target = local_path(uri, settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    staged.write_bytes(data)
    place_new(staged, uri, settings)


def place_new(staged: Path, uri: str, settings: Settings | None = None) -> None:
    """Move the local file ``staged`` (written whole) to ``uri`` as a new object; an existing one is never replaced
    (FileExistsError). The staged file is gone afterwards either way."""
    settings = settings or get_settings()
    try:
        if is_remote(uri, settings):
            fs = _fs_for(uri)
            if fs.exists(uri):
                raise FileExistsError(uri)
            fs.put(str(staged), uri)
            return
        target = local_path(uri, settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staged, target)  # fails if the target exists: no check-then-write race
        except FileExistsError:
            raise
        except OSError:  # no hard links (or another device): copy into an exclusively created file
            with open(staged, "rb") as src, open(target, "xb") as dst:
                shutil.copyfileobj(src, dst)
    finally:
        staged.unlink(missing_ok=True)


def remove(uri: str, settings: Settings | None = None) -> None:
    """Delete the object at ``uri`` (nothing when there is none)."""
    settings = settings or get_settings()
    if is_remote(uri, settings):
        fs = _fs_for(uri)
        if fs.exists(uri):
            fs.rm(uri)
        return
    local_path(uri, settings).unlink(missing_ok=True)


def stat(uri: str, settings: Settings | None = None) -> tuple[int, float] | None:
    """(size in bytes, modification time) of the object at ``uri``, or None when there is none."""
    settings = settings or get_settings()
    if is_remote(uri, settings):
        fs = _fs_for(uri)
        if not fs.exists(uri):
            return None
        info = fs.info(uri)
        mtime = info.get("mtime")
        return int(info.get("size") or 0), float(mtime) if isinstance(mtime, (int, float)) else 0.0
    path = local_path(uri, settings)
    if not path.is_file():
        return None
    st = path.stat()
    return st.st_size, st.st_mtime
