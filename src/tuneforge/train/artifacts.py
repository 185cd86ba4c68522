"""Artifact folders: the manifest of files with hashes, and where things go under an output URI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from tuneforge.catalog.model_folder import CONFIG, MANIFEST, final_dir

__all__ = [
    "CONFIG",
    "MANIFEST",
    "RunLayout",
    "replace_dir",
    "sha256",
    "verify_manifest",
    "write_json",
    "write_manifest",
]


class RunLayout:
    """Paths under a run's local output folder (the mapped ``output_uri``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def final(self) -> Path:  # what Vertex documents: <output_uri>/postprocess/node-0/checkpoints/final
        return final_dir(self.root)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def data_stats(self) -> Path:
        return self.root / "tuning_data_stats.json"

    @property
    def validation_report(self) -> Path:
        return self.root / "validation_report.json"

    def step_dir(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:07d}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path, **fields) -> dict:
    """Hash every file under ``folder`` into the manifest (written last: its presence = complete)."""
    folder = Path(folder)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        files[path.relative_to(folder).as_posix()] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    manifest = {**fields, "files": files}
    write_json(folder / MANIFEST, manifest)
    return manifest


def verify_manifest(folder: Path) -> list[str]:
    """Files that are missing or differ from the manifest (empty when the folder is intact)."""
    manifest = json.loads((Path(folder) / MANIFEST).read_text())
    bad = []
    for rel, meta in manifest["files"].items():
        path = Path(folder) / rel
        if not path.exists() or sha256(path) != meta["sha256"]:
            bad.append(rel)
    return bad


def write_json(path: Path, data) -> None:
    """Write atomically: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def replace_dir(src: Path, dest: Path) -> None:
    """Move a finished folder into place, replacing what was there."""
    dest = Path(dest)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
