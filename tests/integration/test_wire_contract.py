"""Every field tuneforge emits parses into the official SDK's own message types without loss.

The SDK (proto-plus over protobuf's JSON parser) drops nothing silently only if each field we send is one its proto
has, with the type it has: a field of the wrong shape either fails to parse or comes back empty (the SDK once showed
``userDatasetExamples`` as ``[{}, {}, {}]``). Here each resource a live server answers is parsed with
``ignore_unknown_fields=False`` and printed back; every value we sent must come back equal.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from tests.integration.conftest import wait_for, write_dataset

P = "/v1/projects/p/locations/us-central1"


def _time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _same(ours: Any, theirs: Any, path: str, lost: list[str]) -> None:
    """Record in ``lost`` every value of ``ours`` that ``theirs`` (the SDK's print) does not hold."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            lost.append(f"{path}: sent an object, the SDK has {theirs!r}")
            return
        for key, value in ours.items():
            if key not in theirs:
                if value not in (0, 0.0, "", False, [], {}, None):  # proto-JSON leaves default values out
                    lost.append(f"{path}.{key}: sent {value!r}, lost")
                continue
            _same(value, theirs[key], f"{path}.{key}", lost)
    elif isinstance(ours, list):
        if not isinstance(theirs, list) or len(theirs) != len(ours):
            lost.append(f"{path}: sent {len(ours)} items, the SDK has {theirs!r}")
            return
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _same(a, b, f"{path}[{i}]", lost)
    elif isinstance(ours, str) and _time(ours) is not None and isinstance(theirs, str):
        if _time(ours) != _time(theirs):
            lost.append(f"{path}: sent {ours!r}, the SDK has {theirs!r}")
    elif (isinstance(ours, (int, float)) and not isinstance(ours, bool)) or (
        isinstance(ours, str) and isinstance(theirs, (int, float)) and not isinstance(theirs, bool)
    ):
        if float(ours) != float(theirs):
            lost.append(f"{path}: sent {ours!r}, the SDK has {theirs!r}")
    elif ours != theirs:
        lost.append(f"{path}: sent {ours!r}, the SDK has {theirs!r}")


def assert_lossless(message_type: Any, body: dict) -> None:
    parsed = message_type.from_json(json.dumps(body), ignore_unknown_fields=False)  # raises on a field it lacks
    theirs = json.loads(message_type.to_json(parsed, use_integers_for_enums=False))
    lost: list[str] = []
    _same(body, theirs, message_type.__name__, lost)
    assert not lost, "\n".join(lost)


def test_the_checker_sees_a_lost_field():
    """The check cannot pass by not looking: the old sample shape is refused, a wrong value is reported."""
    from google.cloud.aiplatform_v1.types import SupervisedTuningDataStats, TunedModel

    with pytest.raises(Exception, match="contents"):
        assert_lossless(SupervisedTuningDataStats, {"userDatasetExamples": [{"contents": [{"role": "user"}]}]})
    lost: list[str] = []
    _same({"model": "a", "checkpoints": [{"step": "3"}]}, {"model": "a", "checkpoints": [{"step": "4"}]}, "t", lost)
    assert lost == ["t.checkpoints[0].step: sent '3', the SDK has '4'"]
    assert_lossless(TunedModel, {"model": "m", "checkpoints": [{"checkpointId": "1", "epoch": "1", "step": "3"}]})


@pytest.fixture(scope="module")
def finished(shared_server):
    """A finished Gemini-style job (stats, tuned model, auto-deployed endpoint), a pipeline job and an operation."""
    server = shared_server
    write_dataset(server.bucket / "b" / "train.jsonl", n=16)
    write_dataset(server.bucket / "b" / "val.jsonl", n=8, fmt="chat", seed=1)
    (server.bucket / "b" / "code.jsonl").write_text(
        "".join(json.dumps({"input_text": f"def f{i}():", "output_text": f"    return {i}"}) + "\n" for i in range(12))
    )
    with server.client() as c:
        body = {
            "baseModel": "gemini-1.5-flash-002",
            "tunedModelDisplayName": "wire",
            "labels": {"team": "a"},
            "supervisedTuningSpec": {
                "trainingDatasetUri": "gs://b/train.jsonl",
                "validationDatasetUri": "gs://b/val.jsonl",
                "hyperParameters": {"epochCount": "1", "adapterSize": "ADAPTER_SIZE_FOUR"},
            },
        }
        job = c.post(f"{P}/tuningJobs", json=body).json()
        done = wait_for(
            lambda: (j := c.get("/v1/" + job["name"]).json())["state"] == "JOB_STATE_SUCCEEDED" and j,
            timeout=240,
            what="job success",
        )
        op = c.post(f"{P}/endpoints", json={"displayName": "wire-endpoint"}).json()
        pipeline = c.post(
            f"{P}/pipelineJobs",
            params={"pipelineJobId": "wire-1"},
            json={
                "templateUri": "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v3.0.0",
                "runtimeConfig": {
                    "gcsOutputDirectory": "gs://b/out",
                    "parameterValues": {
                        "project": "p",
                        "dataset_uri": "gs://b/code.jsonl",
                        "large_model_reference": "code-bison@002",
                        "train_steps": 2,
                    },
                },
            },
        ).json()
        c.post(f"/v1/{pipeline['name']}:cancel")
        time.sleep(0.5)
        yield {
            "job": done,
            "operation": op,
            "pipeline": c.get(f"/v1/{pipeline['name']}").json(),
            "client": c,
            "server": server,
        }


def test_tuning_job_and_its_stats_parse_whole(finished):
    # The tuning SDK (vertexai.tuning) reads TuningJob as v1beta1 has it (outputUri, customBaseModel are v1beta1's).
    from google.cloud.aiplatform_v1beta1.types import ListTuningJobsResponse, TuningJob

    job = finished["job"]
    samples = job["tuningDataStats"]["supervisedTuningDataStats"]["userDatasetExamples"]
    assert samples and all(set(s) == {"role", "parts"} for s in samples)  # repeated Content, as the proto has it
    assert_lossless(TuningJob, job)
    assert_lossless(ListTuningJobsResponse, finished["client"].get(f"{P}/tuningJobs").json())


def test_model_endpoint_operation_and_pipeline_parse_whole(finished):
    from google.cloud.aiplatform_v1.types import Endpoint, ListModelsResponse, Model, PipelineJob
    from google.longrunning import operations_pb2

    c = finished["client"]
    model = c.get("/v1/" + finished["job"]["tunedModel"]["model"].split("@")[0]).json()
    assert model["deployedModels"], model
    assert_lossless(Model, model)
    assert_lossless(ListModelsResponse, c.get(f"{P}/models").json())
    assert_lossless(Endpoint, c.get("/v1/" + finished["job"]["tunedModel"]["endpoint"]).json())
    assert_lossless(PipelineJob, finished["pipeline"])
    from google.protobuf import json_format

    op = finished["operation"]
    parsed = json_format.Parse(json.dumps(op), operations_pb2.Operation(), ignore_unknown_fields=False)
    assert parsed.done and parsed.response.type_url.endswith("aiplatform.v1.Endpoint")


def test_serving_answers_parse_whole(finished):
    from google.cloud.aiplatform_v1.types import GenerateContentResponse, PredictResponse
    from openai.types.chat import ChatCompletion

    url = finished["server"].url + "/v1/" + finished["job"]["tunedModel"]["endpoint"]
    predict = httpx.post(url + ":predict", json={"instances": [{"prompt": "abc", "max_tokens": 4}]}, timeout=120)
    assert_lossless(PredictResponse, predict.json())
    generated = httpx.post(
        url + ":generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "abc"}]}], "generationConfig": {"maxOutputTokens": 4}},
        timeout=120,
    )
    assert_lossless(GenerateContentResponse, generated.json())
    chat = httpx.post(
        url + "/chat/completions", json={"messages": [{"role": "user", "content": "abc"}], "max_tokens": 4}, timeout=120
    ).json()
    assert ChatCompletion.model_validate(chat).model_dump(exclude_unset=True) == chat
    # The OpenAI-compatible route is lenient: what OpenAI clients send and tuneforge does not use is ignored ...
    lenient = httpx.post(
        url + "/chat/completions",
        timeout=120,
        json={
            "messages": [{"role": "user", "content": "abc", "name": "me"}],
            "max_tokens": 2,
            "user": "u-1",
            "logit_bias": {},
            "frequency_penalty": 0,
            "response_format": {"type": "text"},
        },
    )
    assert lenient.status_code == 200, lenient.text
    # ... while a Vertex resource refuses an unknown field, naming it.
    strict = httpx.post(
        url + ":generateContent",
        timeout=120,
        json={"contents": [{"role": "user", "parts": [{"text": "abc"}]}], "logitBias": {}},
    )
    assert strict.status_code == 400 and "unknown field(s) logitBias" in strict.json()["error"]["message"]
