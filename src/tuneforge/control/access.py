"""Who owns which bucket, on a server with API keys (several tenants).

Every gs:// URI a client names is checked here before it is read, listed, inspected, trained on, deployed from or
written to (``storage.check_client_uri(..., access=...)``). A bucket, or a prefix of one, belongs to a project by,
in this order:

1. the operator's ``TUNEFORGE_BUCKET_ACCESS`` (``BUCKET[/PREFIX]=PROJECT[:read]|…``; the longest prefix that
   matches decides; a project without ``:read`` may read and write; the rest of a bucket named there with a
   prefix is nobody's);
2. tuneforge's own layout: ``gs://tuneforge-<project>/`` (a project's job outputs) and
   ``gs://tuneforge-files/<project>/`` (its uploads through the OpenAI files API);
3. the store: a bucket nobody owns becomes the project's that first writes to it (a dataset upload, a job's
   ``outputUri``), recorded in ``bucket_owners`` so it survives a restart.

A bucket nobody owns can be read by nobody. A refusal is the same 403 whether the object exists or not. Without API
keys (one tenant on loopback) nothing is checked and nothing is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from tuneforge.control.db import Store
from tuneforge.control.tables import BucketOwnerRow, utcnow
from tuneforge.errors import InvalidArgument, PermissionDenied
from tuneforge.settings import Settings

FILES_BUCKET = "tuneforge-files"  # gs://tuneforge-files/<project>/<file id>.<ext>: the OpenAI files API's uploads
OUTPUT_BUCKET_PREFIX = "tuneforge-"  # gs://tuneforge-<project>/: where a project's jobs write by default
SETTING = "TUNEFORGE_BUCKET_ACCESS"
URL_SETTING = "TUNEFORGE_TEACHER_URLS"


def default_output_bucket(project: str) -> str:
    return f"{OUTPUT_BUCKET_PREFIX}{project}"


@dataclass(frozen=True)
class Grant:
    """``project`` may use ``bucket``/``prefix``…: read only, or read and write."""

    bucket: str
    prefix: str  # "" for the whole bucket; else a folder path without slashes at either end
    grants: dict[str, bool]  # project -> may write

    def covers(self, bucket: str, path: str) -> bool:
        return bucket == self.bucket and (not self.prefix or path == self.prefix or path.startswith(self.prefix + "/"))


def parse_grants(spec: str) -> list[Grant]:
    """``TUNEFORGE_BUCKET_ACCESS``: comma-separated ``BUCKET[/PREFIX]=PROJECT[:read]|PROJECT…``."""
    grants = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        where, _, who = item.partition("=")
        bucket, _, prefix = where.strip().removeprefix("gs://").partition("/")
        projects: dict[str, bool] = {}
        for entry in (p.strip() for p in who.split("|")):
            name, _, mode = entry.partition(":")
            if not name or mode not in ("", "read", "write"):
                raise InvalidArgument(
                    f"{SETTING}: {item!r} is not BUCKET[/PREFIX]=PROJECT[:read]|PROJECT…; e.g. shared=a|b:read"
                )
            projects[name] = mode != "read"
        if not bucket or not projects:
            raise InvalidArgument(f"{SETTING}: {item!r} needs a bucket and at least one project (BUCKET=PROJECT)")
        grants.append(Grant(bucket, prefix.strip("/"), projects))
    return sorted(grants, key=lambda g: -len(g.prefix))  # the longest prefix decides


class BucketPolicy:
    """The server's rules; ``for_project`` gives the Access a request's project works with (None: no tenants)."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.enabled = any(key.strip() for key in settings.api_keys.split(","))  # as the API reads its keys
        self.grants = parse_grants(settings.bucket_access)
        self.teacher_urls = [p.strip() for p in settings.teacher_urls.split(",") if p.strip()]

    def check_teacher(self, reference: str, field: str) -> None:
        """With tenants, a teacher given as a URL must be one the operator allows: no request chooses where the
        server connects (its own loopback services, a cloud metadata address, another tenant's endpoint). A teacher
        named as a model or endpoint is not a URL and passes."""
        if not self.enabled or not reference.startswith(("http://", "https://")):
            return
        if not any(reference.startswith(prefix) for prefix in self.teacher_urls):
            raise PermissionDenied(
                f"{field}: this server calls only the teacher URLs its operator allows ({URL_SETTING}), and "
                f"{reference!r} is not one of them; name a model or endpoint of this project "
                "(projects/P/locations/L/models/ID or …/endpoints/ID), or ask the operator to allow the URL",
                param=field,
            )

    def for_project(self, project: str, *, claim: bool = True) -> ProjectAccess | None:
        """``project``'s access; ``claim=False`` (a preview) allows a write to a bucket nobody owns without recording
        the claim."""
        return ProjectAccess(self, project, claim) if self.enabled else None

    def owner(self, bucket: str, path: str) -> dict[str, bool] | None:
        """Who may use ``bucket``/``path`` (project -> may write), or None when nobody owns it yet."""
        for grant in self.grants:
            if grant.covers(bucket, path):
                return grant.grants
        if any(grant.bucket == bucket for grant in self.grants):
            return {}  # a bucket the operator configured: only the prefixes named are anyone's, nothing is claimed
        if bucket == FILES_BUCKET:
            first = path.split("/", 1)[0]
            return {first: True} if first else {}
        if bucket.startswith(OUTPUT_BUCKET_PREFIX):
            return {bucket[len(OUTPUT_BUCKET_PREFIX) :]: True}
        with self.store.session() as s:
            row = s.get(BucketOwnerRow, bucket)
        return {row.project: True} if row is not None else None

    def claim(self, bucket: str, project: str) -> dict[str, bool]:
        """Record ``project`` as the owner of a bucket nobody owned; whoever claimed it first keeps it."""
        try:
            with self.store.session() as s:
                s.add(BucketOwnerRow(bucket=bucket, project=project, create_time=utcnow()))
        except IntegrityError:  # another request claimed it in between
            pass
        with self.store.session() as s:
            row = s.get(BucketOwnerRow, bucket)
        return {row.project: True} if row is not None else {}


@dataclass(frozen=True)
class ProjectAccess:
    """One project's view of the buckets (``storage.Access``)."""

    policy: BucketPolicy
    project: str
    claims: bool = True

    def check(self, bucket: str, path: str, *, write: bool, uri: str, field: str) -> None:
        owners = self.policy.owner(bucket, path)
        if owners is None and write:
            owners = self.policy.claim(bucket, self.project) if self.claims else {self.project: True}
        allowed = (owners or {}).get(self.project)
        if allowed is None or (write and not allowed):
            verb = "write to" if write else "read"
            raise PermissionDenied(
                f"{field}: project {self.project!r} may not {verb} {uri}. A bucket belongs to the project that first "
                f"wrote to it (gs://{default_output_bucket(self.project)}/ is this project's own), or to the projects "
                f"the operator names in {SETTING}; use one of this project's buckets, or ask the operator for a grant",
                param=field,
            )
