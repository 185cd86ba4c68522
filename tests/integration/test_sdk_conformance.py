"""The unmodified official SDK (google-cloud-aiplatform, REST transport) against a live tuneforge server."""

from __future__ import annotations

import time

import pytest
from tests.integration.conftest import init_vertex, write_dataset


@pytest.fixture()
def vertex(server):
    init_vertex(server.url, "my-project")
    return server


def _wait(job, timeout=180):
    deadline = time.time() + timeout
    while not job.has_ended:
        assert time.time() < deadline, f"job did not end: {job.state}"
        time.sleep(0.5)
        job.refresh()
    return job


def test_gemini_style_sft_train_refresh_list_models(vertex):
    from google.cloud import aiplatform
    from vertexai.tuning import sft

    write_dataset(vertex.bucket / "b" / "train.jsonl")
    write_dataset(vertex.bucket / "b" / "val.jsonl", n=8, fmt="chat", seed=1)
    job = sft.train(
        source_model="gemini-1.5-flash-002",
        train_dataset="gs://b/train.jsonl",
        validation_dataset="gs://b/val.jsonl",
        epochs=2,
        adapter_size=4,
        learning_rate_multiplier=1.0,
        tuned_model_display_name="tuned-gemini",
    )
    assert not job.has_ended
    _wait(job)
    assert job.has_succeeded, job.error
    assert job.tuned_model_name.startswith(
        "projects/my-project/locations/us-central1/models/"
    ) and job.tuned_model_name.endswith("@1")
    stats = job.tuning_data_statistics.supervised_tuning_data_stats
    assert stats.tuning_dataset_example_count == 24 and stats.tuning_step_count > 0
    assert [j.resource_name for j in sft.SupervisedTuningJob.list()] == [job.resource_name]
    again = sft.SupervisedTuningJob(job.resource_name)
    assert again.has_succeeded and again.tuned_model_name == job.tuned_model_name
    models = aiplatform.Model.list()
    assert [m.resource_name for m in models] == [job.tuned_model_name.split("@")[0]]
    model = aiplatform.Model(job.tuned_model_name)
    assert model.display_name == "tuned-gemini"
    assert model.labels["tuneforge-dev-stand-in"] == "tiny-gemma3"
    # the tuning job deployed its model, as Vertex does; the endpoint answers generateContent
    from vertexai.generative_models import GenerationConfig, GenerativeModel

    endpoint = job.tuned_model_endpoint_name
    assert endpoint.startswith("projects/my-project/locations/us-central1/endpoints/")
    assert [d.endpoint for d in model.gca_resource.deployed_models] == [endpoint]
    answer = GenerativeModel(endpoint).generate_content(
        "hello", generation_config=GenerationConfig(max_output_tokens=4)
    )
    assert answer.candidates[0].finish_reason.name in ("STOP", "MAX_TOKENS")


def test_open_model_sft_train_with_source_model(vertex):
    from vertexai.tuning import SourceModel, sft

    write_dataset(vertex.bucket / "b" / "train.jsonl", fmt="prompt_completion")
    job = sft.train(
        source_model=SourceModel(base_model="meta/llama3_1@llama-3.1-8b"),
        tuning_mode="FULL",
        epochs=1,
        learning_rate=1e-3,
        train_dataset="gs://b/train.jsonl",
        output_uri="gs://b/out",
        tuned_model_display_name="llama-full",
        labels={"team": "a"},
    )
    _wait(job)
    assert job.has_succeeded, job.error
    final = vertex.bucket / "b" / "out" / "postprocess" / "node-0" / "checkpoints" / "final"
    assert (final / "model.safetensors").exists() and (final / "tuneforge_manifest.json").exists()
    assert job.labels == {"mg-source": "sdk", "team": "a", "tuneforge-dev-stand-in": "tiny-llama"}


def test_cancel_reaches_cancelled_quickly_and_cannot_be_repeated(vertex):
    from google.api_core import exceptions
    from vertexai.tuning import sft

    write_dataset(vertex.bucket / "b" / "train.jsonl", n=64)
    job = sft.train(source_model="gemini-1.5-flash-002", train_dataset="gs://b/train.jsonl", epochs=200)
    deadline = time.time() + 120
    while job.state.name != "JOB_STATE_RUNNING":
        assert time.time() < deadline
        time.sleep(0.3)
        job.refresh()
    started = time.time()
    job.cancel()
    _wait(job, timeout=30)
    assert time.time() - started < 10
    assert job.state.name == "JOB_STATE_CANCELLED"
    assert job.error.code == 1
    with pytest.raises(exceptions.BadRequest, match="cannot be cancelled"):
        job.cancel()
