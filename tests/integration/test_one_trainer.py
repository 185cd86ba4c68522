"""A job has one trainer: a training child dies with the server that started it (kill -9), so nothing trains or
writes while no server owns the job; SIGTERM stops the server within seconds, its child saving a checkpoint first, and
the job goes back to the queue to resume from it."""

from __future__ import annotations

import signal
import sqlite3
import time

import psutil
from tests.integration.conftest import start_server, wait_for, write_dataset

BASE = "/v1/projects/p/locations/us-central1/tuningJobs"
JOB = {
    "baseModel": "tiny-llama",
    "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://b/train.jsonl",
        "hyperParameters": {"epochCount": "400", "batchSize": "4"},  # far longer than the test waits
    },
}


def _running(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write_dataset(home / "buckets" / "b" / "train.jsonl", n=16)
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}")
    with srv.client() as c:
        created = c.post(BASE, json=JOB)
        assert created.status_code == 200, created.text
        name = "/v1/" + created.json()["name"]
        wait_for(lambda: c.get(name + "/metrics").json().get("metrics"), timeout=120, what="the first step")
    children = psutil.Process(srv.process.pid).children(recursive=True)
    assert children, "the job trains in a child process"
    return srv, name, children


def _alive(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running after ``timeout`` (a zombie, dead but not yet reaped by init, is not)."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _metrics(srv) -> int:
    with sqlite3.connect(srv.home / "tuneforge.db") as db:
        return db.execute("SELECT count(*) FROM job_metrics").fetchone()[0]


def _checkpoints(srv) -> list[str]:
    return sorted(p.parent.name for p in srv.bucket.glob("tuneforge-p/tuningJobs/*/checkpoints/step-*/COMPLETE"))


def test_a_training_child_dies_with_its_server(tmp_path):
    srv, _, children = _running(tmp_path)
    srv.process.send_signal(signal.SIGKILL)
    srv.process.wait()
    assert not _alive(children, timeout=3), "children outlived the server"
    written, saved = _metrics(srv), _checkpoints(srv)
    time.sleep(1.5)
    assert (_metrics(srv), _checkpoints(srv)) == (written, saved)  # nothing trains or writes with no server


def test_sigterm_stops_the_server_in_seconds_and_the_job_resumes_from_its_checkpoint(tmp_path):
    srv, _, children = _running(tmp_path)
    before = _checkpoints(srv)
    started = time.monotonic()
    srv.process.send_signal(signal.SIGTERM)
    srv.process.wait(timeout=30)
    took = time.monotonic() - started
    assert took < 15, f"the server took {took:.1f} s to stop"
    assert not _alive(children, timeout=1)
    with sqlite3.connect(srv.home / "tuneforge.db") as db:
        state, worker = db.execute("SELECT state, worker_id FROM tuning_jobs WHERE project = 'p'").fetchone()
        events = [m for (m,) in db.execute("SELECT message FROM job_events ORDER BY id")]
    assert state == "JOB_STATE_PENDING" and worker is None, state
    saved = _checkpoints(srv)
    assert saved and saved != before, "the child saved a checkpoint as it stopped"
    assert any("back in the queue" in m for m in events), events
