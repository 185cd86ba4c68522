"""A FULL tuning job on a server whose worker runs each job over two processes (FSDP2; gloo on this CPU machine)."""

import json
from pathlib import Path

from tests.integration.conftest import start_server, wait_for, write_dataset

BASE = "/v1/projects/p/locations/us-central1/tuningJobs"


def _rank_processes() -> list[str]:
    """Child ranks (``python -m tuneforge.train.launch``) still running on this machine."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tuneforge.train.launch" in cmd:
            found.append(proc.name)
    return found


def test_a_full_job_runs_sharded_over_two_processes_and_reports_like_one(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write_dataset(home / "buckets" / "b" / "train.jsonl", n=24)
    srv = start_server(
        home,
        f"sqlite:///{home / 'tuneforge.db'}",
        extra_env={"TUNEFORGE_PROCESSES_PER_JOB": "2", "TUNEFORGE_AUTO_DEPLOY": "0"},
    )
    try:
        with srv.client() as c:
            body = {
                "baseModel": "meta/llama3-2@llama-3.2-1b-instruct",  # FULL only; dev mode: its tiny stand-in
                "supervisedTuningSpec": {
                    "trainingDatasetUri": "gs://b/train.jsonl",
                    "hyperParameters": {"epochCount": "2"},
                },
            }
            r = c.post(BASE, json=body)
            assert r.status_code == 200, r.text
            name = "/v1/" + r.json()["name"]
            job = wait_for(
                lambda: (j := c.get(name).json())["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED") and j,
                timeout=240,
                what="the sharded job to finish",
            )
            assert job["state"] == "JOB_STATE_SUCCEEDED", job.get("error")
            metrics = c.get(name + "/metrics").json()["metrics"]
            # Cancelling a sharded job: rank 0 sees the request, every rank stops at the same step, none lingers.
            r = c.post(
                BASE,
                json={
                    **body,
                    "supervisedTuningSpec": {**body["supervisedTuningSpec"], "hyperParameters": {"epochCount": "200"}},
                },
            )
            cancelled = "/v1/" + r.json()["name"]
            wait_for(
                lambda: (
                    c.get(cancelled).json().get("state") == "JOB_STATE_RUNNING"
                    and any(m["name"] == "train_total_loss" for m in c.get(cancelled + "/metrics").json()["metrics"])
                ),
                timeout=120,
                what="the second job to train",
            )
            assert c.post(cancelled + ":cancel").status_code == 200
            final = wait_for(
                lambda: (
                    (j := c.get(cancelled).json())["state"]
                    in ("JOB_STATE_CANCELLED", "JOB_STATE_FAILED", "JOB_STATE_SUCCEEDED")
                    and j
                ),
                timeout=120,
                what="the cancelled job to end",
            )
            assert final["state"] == "JOB_STATE_CANCELLED", final
            wait_for(lambda: not _rank_processes(), timeout=30, what="the child ranks to exit")
        steps = sorted({m["step"] for m in metrics if m["name"] == "train_total_loss"})
        assert steps and steps == list(range(1, steps[-1] + 1))  # rank 0 reported every step, once
        config = json.loads(next((home / "buckets").rglob("tuneforge_config.json")).read_text())
        assert config["resolved"]["processes"] == 2
        final = next((home / "buckets").rglob("postprocess/node-0/checkpoints/final"))
        assert (final / "model.safetensors").exists() and (final / "tuneforge_manifest.json").exists()
    finally:
        srv.stop()
