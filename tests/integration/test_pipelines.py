"""Code-model tuning and distillation pipelines, run by the worker against a live server; the unmodified SDK drives
them with the air-gapped template opener (tuneforge.vertex_offline)."""

from __future__ import annotations

import json
import time

import pytest
from tests.integration.conftest import wait_for

TUNE = "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v3.0.0"
CHAT = "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-chat-model/v3.0.0"
DISTILL = "https://us-kfp.pkg.dev/ml-pipeline/distillation/distillation/v1.0.0"
BASE = "/v1/projects/my-project/locations/us-central1/pipelineJobs"


def tasks_of(job: dict) -> dict:
    return {t["taskName"]: t for t in job["jobDetail"]["taskDetails"]}


def get_job(server, name: str) -> dict:
    with server.client() as c:
        return c.get(f"/v1/{name}").json()


def finished(server, name: str) -> dict:
    return wait_for(
        lambda: (
            (j := get_job(server, name))["state"]
            in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED")
            and j
        ),
        timeout=240,
        what=f"{name} to finish",
    )


def test_sdk_code_generation_tune_list_load_predict(pipeline_server):
    from vertexai.language_models import CodeGenerationModel
    from vertexai.preview.language_models import TuningEvaluationSpec

    base = CodeGenerationModel.from_pretrained("code-bison@002")
    job = base.tune_model(
        training_data="gs://b/code_generation.jsonl",
        train_steps=6,
        tuning_job_location="us-central1",
        tuned_model_location="us-central1",
        accelerator_type="GPU",
        model_display_name="my-coder",
        tuning_evaluation_spec=TuningEvaluationSpec(
            evaluation_data="gs://b/code_generation_eval.jsonl", evaluation_interval=3, enable_early_stopping=False
        ),
    )
    tuned = job.get_tuned_model()  # waits for PIPELINE_STATE_SUCCEEDED, then finds the upload task's model
    resource = get_job(pipeline_server, job._job.resource_name)
    assert resource["state"] == "PIPELINE_STATE_SUCCEEDED"
    tasks = tasks_of(resource)
    assert [t["taskName"] for t in resource["jobDetail"]["taskDetails"]] == [
        "tune-large-model",
        "validate-data",
        "tune",
        "evaluate",
        "upload-llm-model",
        "deploy-llm-model",
    ]
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
    out = pipeline_server.bucket / "b" / "staging" / resource["name"].rsplit("/", 1)[-1]
    assert list((out / "tune" / "tensorboard").glob("events.out.tfevents.*"))
    assert len((out / "evaluation" / "predictions.jsonl").read_text().splitlines()) == 10


def test_code_chat_rest_with_default_context_and_sdk_chat(pipeline_server):
    from vertexai.language_models import CodeChatModel

    body = {
        "displayName": "chat",
        "templateUri": CHAT,
        "runtimeConfig": {
            "gcsOutputDirectory": "gs://b/out",
            "parameterValues": {
                "project": "my-project",
                "location": "us-central1",
                "model_display_name": "go-chat",
                "dataset_uri": "gs://b/codechat.jsonl",
                "large_model_reference": "codechat-bison@002",
                "default_context": "You write Go.",
                "train_steps": "3",
                "learning_rate_multiplier": 2,
                "accelerator_type": "TPU",
                "tensorboard_resource_id": "77",
            },
        },
    }
    with pipeline_server.client() as c:
        job = c.post(BASE, params={"pipelineJobId": "tune-large-chat-model-1"}, content=json.dumps(body)).json()
    done = finished(pipeline_server, job["name"])
    assert done["state"] == "PIPELINE_STATE_SUCCEEDED", done.get("error")
    data = tasks_of(done)["validate-data"]["execution"]["metadata"]
    # TPU runs in europe-west4, where 8k models take 24 examples per step (SPEC §3.6); 30 author fields in the file
    assert data["output:batch_size"] == 24 and data["output:compute_region"] == "europe-west4"
    assert data["output:author_fields"] == 30 and data["output:epochs"] == pytest.approx(3 * 24 / 12)
    assert "evaluate" not in tasks_of(done)
    out = pipeline_server.bucket / "b" / "out" / "tune-large-chat-model-1" / "tune"
    config = json.loads((out / "tuneforge_config.json").read_text())
    assert config["serving"]["default_system"] == "You write Go."  # serving applies it too
    assert config["resolved"]["batch_size"] == 12  # capped at the 12 examples of the file
    assert list((pipeline_server.home / "tensorboards" / "77").rglob("events.out.tfevents.*"))
    model_name = tasks_of(done)["upload-llm-model"]["execution"]["metadata"]["output:model_resource_name"]
    assert CodeChatModel.from_pretrained("codechat-bison@002").list_tuned_model_names() == [model_name]
    chat = CodeChatModel.get_tuned_model(model_name).start_chat(max_output_tokens=4)
    assert isinstance(chat.send_message("How do I read a file?").text, str)


def test_distillation_with_sdk_reuses_teacher_outputs(pipeline_server):
    from vertexai.preview.language_models import (
        TextGenerationModel,
        TuningEvaluationSpec,
    )

    student = TextGenerationModel.from_pretrained("text-bison@002")
    job = student.distill_from(
        dataset="gs://b/distill_labeled.jsonl",
        teacher_model="text-unicorn@001",
        train_steps=3,
        evaluation_spec=TuningEvaluationSpec(
            evaluation_data="gs://b/distill_eval.jsonl",
            evaluation_interval=2,
            enable_early_stopping=True,
            enable_checkpoint_selection=False,
        ),
    )
    tuned = job.get_tuned_model()
    resource = get_job(pipeline_server, job._job.resource_name)
    tasks = tasks_of(resource)
    assert list(tasks) == [
        "distillation",
        "validate-data",
        "teacher-labelling",
        "tune",
        "evaluate",
        "upload-model",
        "deploy-model",
    ]
    teacher = tasks["teacher-labelling"]["execution"]["metadata"]
    assert teacher["output:labelled"] == 12  # one predict line each, one explain line per non-empty rationale
    assert teacher["output:multitask_examples"] == 12 + teacher["output:rationales"] and teacher["output:rationales"]
    assert teacher["output:teacher_reused"] is False
    model = tasks["upload-model"]["execution"]["metadata"]["output:model_resource_name"]
    from google.cloud import aiplatform

    # the student's id is the label the SDK needs (contract §5.4)
    labels = aiplatform.Model(model).labels
    assert labels["google-vertex-llm-tuning-base-model-id"] == "text-bison-002"
    assert labels["tuneforge-dev-stand-in"] == "tiny-gemma3"  # dev mode says what really ran
    config = json.loads(
        next((pipeline_server.bucket / "b" / "staging").rglob("tune/tuneforge_config.json")).read_text()
    )
    assert config["request"]["rationale_weight"] == 1.0 and config["serving"]["input_prefix"] == "predict: "
    assert isinstance(tuned.predict("Classify: my card was charged twice", max_output_tokens=4).text, str)


def test_a_dev_mode_teacher_that_cannot_label_is_refused_by_the_sdk_call(pipeline_server):
    """The README's dev-mode distill_from on unlabelled data: the stand-in teacher cannot label, so the job could only
    fail in teacher-labelling; the create request is refused and distill_from itself raises, saying what to do."""
    from google.api_core.exceptions import GoogleAPICallError
    from vertexai.preview.language_models import TextGenerationModel

    lines = [{"input_text": f"Classify: ticket {i}"} for i in range(3)] + [{"input_text": "q", "output_text": "a"}]
    (pipeline_server.bucket / "b" / "distill_unlabelled.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    student = TextGenerationModel.from_pretrained("text-bison@002")
    with pytest.raises(GoogleAPICallError) as exc:
        student.distill_from(dataset="gs://b/distill_unlabelled.jsonl", teacher_model="text-unicorn@001", train_steps=3)
    message = exc.value.message
    assert exc.value.code == 400
    assert "teacher_model_reference 'text-unicorn@001' runs on the dev-mode stand-in" in message, message
    assert "cannot label unlabelled prompts (3 of 4: lines 1, 2, 3)" in message


def test_cancel_stops_the_running_task(pipeline_server):
    body = {
        "templateUri": TUNE,
        "runtimeConfig": {
            "parameterValues": {
                "project": "my-project",
                "dataset_uri": "gs://b/code_generation.jsonl",
                "large_model_reference": "code-bison@002",
                "train_steps": 100000,
            }
        },
    }
    with pipeline_server.client() as c:
        job = c.post(BASE, params={"pipelineJobId": "tune-large-model-cancel"}, content=json.dumps(body)).json()
        wait_for(
            lambda: tasks_of(get_job(pipeline_server, job["name"]))["tune"]["state"] == "RUNNING",
            timeout=120,
            what="tune to start",
        )
        started = time.time()
        assert c.post(f"/v1/{job['name']}:cancel").json() == {}
        assert get_job(pipeline_server, job["name"])["state"] in (
            "PIPELINE_STATE_CANCELLING",
            "PIPELINE_STATE_CANCELLED",
        )
    done = finished(pipeline_server, job["name"])
    assert done["state"] == "PIPELINE_STATE_CANCELLED" and done["error"]["code"] == 1
    assert time.time() - started < 30
    tasks = tasks_of(done)
    assert tasks["validate-data"]["state"] == "SUCCEEDED" and tasks["tune"]["state"] == "CANCELLED"
    assert tasks["upload-llm-model"]["state"] == "CANCELLED"
