"""Code-model tuning and distillation pipelines, run by the worker against a live server; the unmodified SDK drives
them with the air-gapped template opener (tuneforge.vertex_offline)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.integration.conftest import wait_for

TUNE = "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v3.0.0"
CHAT = "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-chat-model/v3.0.0"
DISTILL = "https://us-kfp.pkg.dev/ml-pipeline/distillation/distillation/v1.0.0"
BASE = "/v1/projects/my-project/locations/us-central1/pipelineJobs"


@pytest.fixture()
def vertex(server):
    import google.auth.credentials
    import vertexai

    from tuneforge import vertex_offline

    vertex_offline.install(server.url)  # template downloads and the bucket probe stay on this machine
    vertexai.init(project="my-project", location="us-central1", api_endpoint=server.url, api_transport="rest",
                  credentials=google.auth.credentials.AnonymousCredentials(), staging_bucket="gs://b/staging")
    for name in ("code_generation.jsonl", "code_generation_eval.jsonl", "codechat.jsonl", "distill_labeled.jsonl",
                 "distill_unlabeled.jsonl", "distill_eval.jsonl"):
        (server.bucket / "b").mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / name, server.bucket / "b" / name)
    yield server
    import os
    import urllib.request

    urllib.request.install_opener(None)
    os.environ.pop("STORAGE_EMULATOR_HOST", None)


def tasks_of(job: dict) -> dict:
    return {t["taskName"]: t for t in job["jobDetail"]["taskDetails"]}


def get_job(server, name: str) -> dict:
    with server.client() as c:
        return c.get(f"/v1/{name}").json()


def finished(server, name: str) -> dict:
    return wait_for(lambda: (j := get_job(server, name))["state"] in (
        "PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED") and j,
        timeout=240, what=f"{name} to finish")


def test_sdk_code_generation_tune_list_load_predict(vertex):
    from vertexai.language_models import CodeGenerationModel
    from vertexai.preview.language_models import TuningEvaluationSpec

    base = CodeGenerationModel.from_pretrained("code-bison@002")
    job = base.tune_model(training_data="gs://b/code_generation.jsonl", train_steps=6, tuning_job_location="us-central1",
                          tuned_model_location="us-central1", accelerator_type="GPU", model_display_name="my-coder",
                          tuning_evaluation_spec=TuningEvaluationSpec(evaluation_data="gs://b/code_generation_eval.jsonl",
                                                                      evaluation_interval=3, enable_early_stopping=False))
    tuned = job.get_tuned_model()  # waits for PIPELINE_STATE_SUCCEEDED, then finds the upload task's model
    resource = get_job(vertex, job._job.resource_name)
    assert resource["state"] == "PIPELINE_STATE_SUCCEEDED"
    tasks = tasks_of(resource)
    assert [t["taskName"] for t in resource["jobDetail"]["taskDetails"]] == [
        "tune-large-model", "validate-data", "tune", "evaluate", "upload-llm-model", "deploy-llm-model"]
    assert all(t["state"] == "SUCCEEDED" and t["startTime"] <= t["endTime"] for t in tasks.values())
    data = tasks["validate-data"]["execution"]["metadata"]
    # SPEC §3.6: 8 examples per step in us-central1; epochs = steps x batch size / examples = 6 x 8 / 12
    assert data["output:batch_size"] == 8 and data["output:train_examples"] == 12
    assert data["output:epochs"] == pytest.approx(4.0)
    assert data["output:evaluation_examples"] == 10
    tune_meta = tasks["tune"]["execution"]["metadata"]
    assert tune_meta["output:steps"] == 6 and "output:eval_total_loss" in tune_meta
    assert tune_meta["output:checkpoint_selection"] == "best"  # "default" with an evaluation set (SPEC §8 P2)
    assert 0.0 <= tasks["evaluate"]["execution"]["metadata"]["output:exact_match"] <= 1.0
    model_name = tasks["upload-llm-model"]["execution"]["metadata"]["output:model_resource_name"]
    # the registry: listed and loaded by the SDK through the base-model label
    assert base.list_tuned_model_names() == [model_name]
    loaded = CodeGenerationModel.get_tuned_model(model_name)
    endpoint = tasks["deploy-llm-model"]["execution"]["metadata"]["output:endpoint_resource_name"]
    assert loaded._endpoint_name == tuned._endpoint_name == endpoint
    answer = loaded.predict(prefix="def add(a, b):", max_output_tokens=8)
    assert isinstance(answer.text, str)
    # TensorBoard events and the evaluation predictions are where the job says
    out = vertex.bucket / "b" / "staging" / resource["name"].rsplit("/", 1)[-1]
    assert list((out / "tune" / "tensorboard").glob("events.out.tfevents.*"))
    assert len((out / "evaluation" / "predictions.jsonl").read_text().splitlines()) == 10


def test_code_chat_rest_with_default_context_and_sdk_chat(vertex):
    from vertexai.language_models import CodeChatModel

    body = {"displayName": "chat", "templateUri": CHAT, "runtimeConfig": {"gcsOutputDirectory": "gs://b/out",
            "parameterValues": {"project": "my-project", "location": "us-central1", "model_display_name": "go-chat",
                                "dataset_uri": "gs://b/codechat.jsonl", "large_model_reference": "codechat-bison@002",
                                "default_context": "You write Go.", "train_steps": "3", "learning_rate_multiplier": 2,
                                "accelerator_type": "TPU", "tensorboard_resource_id": "77"}}}
    with vertex.client() as c:
        job = c.post(BASE, params={"pipelineJobId": "tune-large-chat-model-1"}, content=json.dumps(body)).json()
    done = finished(vertex, job["name"])
    assert done["state"] == "PIPELINE_STATE_SUCCEEDED", done.get("error")
    data = tasks_of(done)["validate-data"]["execution"]["metadata"]
    # TPU runs in europe-west4, where 8k models take 24 examples per step (SPEC §3.6); 30 author fields in the file
    assert data["output:batch_size"] == 24 and data["output:compute_region"] == "europe-west4"
    assert data["output:author_fields"] == 30 and data["output:epochs"] == pytest.approx(3 * 24 / 12)
    assert "evaluate" not in tasks_of(done)
    out = vertex.bucket / "b" / "out" / "tune-large-chat-model-1" / "tune"
    config = json.loads((out / "tuneforge_config.json").read_text())
    assert config["serving"]["default_system"] == "You write Go."  # serving applies it too
    assert config["resolved"]["batch_size"] == 12  # capped at the 12 examples of the file
    assert list((vertex.home / "tensorboards" / "77").rglob("events.out.tfevents.*"))
    model_name = tasks_of(done)["upload-llm-model"]["execution"]["metadata"]["output:model_resource_name"]
    assert CodeChatModel.from_pretrained("codechat-bison@002").list_tuned_model_names() == [model_name]
    chat = CodeChatModel.get_tuned_model(model_name).start_chat(max_output_tokens=4)
    assert isinstance(chat.send_message("How do I read a file?").text, str)


def test_distillation_with_sdk_reuses_teacher_outputs(vertex):
    from vertexai.preview.language_models import (
        TextGenerationModel,
        TuningEvaluationSpec,
    )

    student = TextGenerationModel.from_pretrained("text-bison@002")
    job = student.distill_from(dataset="gs://b/distill_labeled.jsonl", teacher_model="text-unicorn@001", train_steps=3,
                               evaluation_spec=TuningEvaluationSpec(evaluation_data="gs://b/distill_eval.jsonl",
                                                                    evaluation_interval=2, enable_early_stopping=True,
                                                                    enable_checkpoint_selection=False))
    tuned = job.get_tuned_model()
    resource = get_job(vertex, job._job.resource_name)
    tasks = tasks_of(resource)
    assert list(tasks) == ["distillation", "validate-data", "teacher-labelling", "tune", "evaluate", "upload-model",
                           "deploy-model"]
    teacher = tasks["teacher-labelling"]["execution"]["metadata"]
    assert teacher["output:labelled"] == 12 and teacher["output:multitask_examples"] == 24
    assert teacher["output:teacher_reused"] is False
    model = tasks["upload-model"]["execution"]["metadata"]["output:model_resource_name"]
    from google.cloud import aiplatform

    # the student's id is the label the SDK needs (contract §5.4)
    labels = aiplatform.Model(model).labels
    assert labels["google-vertex-llm-tuning-base-model-id"] == "text-bison-002"
    assert labels["tuneforge-dev-stand-in"] == "tiny-gemma3"  # dev mode says what really ran
    config = json.loads(next((vertex.bucket / "b" / "staging").rglob("tune/tuneforge_config.json")).read_text())
    assert config["request"]["rationale_weight"] == 1.0 and config["serving"]["input_prefix"] == "predict: "
    assert isinstance(tuned.predict("Classify: my card was charged twice", max_output_tokens=4).text, str)


def test_cancel_stops_the_running_task(vertex):
    body = {"templateUri": TUNE, "runtimeConfig": {"parameterValues": {
        "project": "my-project", "dataset_uri": "gs://b/code_generation.jsonl", "large_model_reference": "code-bison@002",
        "train_steps": 100000}}}
    with vertex.client() as c:
        job = c.post(BASE, params={"pipelineJobId": "tune-large-model-cancel"}, content=json.dumps(body)).json()
        wait_for(lambda: tasks_of(get_job(vertex, job["name"]))["tune"]["state"] == "RUNNING", timeout=120,
                 what="tune to start")
        started = time.time()
        assert c.post(f"/v1/{job['name']}:cancel").json() == {}
        assert get_job(vertex, job["name"])["state"] in ("PIPELINE_STATE_CANCELLING", "PIPELINE_STATE_CANCELLED")
    done = finished(vertex, job["name"])
    assert done["state"] == "PIPELINE_STATE_CANCELLED" and done["error"]["code"] == 1
    assert time.time() - started < 30
    tasks = tasks_of(done)
    assert tasks["validate-data"]["state"] == "SUCCEEDED" and tasks["tune"]["state"] == "CANCELLED"
    assert tasks["upload-llm-model"]["state"] == "CANCELLED"


def test_bad_data_fails_in_validate_data_naming_line_field_and_fix(vertex):
    bucket = vertex.bucket / "b"
    lines = (bucket / "code_generation.jsonl").read_text().splitlines()
    (bucket / "nine.jsonl").write_text("\n".join(lines[:9]) + "\n")
    (bucket / "roles.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "a"},
                                                                  {"role": "assistant", "content": "b"}]}) + "\n")
    (bucket / "eval300.jsonl").write_text("\n".join(lines[:1] * 300) + "\n")
    cases = {
        "nine": ({"dataset_uri": "gs://b/nine.jsonl", "large_model_reference": "code-bison@002"}, TUNE,
                 "dataset_uri: 9 examples; code-model tuning needs at least 10 (500+ recommended)"),
        "roles": ({"dataset_uri": "gs://b/roles.jsonl", "large_model_reference": "codechat-bison@002"}, CHAT,
                  'line 1, messages[0]: code chat messages use "author" (user or assistant), not "role"; rename the key'),
        "eval": ({"dataset_uri": "gs://b/code_generation.jsonl", "evaluation_data_uri": "gs://b/eval300.jsonl",
                  "large_model_reference": "code-bison@002"}, TUNE,
                 "evaluation_data_uri: 300 examples; the evaluation set must have 10–250"),
    }
    names = {}
    with vertex.client() as c:
        for key, (params, template, _) in cases.items():
            body = {"templateUri": template, "runtimeConfig": {"parameterValues": {"project": "my-project", **params}}}
            r = c.post(BASE, params={"pipelineJobId": f"bad-{key}"}, content=json.dumps(body))
            assert r.status_code == 200, r.text
            names[key] = r.json()["name"]
    for key, (_, _, message) in cases.items():
        done = finished(vertex, names[key])
        assert done["state"] == "PIPELINE_STATE_FAILED" and done["error"]["code"] == 3, done
        assert message in done["error"]["message"]
        tasks = tasks_of(done)
        assert tasks["validate-data"]["state"] == "FAILED" and message in tasks["validate-data"]["error"]["message"]
        assert tasks["tune"]["state"] == "NOT_TRIGGERED"


def test_cli_pipelines_and_distill_with_an_endpoint_teacher(vertex):
    import subprocess

    from tests.integration.test_cli_server import tf
    from tuneforge.catalog.weights import materialize
    from tuneforge.settings import Settings

    teacher = materialize("builtin:tiny-llama", Settings(home=vertex.home))
    shutil.copytree(teacher, vertex.bucket / "b" / "teacher")
    url = ("--server", vertex.url, "--project", "my-project")
    deployed = tf("deploy", "gs://b/teacher", *url)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    endpoint = deployed.stdout.strip()
    out = tf("distill", "--teacher", endpoint, "--student", "text-bison@002", "--train", "gs://b/distill_labeled.jsonl",
             "--eval", "gs://b/distill_eval.jsonl", "--steps", "2", *url)
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
    local = subprocess.run([sys_tf(), "distill", "--teacher", str(teacher), "--student", "tiny-llama", "--train",
                            str(vertex.bucket / "b" / "distill_labeled.jsonl"), "--steps", "2", "--mode", "full",
                            "--output-uri", str(vertex.home / "local-distill"), "--device", "cpu"],
                           capture_output=True, text=True, timeout=300, env={**vertex.env, "COLUMNS": "200"})
    assert local.returncode == 0, local.stdout + local.stderr
    assert "predict/explain examples" in local.stdout
    final = vertex.home / "local-distill" / "postprocess" / "node-0" / "checkpoints" / "final"
    assert json.loads((final / "tuneforge_config.json").read_text())["serving"]["input_prefix"] == "predict: "


def sys_tf() -> str:
    import sys

    return str(Path(sys.executable).with_name("tuneforge"))


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
        return subprocess.Popen([sys_tf(), "worker"], env={**srv.env, **env_extra}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    body = {"templateUri": TUNE, "runtimeConfig": {"gcsOutputDirectory": "gs://b/out", "parameterValues": {
        "project": "my-project", "dataset_uri": "gs://b/code.jsonl", "large_model_reference": "code-bison@002",
        "train_steps": 16}}}
    try:
        with srv.client() as c:
            job = c.post(BASE, params={"pipelineJobId": "tune-large-model-killed"}, content=json.dumps(body)).json()
            w1 = worker()
            # 12 examples, batch 8: a checkpoint every 2 steps. Kill the worker and its child once one exists.
            wait_for(lambda: list((home / "buckets" / "b" / "out").glob("*/tune/checkpoints/step-*/COMPLETE")),
                     timeout=120, what="a checkpoint")
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
