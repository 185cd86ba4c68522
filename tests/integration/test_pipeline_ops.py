"""Pipeline jobs: bad data, the CLI (pipelines list/get/cancel, distill) and a killed worker. (A second file so the
two pytest workers share the pipeline tests.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES
from tests.integration.conftest import wait_for
from tests.integration.test_pipelines import (
    BASE,
    CHAT,
    TUNE,
    finished,
    get_job,
    tasks_of,
)


def test_bad_data_fails_in_validate_data_naming_line_field_and_fix(pipeline_server):
    bucket = pipeline_server.bucket / "b"
    lines = (bucket / "code_generation.jsonl").read_text().splitlines()
    (bucket / "nine.jsonl").write_text("\n".join(lines[:9]) + "\n")
    (bucket / "roles.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}) + "\n"
    )
    (bucket / "eval300.jsonl").write_text("\n".join(lines[:1] * 300) + "\n")
    cases = {
        "nine": (
            {"dataset_uri": "gs://b/nine.jsonl", "large_model_reference": "code-bison@002"},
            TUNE,
            "dataset_uri: 9 examples; code-model tuning needs at least 10 (500+ recommended)",
        ),
        "roles": (
            {"dataset_uri": "gs://b/roles.jsonl", "large_model_reference": "codechat-bison@002"},
            CHAT,
            'line 1, messages[0]: code chat messages use "author" (user or assistant), not "role"; rename the key',
        ),
        "eval": (
            {
                "dataset_uri": "gs://b/code_generation.jsonl",
                "evaluation_data_uri": "gs://b/eval300.jsonl",
                "large_model_reference": "code-bison@002",
            },
            TUNE,
            "evaluation_data_uri: 300 examples; the evaluation set must have 10–250",
        ),
    }
    names = {}
    with pipeline_server.client() as c:
        for key, (params, template, _) in cases.items():
            body = {"templateUri": template, "runtimeConfig": {"parameterValues": {"project": "my-project", **params}}}
            r = c.post(BASE, params={"pipelineJobId": f"bad-{key}"}, content=json.dumps(body))
            assert r.status_code == 200, r.text
            names[key] = r.json()["name"]
    for key, (_, _, message) in cases.items():
        done = finished(pipeline_server, names[key])
        assert done["state"] == "PIPELINE_STATE_FAILED" and done["error"]["code"] == 3, done
        assert message in done["error"]["message"]
        tasks = tasks_of(done)
        assert tasks["validate-data"]["state"] == "FAILED" and message in tasks["validate-data"]["error"]["message"]
        assert tasks["tune"]["state"] == "NOT_TRIGGERED"


def test_cli_pipelines_and_distill_with_an_endpoint_teacher(pipeline_server):
    import subprocess

    from tests.integration.test_cli_server import tf

    from tuneforge.catalog.weights import materialize
    from tuneforge.settings import Settings

    teacher = materialize("builtin:tiny-llama", Settings(home=pipeline_server.home))
    shutil.copytree(teacher, pipeline_server.bucket / "b" / "teacher")
    url = ("--server", pipeline_server.url, "--project", "my-project")
    deployed = tf("deploy", "gs://b/teacher", *url)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    endpoint = deployed.stdout.strip()
    out = tf(
        "distill",
        "--teacher",
        endpoint,
        "--student",
        "text-bison@002",
        "--train",
        "gs://b/distill_labeled.jsonl",
        "--eval",
        "gs://b/distill_eval.jsonl",
        "--steps",
        "2",
        *url,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PIPELINE_STATE_SUCCEEDED" in out.stdout and "teacher-labelling" in out.stdout
    job = out.stdout.split("pipelineJobs/")[1].split()[0]
    listed = tf("pipelines", "list", *url)
    assert listed.returncode == 0 and job in listed.stdout and "SUCCEEDED" in listed.stdout
    shown = tf("pipelines", "get", job, *url)
    assert shown.returncode == 0 and "upload-model" in shown.stdout and "model_resource_name=" in shown.stdout
    resource = json.loads(tf("pipelines", "get", job, "--json", *url).stdout)
    teacher_task = tasks_of(resource)["teacher-labelling"]["execution"]["metadata"]
    assert teacher_task["output:teacher"] == endpoint and teacher_task["output:labelled"] == 12
    # one predict line per example, one explain line per non-empty rationale (a random teacher may say nothing)
    assert teacher_task["output:multitask_examples"] == 12 + teacher_task["output:rationales"]
    again = tf("pipelines", "cancel", job, *url)
    assert again.returncode == 1 and "cannot be cancelled" in again.stdout + again.stderr
    # a local run: the teacher is a model folder, the student trains here
    local = subprocess.run(
        [
            sys_tf(),
            "distill",
            "--teacher",
            str(teacher),
            "--student",
            "tiny-llama",
            "--train",
            str(pipeline_server.bucket / "b" / "distill_labeled.jsonl"),
            "--steps",
            "2",
            "--mode",
            "full",
            "--output-uri",
            str(pipeline_server.home / "local-distill"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**pipeline_server.env, "COLUMNS": "200"},
    )
    assert local.returncode == 0, local.stdout + local.stderr
    assert "predict/explain examples" in local.stdout
    final = pipeline_server.home / "local-distill" / "postprocess" / "node-0" / "checkpoints" / "final"
    assert json.loads((final / "tuneforge_config.json").read_text())["serving"]["input_prefix"] == "predict: "


def sys_tf() -> str:
    import sys

    return str(Path(sys.executable).with_name("tuneforge"))


@pytest.mark.slow  # about 2.5 minutes on 2 cores; the recovery mechanism itself is in make test (tuning jobs)
def test_killed_worker_pipeline_resumes_at_its_task_and_checkpoint(tmp_path, database_url):
    import os
    import signal
    import subprocess

    from tests.integration.conftest import start_server

    home = tmp_path / "h"
    (home / "buckets" / "b").mkdir(parents=True)
    shutil.copy(EXAMPLES / "code_generation.jsonl", home / "buckets" / "b" / "code.jsonl")
    env_extra = {"TUNEFORGE_WORKERS": "0", "TUNEFORGE_HEARTBEAT_TIMEOUT_SECONDS": "3"}
    srv = start_server(home, database_url, extra_env=env_extra)

    def worker():
        return subprocess.Popen(
            [sys_tf(), "worker"],
            env={**srv.env, **env_extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    body = {
        "templateUri": TUNE,
        "runtimeConfig": {
            "gcsOutputDirectory": "gs://b/out",
            "parameterValues": {
                "project": "my-project",
                "dataset_uri": "gs://b/code.jsonl",
                "large_model_reference": "code-bison@002",
                "train_steps": 16,
            },
        },
    }
    try:
        with srv.client() as c:
            job = c.post(BASE, params={"pipelineJobId": "tune-large-model-killed"}, content=json.dumps(body)).json()
            w1 = worker()
            # 12 examples, batch 8: a checkpoint every 2 steps. Kill the worker and its child once one exists.
            wait_for(
                lambda: list((home / "buckets" / "b" / "out").glob("*/tune/checkpoints/step-*/COMPLETE")),
                timeout=120,
                what="a checkpoint",
            )
            before = tasks_of(get_job(srv, job["name"]))
            os.killpg(w1.pid, signal.SIGKILL)
            w1.wait()
            w2 = worker()
            try:
                done = finished(srv, job["name"])
            finally:
                w2.terminate()
                w2.wait(timeout=30)
    finally:
        srv.stop()
    assert done["state"] == "PIPELINE_STATE_SUCCEEDED", done.get("error")
    tasks = tasks_of(done)
    assert tasks["validate-data"] == before["validate-data"]  # finished tasks are not run again
    tune = tasks["tune"]["execution"]["metadata"]
    assert tune["output:steps"] == 16 and tune["output:resumed_from_step"] >= 2  # resumed, not restarted
