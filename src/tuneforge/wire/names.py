"""Resource names: ``projects/{project}/locations/{location}/{collection}/{id}``, built and parsed here only."""

from __future__ import annotations

from dataclasses import dataclass

COLLECTIONS = ("tuningJobs", "pipelineJobs", "models", "endpoints", "tensorboards")


def parent(project: str, location: str) -> str:
    return f"projects/{project}/locations/{location}"


@dataclass(frozen=True)
class Name:
    """A parsed resource name. ``version`` is a model's ``@1`` suffix, when given."""

    project: str
    location: str
    collection: str
    id: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{parent(self.project, self.location)}/{self.collection}/{self.id}"

    @property
    def parent(self) -> str:
        return parent(self.project, self.location)

    @property
    def versioned(self) -> str:
        """The name with its version (``models/ID@1``: every model has exactly version 1)."""
        return f"{self}@{self.version or '1'}"


def name(collection: str, project: str, location: str, resource_id: str) -> str:
    return str(Name(project, location, collection, resource_id))


def parse(text: str, collections: tuple[str, ...] = COLLECTIONS) -> Name | None:
    """The parts of a full resource name of one of ``collections``; None for anything else."""
    parts = text.rstrip("/").split("/")
    if (
        len(parts) != 6
        or parts[0] != "projects"
        or parts[2] != "locations"
        or parts[4] not in collections
        or not all(parts)
    ):
        return None
    resource_id, _, version = parts[5].partition("@")
    return Name(parts[1], parts[3], parts[4], resource_id, version or None)


def resource_id(text: str, collection: str, project: str, location: str) -> str | None:
    """The id a reference names in ``projects/{project}/locations/{location}/{collection}``: a bare id, a full name or
    a short ``{collection}/ID``. None when it names another collection, project or location."""
    if "/" not in text:
        return text.split("@", 1)[0] or None
    if text.startswith(f"{collection}/") and text.count("/") == 1:
        return text.split("/", 1)[1].split("@", 1)[0] or None
    parsed = parse(text, (collection,))
    if parsed is None or (parsed.project, parsed.location) != (project, location):
        return None
    return parsed.id
