"""`tuneforge tune --server`, `tuneforge jobs …` against a live server; claim safety between workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.integration.conftest import add_pending_jobs, write_dataset

TF = str(Path(sys.executable).with_name("tuneforge"))


def tf(*args, env=None, timeout=300):
    return subprocess.run(
        [TF, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_tune_server_in_a_log_shows_every_step_speed_and_eval_accuracy(sqlite_server):
    write_dataset(sqlite_server.bucket / "b" / "train.jsonl", n=16)
    write_dataset(sqlite_server.bucket / "b" / "val.jsonl", n=8, seed=1)
    out = tf(
        "tune",
        "--server",
        sqlite_server.url,
        "--project",
        "logs",
        "--model",
        "tiny-llama",
        "--mode",
        "full",
        "--train",
        "gs://b/train.jsonl",
        "--validation",
        "gs://b/val.jsonl",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--output-uri",
        "gs://b/logs",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    steps = [line for line in out.stdout.splitlines() if line.startswith("step ")]
    assert steps and steps[-1].startswith("step 2/2"), out.stdout
    assert all(" tok/s" in line and " - tok/s" not in line for line in steps), out.stdout  # a value, not "-"
    assert "eval token accuracy" in out.stdout
    empty = tf("jobs", "list", "--server", sqlite_server.url, "--project", "nobody")
    assert empty.returncode == 0 and "no tuning jobs in project nobody, location us-central1" in empty.stderr


def test_tune_with_server_and_jobs_commands(sqlite_server):
    write_dataset(sqlite_server.bucket / "b" / "train.jsonl")
    out = tf(
        "tune",
        "--server",
        sqlite_server.url,
        "--project",
        "p",
        "--model",
        "tiny-qwen3",
        "--train",
        "gs://b/train.jsonl",
        "--mode",
        "lora",
        "--adapter-size",
        "2",
        "--epochs",
        "1",
        "--output-uri",
        "gs://b/o",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        "submitted projects/p/locations/us-central1/tuningJobs/" in out.stdout and "JOB_STATE_SUCCEEDED" in out.stdout
    )
    job_id = out.stdout.split("tuningJobs/")[1].split()[0]
    listed = tf("jobs", "list", "--server", sqlite_server.url, "--project", "p")
    assert listed.returncode == 0 and job_id in listed.stdout and "SUCCEEDED" in listed.stdout
    got = json.loads(tf("jobs", "get", job_id, "--server", sqlite_server.url, "--project", "p").stdout)
    assert got["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_TWO"
    assert got["tunedModel"]["model"].endswith("@1")
    again = tf("jobs", "cancel", job_id, "--server", sqlite_server.url, "--project", "p")
    assert again.returncode == 1 and "cannot be cancelled" in again.stderr + again.stdout
    bad = tf(
        "tune",
        "--server",
        sqlite_server.url,
        "--model",
        "nope",
        "--train",
        "gs://b/train.jsonl",
        "--output-uri",
        "gs://b/x",
    )
    assert bad.returncode == 1 and "404 NOT_FOUND" in bad.stderr + bad.stdout

    # deploy, predict and chat from the command line
    url = ("--server", sqlite_server.url, "--project", "p")
    deployed = tf(
        "deploy",
        got["tunedModel"]["model"].split("@")[0],
        "--machine-type",
        "g2-standard-12",
        "--accelerator-type",
        "NVIDIA_L4",
        *url,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    endpoint = deployed.stdout.strip()
    assert endpoint.startswith("projects/p/locations/us-central1/endpoints/")
    assert endpoint != got["tunedModel"]["endpoint"]  # the job's own endpoint is another one
    for target in (endpoint, got["tunedModel"]["endpoint"].rsplit("/", 1)[-1]):
        said = tf("predict", target, "hello", "--max-tokens", "4", "--temperature", "0", *url)
        assert said.returncode == 0, said.stdout + said.stderr
    talk = subprocess.run(
        [TF, "chat", endpoint, "--max-tokens", "4", *url],
        input="hi\nagain\n\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert talk.returncode == 0 and talk.stdout.count("\n") >= 2, talk.stdout + talk.stderr
    bad = tf("predict", "404", "hello", *url)
    assert bad.returncode == 1 and "404 NOT_FOUND" in bad.stderr + bad.stdout


def test_two_workers_never_claim_the_same_job(every_database_url, tmp_path):
    database_url = every_database_url
    from sqlalchemy import select

    from tuneforge.control import states
    from tuneforge.control.db import Store
    from tuneforge.control.tables import TuningJobRow
    from tuneforge.settings import Settings
    from tuneforge.worker.worker import Worker

    settings = Settings(home=tmp_path, max_running_jobs_per_project=1000)
    store = Store(database_url)
    add_pending_jobs(store, 40)
    claimed: dict[str, list[str]] = {"a": [], "b": [], "c": []}

    def claim_all(name):
        w = Worker(Store(database_url, migrate=False), settings, worker_id=name)
        while (job := w.claim()) is not None:
            claimed[name].append(job)

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [j for jobs in claimed.values() for j in jobs]
    assert len(everything) == 40 and len(set(everything)) == 40
    with store.session() as s:
        rows = s.scalars(select(TuningJobRow)).all()
        assert all(r.state == states.RUNNING and r.attempts == 1 for r in rows)
        assert {r.worker_id for r in rows} <= set(claimed)


def test_tune_server_preference_tuning_shows_reward_accuracy(sqlite_server):
    from tuneforge.train.preference_task import preference_line, write_lines

    pairs = [preference_line(s) for s in ("abc", "kite", "moon", "xyz", "road", "lamp")]
    write_lines(sqlite_server.bucket / "b" / "pairs.jsonl", pairs)
    out = tf(
        "tune", "--server", sqlite_server.url, "--project", "pref", "--model", "tiny-llama", "--method", "preference",
        "--beta", "0.2", "--train", "gs://b/pairs.jsonl", "--validation", "gs://b/pairs.jsonl", "--epochs", "1",
        "--output-uri", "gs://b/pref",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "eval reward accuracy" in out.stdout and "JOB_STATE_SUCCEEDED" in out.stdout, out.stdout
    job = json.loads(tf("jobs", "list", "--server", sqlite_server.url, "--project", "pref", "--json").stdout)[0]
    assert job["preferenceOptimizationSpec"]["hyperParameters"]["beta"] == 0.2


def test_a_job_whose_worker_is_lost_while_pausing_is_paused(every_database_url, tmp_path):
    """Recovery settles a stopped run as it was asked: paused (its attempt given back: a pause is no crash), cancelled
    when a cancel came too, back in the queue when neither was asked; a row the child already settled is left alone."""
    from datetime import timedelta

    from tuneforge.control import states
    from tuneforge.control.db import Store
    from tuneforge.control.tables import TuningJobRow, utcnow
    from tuneforge.settings import Settings
    from tuneforge.worker.worker import Worker

    store = Store(every_database_url)
    stale = utcnow() - timedelta(hours=1)
    asked = {"pausing": (False, True), "both": (True, True), "neither": (False, False)}
    with store.session() as s:
        for i, (cancel, pause) in enumerate(asked.values()):
            s.add(
                TuningJobRow(
                    id=str(10**17 + i), project="p", location="us-central1", state=states.RUNNING, resource={},
                    config={}, labels={}, display_name="", base_model="x", create_time=utcnow(), update_time=utcnow(),
                    cancel_requested=cancel, pause_requested=pause, attempts=1, worker_id="lost", heartbeat_time=stale,
                )
            )  # fmt: skip
    worker = Worker(Store(every_database_url, migrate=False), Settings(home=tmp_path), worker_id="w")
    worker.recover_stale()
    with store.session() as s:
        rows = {name: s.get_one(TuningJobRow, str(10**17 + i)) for i, name in enumerate(asked)}
        assert (rows["pausing"].state, rows["pausing"].attempts, rows["pausing"].pause_requested) == (
            states.PAUSED, 0, False
        )  # fmt: skip
        assert rows["both"].state == states.CANCELLED and not rows["both"].pause_requested
        assert rows["neither"].state == states.PENDING and rows["neither"].attempts == 1
        rows["pausing"].worker_id = "w"  # as if this worker's child had paused it and exited
    worker._after_exit(worker.kinds[0], str(10**17), 0)
    with store.session() as s:
        assert s.get_one(TuningJobRow, str(10**17)).state == states.PAUSED
