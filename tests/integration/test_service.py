"""The service over real HTTP: bad input, quota, durability across restarts and killed workers, auth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from tests.integration.conftest import start_server, wait_for, write_dataset

BASE = "/v1/projects/p/locations/us-central1/tuningJobs"


def create(client, body, base=BASE):
    return client.post(base, content=json.dumps(body))


def gemini(uri="gs://b/train.jsonl", **spec):
    return {"baseModel": "gemini-1.5-flash-002", "supervisedTuningSpec": {"trainingDatasetUri": uri, **spec}}


def error(resp):
    body = resp.json()
    assert set(body) == {"error"}, body
    return body["error"]


def test_bad_input_is_a_clear_4xx_naming_the_field(sqlite_server):
    server = sqlite_server
    write_dataset(server.bucket / "b" / "train.jsonl")
    (server.bucket / "b" / "bad.jsonl").write_text('{"prompt": "a"}\n{"messages": [{"role": "bot", "content": "x"}]}\n')
    with server.client() as c:
        r = c.post(BASE, content="{not json")
        assert r.status_code == 400 and "not valid JSON" in error(r)["message"]
        r = create(c, {"baseModel": "llama-9", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl"}})
        assert (
            r.status_code == 404
            and error(r)["status"] == "NOT_FOUND"
            and "unknown model 'llama-9'" in error(r)["message"]
        )
        r = create(
            c,
            {
                "baseModel": "meta/llama3-2@llama-3.2-1b-instruct",
                "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl", "tuningMode": 2},
            },
        )
        assert r.status_code == 400 and "does not support PEFT_ADAPTER; it allows FULL" in error(r)["message"]
        r = create(c, gemini("gs://b/missing.jsonl"))
        assert r.status_code == 400 and "gs://b/missing.jsonl not found" in error(r)["message"]
        r = create(c, gemini("gs://b/bad.jsonl"))
        err = error(r)
        assert r.status_code == 400 and err["status"] == "INVALID_ARGUMENT"
        violations = err["details"][0]["fieldViolations"]
        assert [v["field"] for v in violations] == ["gs://b/bad.jsonl:1", "gs://b/bad.jsonl:2"]
        assert 'missing "completion"' in violations[0]["description"]
        r = create(c, gemini(hyperParameters={"epochCount": "two"}))
        assert r.status_code == 400 and "epochCount must be an integer" in error(r)["message"]
        r = create(c, gemini(hyperParameters={"adapterSize": 9}))
        assert r.status_code == 400 and "adapterSize must be one of" in error(r)["message"]
        r = create(c, {**gemini(), "bogus": 1})
        assert r.status_code == 400 and "unknown field(s) bogus" in error(r)["message"]
        r = create(
            c,
            {
                "baseModel": "gemini-1.5-flash-002",
                "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/x", "training_dataset_uri": "gs://b/y"},
            },
        )
        assert r.status_code == 400 and "given twice" in error(r)["message"]
        r = create(c, gemini(), base="/v1/projects/p/locations/mars/tuningJobs")
        assert r.status_code == 400 and "us-central1" in error(r)["message"]
        r = c.get(BASE + "/42")
        assert (
            r.status_code == 404
            and error(r)["message"] == "TuningJob projects/p/locations/us-central1/tuningJobs/42 not found."
        )
        r = c.get(BASE, params={"filter": "nonsense"})
        assert r.status_code == 400 and "filter" in error(r)["message"]
        assert c.get(BASE).json() == {"tuningJobs": []}


@pytest.mark.parametrize(
    "uri,message",
    [
        ("gs://b/../../etc/passwd", "'..' are not allowed"),
        ("gs://b/../secrets.jsonl", "'..' are not allowed"),
        ("/etc/passwd", "outside the bucket root"),
        ("file:///etc/passwd", "outside the bucket root"),
        ("train.jsonl", "outside the bucket root"),
        ("s3://b/train.jsonl", "use a gs://BUCKET/path URI"),
    ],
)
def test_uris_cannot_escape_the_bucket_root(shared_server, uri, message):
    with shared_server.client() as c:
        for body in (gemini(uri), {**gemini(), "outputUri": uri}, {**gemini(), "customBaseModel": uri}):
            r = create(c, body)
            assert r.status_code == 400 and message in error(r)["message"], (body, r.text)
        # A file path inside the bucket root is fine (and still has to exist).
        r = create(c, gemini(str(shared_server.bucket / "b" / "none.jsonl")))
        assert r.status_code == 400 and "not found" in error(r)["message"]


def test_symlink_out_of_the_bucket_root_is_refused(sqlite_server, tmp_path):
    server = sqlite_server
    secret = tmp_path / "secret.jsonl"
    write_dataset(secret)
    (server.bucket / "b").mkdir(parents=True, exist_ok=True)
    os.symlink(secret, server.bucket / "b" / "link.jsonl")
    with server.client() as c:
        r = create(c, gemini("gs://b/link.jsonl"))
        assert r.status_code == 400 and "outside the bucket root" in error(r)["message"]


def test_quota_answers_429_or_queues(tmp_path, database_url):
    home = tmp_path / "h"
    home.mkdir()
    write_dataset(home / "buckets" / "b" / "train.jsonl", n=64)
    srv = start_server(home, database_url, extra_env={"TUNEFORGE_WORKERS": "0"})
    try:
        with srv.client() as c:
            first = create(c, gemini(hyperParameters={"epochCount": "50"}))
            assert first.status_code == 200 and first.json()["state"] == "JOB_STATE_PENDING"
            r = create(c, gemini())
            assert r.status_code == 429 and error(r)["status"] == "RESOURCE_EXHAUSTED"
            other = create(c, gemini(), base="/v1/projects/other/locations/us-central1/tuningJobs")
            assert other.status_code == 200  # the quota is per project
    finally:
        srv.stop()
    srv = start_server(home, database_url, extra_env={"TUNEFORGE_WORKERS": "0", "TUNEFORGE_QUEUE_OVER_QUOTA": "1"})
    try:
        with srv.client() as c:
            r = create(c, gemini())
            assert r.status_code == 200 and r.json()["state"] == "JOB_STATE_QUEUED"
            assert len(c.get(BASE).json()["tuningJobs"]) == 2  # the job from before the restart is still there
    finally:
        srv.stop()


def test_restart_loses_no_job_metric_or_state(tmp_path, database_url):
    home = tmp_path / "h"
    home.mkdir()
    write_dataset(home / "buckets" / "b" / "train.jsonl")
    srv = start_server(home, database_url)
    with srv.client() as c:
        job = create(c, gemini(hyperParameters={"epochCount": "2"}, validationDatasetUri="gs://b/train.jsonl")).json()
        done = wait_for(
            lambda: (
                c.get("/v1/" + job["name"]).json()["state"] == "JOB_STATE_SUCCEEDED"
                and c.get("/v1/" + job["name"]).json()
            ),
            what="job success",
        )
        metrics = c.get("/v1/" + job["name"] + "/metrics").json()["metrics"]
    srv.stop()
    assert {m["name"] for m in metrics} >= {
        "train_total_loss",
        "train_fraction_of_correct_next_step_preds",
        "train_num_predictions",
        "eval_total_loss",
    }
    srv = start_server(home, database_url)
    try:
        with srv.client() as c:
            after = c.get("/v1/" + job["name"]).json()
            assert after == done
            assert c.get("/v1/" + job["name"] + "/metrics").json()["metrics"] == metrics
            assert (
                c.get("/v1/projects/p/locations/us-central1/models").json()["models"][0]["name"] + "@1"
                == after["tunedModel"]["model"]
            )
    finally:
        srv.stop()


def test_killed_worker_job_is_resumed_from_its_checkpoint(tmp_path, database_url):
    home = tmp_path / "h"
    home.mkdir()
    write_dataset(home / "buckets" / "b" / "train.jsonl", n=64)
    env_extra = {"TUNEFORGE_WORKERS": "0", "TUNEFORGE_HEARTBEAT_TIMEOUT_SECONDS": "3"}
    srv = start_server(home, database_url, extra_env=env_extra)
    tf = str(Path(sys.executable).with_name("tuneforge"))

    def worker():
        return subprocess.Popen(
            [tf, "worker"],
            env={**srv.env, **env_extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    try:
        with srv.client() as c:
            job = create(c, gemini(hyperParameters={"epochCount": "6", "batchSize": "8"})).json()
            name = "/v1/" + job["name"]
            w1 = worker()
            # Epochs are 8 steps: wait until the first epoch's checkpoint exists, then kill the worker outright.
            wait_for(
                lambda: (
                    c.get(name).json().get("state") == "JOB_STATE_RUNNING"
                    and list((home / "buckets").glob("tuneforge-p/tuningJobs/*/checkpoints/step-*/COMPLETE"))
                ),
                what="first checkpoint",
            )
            children = psutil.Process(w1.pid).children(recursive=True)
            os.kill(w1.pid, signal.SIGKILL)  # the worker alone, like a lost process: its training child dies with it
            w1.wait()
            _, alive = psutil.wait_procs(children, timeout=3)
            assert all(p.status() == psutil.STATUS_ZOMBIE for p in alive if p.is_running()), alive
            w2 = worker()
            try:
                final = wait_for(
                    lambda: (j := c.get(name).json())["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED") and j,
                    timeout=180,
                    what="job end after recovery",
                )
            finally:
                w2.terminate()
                w2.wait(timeout=30)
            assert final["state"] == "JOB_STATE_SUCCEEDED", final.get("error")
            steps = [m["step"] for m in c.get(name + "/metrics").json()["metrics"] if m["name"] == "train_total_loss"]
            assert steps == list(range(1, 49))  # every step once: resumed, not restarted, no duplicates
    finally:
        srv.stop()


def test_api_keys_scope_projects_and_the_sdk_sends_them(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    srv = start_server(home, f"sqlite:///{home / 'db.sqlite'}", extra_env={"TUNEFORGE_API_KEYS": "k1=p,k2"})
    try:
        with srv.client() as c:
            assert c.get(BASE).status_code == 401
            assert c.get(BASE, headers={"Authorization": "Bearer nope"}).status_code == 401
            assert c.get(BASE, headers={"Authorization": "Bearer k1"}).status_code == 200
            r = c.get("/v1/projects/q/locations/us-central1/tuningJobs", headers={"Authorization": "Bearer k1"})
            assert r.status_code == 403 and error(r)["status"] == "PERMISSION_DENIED"
            assert (
                c.get(
                    "/v1/projects/q/locations/us-central1/tuningJobs", headers={"Authorization": "Bearer k2"}
                ).status_code
                == 200
            )
        import google.oauth2.credentials
        import vertexai
        from vertexai.tuning import sft

        vertexai.init(
            project="p",
            location="us-central1",
            api_endpoint=srv.url,
            api_transport="rest",
            credentials=google.oauth2.credentials.Credentials(token="k1"),
        )
        assert list(sft.SupervisedTuningJob.list()) == []
    finally:
        srv.stop()


def test_serve_refuses_a_public_address_without_keys(tmp_path):
    tf = str(Path(sys.executable).with_name("tuneforge"))
    out = subprocess.run(
        [tf, "serve", "--host", "0.0.0.0"],
        env={**os.environ, "TUNEFORGE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "refusing to listen on 0.0.0.0 without API keys" in out.stdout + out.stderr


WRONG_VALUES = [None, 0, -3, 1.5, True, "", "x", [], ["a"], {}, {"a": 1}]
FIELDS = [
    ("baseModel",),
    ("tunedModelDisplayName",),
    ("labels",),
    ("description",),
    ("outputUri",),
    ("customBaseModel",),
    ("serviceAccount",),
    ("encryptionSpec",),
    ("supervisedTuningSpec",),
    ("supervisedTuningSpec", "trainingDatasetUri"),
    ("supervisedTuningSpec", "validationDatasetUri"),
    ("supervisedTuningSpec", "tuningMode"),
    ("supervisedTuningSpec", "hyperParameters"),
    ("supervisedTuningSpec", "hyperParameters", "epochCount"),
    ("supervisedTuningSpec", "hyperParameters", "learningRate"),
    ("supervisedTuningSpec", "hyperParameters", "learningRateMultiplier"),
    ("supervisedTuningSpec", "hyperParameters", "adapterSize"),
    ("supervisedTuningSpec", "hyperParameters", "batchSize"),
]


def test_wrong_types_anywhere_never_give_a_5xx(sqlite_server):
    """Every field of the create body, set to values of every JSON type: always a 2xx or a clear 4xx."""
    import copy

    write_dataset(sqlite_server.bucket / "b" / "train.jsonl")
    valid = {**gemini(hyperParameters={"epochCount": "1"}), "tunedModelDisplayName": "t", "labels": {"a": "b"}}
    statuses = set()
    with sqlite_server.client() as c:
        for path in FIELDS:
            for value in WRONG_VALUES:
                body = copy.deepcopy(valid)
                node = body
                for key in path[:-1]:
                    node = node.setdefault(key, {})
                node[path[-1]] = value
                r = create(c, body)
                statuses.add(r.status_code)
                assert r.status_code < 500, (path, value, r.text)
                if r.status_code >= 400:
                    assert error(r)["message"], (path, value)
                else:  # accepted: cancel it so the project stays under its quota of one active job
                    assert c.post("/v1/" + r.json()["name"] + ":cancel").status_code in (200, 400)
        for raw in ["", "null", "[]", "3", '"s"', "{", '{"a": }']:
            r = c.post(BASE, content=raw)
            assert r.status_code == 400, (raw, r.text)
    assert 400 in statuses


def test_resource_fields_are_recorded_and_echoed(sqlite_server):
    write_dataset(sqlite_server.bucket / "b" / "train.jsonl")
    body = {
        **gemini(hyperParameters={"epochCount": "1", "learningRateMultiplier": 2.0}),
        "tunedModelDisplayName": "t",
        "description": "mine",
        "labels": {"team": "a"},
        "serviceAccount": "sa@p.iam.gserviceaccount.com",
        "encryptionSpec": {"kmsKeyName": "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k"},
    }
    with sqlite_server.client() as c:
        job = create(c, body).json()
        got = c.get("/v1beta1/" + job["name"]).json()  # the same resource under every API version
        assert got["serviceAccount"] == body["serviceAccount"] and got["encryptionSpec"] == body["encryptionSpec"]
        assert got["description"].startswith("mine\ndev mode: gemini-1.5-flash-002 (closed model id) runs on")
        assert got["labels"] == {"team": "a", "tuneforge-dev-stand-in": "tiny-gemma3"}
        assert got["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": "1", "learningRateMultiplier": 2.0}
        assert got["outputUri"] == f"gs://tuneforge-p/tuningJobs/{job['name'].rsplit('/', 1)[1]}"
        assert "experiment" not in got and got["createTime"].endswith("Z")
        listed = c.get(BASE, params={"filter": 'labels.team="a" AND state!=JOB_STATE_FAILED'}).json()["tuningJobs"]
        assert [j["name"] for j in listed] == [job["name"]]
        assert c.get(BASE, params={"filter": 'labels.team="b"'}).json() == {"tuningJobs": []}
        c.post("/v1/" + job["name"] + ":cancel")
