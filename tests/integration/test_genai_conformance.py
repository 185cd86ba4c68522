"""google-genai (the SDK tuning scripts use today), unmodified, against a live tuneforge server in dev mode:
``client.tunings`` tune / get / list / cancel for supervised, preference and distillation tuning, continued tuning from a tuned
model's checkpoint, generate_content and its stream on the tuned endpoint, and the 4xx each bad request gets."""

from __future__ import annotations

import shutil

import httpx
import pytest
from tests.integration.conftest import start_server, wait_for, write_dataset

from tuneforge.train.preference_task import preference_line, write_lines

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("genai-home")
    # Over the one-job quota, jobs queue (and run one at a time) instead of being refused.
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}", extra_env={"TUNEFORGE_QUEUE_OVER_QUOTA": "1"})
    bucket = srv.bucket / "b"
    write_dataset(bucket / "train.jsonl", n=24)
    write_lines(bucket / "pairs.jsonl", [preference_line(s, system="Shout.") for s in ("abc", "kite", "moon", "xyz")])
    write_lines(
        bucket / "prompts.jsonl", [{"contents": [{"role": "user", "parts": [{"text": s}]}]} for s in ("ab", "c")]
    )
    multi_turn = {"contents": [{"role": r, "parts": [{"text": "q"}]} for r in ("user", "model", "user")]}
    write_lines(bucket / "multi-turn-prompts.jsonl", [multi_turn])
    (bucket / "bad-pairs.jsonl").write_text(
        '{"contents": [{"role": "user", "parts": [{"text": "q"}]}], "completions": []}\n'
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    from google.oauth2.credentials import Credentials

    return genai.Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=Credentials(token="static-token"),
        http_options=types.HttpOptions(base_url=server.url, api_version="v1"),
    )


def _train(uri="gs://b/train.jsonl"):
    return types.TuningDataset(gcs_uri=uri)


def _ended(client, job, timeout=240):
    return wait_for(lambda: (j := client.tunings.get(name=job.name)).has_ended and j, timeout, 0.5, f"{job.name}")


@pytest.fixture(scope="module")
def sft_job(client):
    job = client.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=_train(),
        config=types.CreateTuningJobConfig(
            tuned_model_display_name="sft-flash",
            epoch_count=1,
            learning_rate_multiplier=1.0,
            adapter_size="ADAPTER_SIZE_EIGHT",
            validation_dataset=types.TuningValidationDataset(gcs_uri="gs://b/train.jsonl"),
            evaluate_interval=1,
            checkpoint_interval=1,
            labels={"team": "search"},
            description="a supervised run",
            export_last_checkpoint_only=True,
        ),
    )
    assert job.state == types.JobState.JOB_STATE_PENDING and job.base_model == "gemini-2.5-flash"
    return _ended(client, job)


def test_supervised_tuning_of_a_gemini_id_and_what_the_job_reads_back(client, sft_job):
    job = sft_job
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED, job.error
    assert job.tuned_model.model.startswith("projects/p/locations/us-central1/models/")
    assert job.tuned_model.endpoint.startswith("projects/p/locations/us-central1/endpoints/")
    (checkpoint,) = job.tuned_model.checkpoints
    assert checkpoint.checkpoint_id == "1" and checkpoint.step == 2 and checkpoint.epoch == 1
    assert checkpoint.endpoint == job.tuned_model.endpoint
    stats = job.tuning_data_stats.supervised_tuning_data_stats
    assert stats.tuning_dataset_example_count == 24 and stats.user_dataset_examples[0].parts[0].text
    assert job.labels["team"] == "search" and "tiny-gemma3" in job.description  # the dev stand-in says so
    assert job.supervised_tuning_spec.export_last_checkpoint_only is True
    assert job.tuned_model_display_name == "sft-flash" and job.create_time and job.end_time


def test_generate_content_and_its_stream_on_the_tuned_endpoint(client, sft_job):
    endpoint = sft_job.tuned_model.endpoint
    config = types.GenerateContentConfig(max_output_tokens=12, temperature=0)
    answer = client.models.generate_content(model=endpoint, contents="abc", config=config)
    assert answer.candidates and answer.usage_metadata.prompt_token_count > 0
    streamed = "".join(
        c.text or "" for c in client.models.generate_content_stream(model=endpoint, contents="abc", config=config)
    )
    assert streamed == answer.text  # greedy: the same answer, whole or streamed


def test_generate_content_on_a_base_model_id_without_an_endpoint(client):
    """client.models.generate_content(model="gemini-2.5-flash") calls publishers/google/models/…:generateContent; in
    dev mode the id's stand-in answers with its own weights (the base a tuned model is compared with)."""
    config = types.GenerateContentConfig(max_output_tokens=8, temperature=0)
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="abc", config=config)
    assert answer.text and answer.model_version == "publishers/google/models/gemini-2.5-flash"
    streamed = client.models.generate_content_stream(model="gemini-2.5-flash", contents="abc", config=config)
    assert "".join(c.text or "" for c in streamed) == answer.text
    with pytest.raises(errors.ClientError) as unknown:
        client.models.generate_content(model="no-such-model", contents="abc")
    assert unknown.value.code == 404 and "publishers/meta/models/llama3_1@llama-3.1-8b" in str(unknown.value)


def test_preference_tuning_continued_from_the_supervised_checkpoint(client, sft_job):
    """The documented advice: SFT first, then preference tuning from that checkpoint (preTunedModel)."""
    job = client.tunings.tune(
        base_model=sft_job.tuned_model.model,
        training_dataset=_train("gs://b/pairs.jsonl"),
        config=types.CreateTuningJobConfig(
            method="PREFERENCE_TUNING", beta=0.2, epoch_count=2, pre_tuned_model_checkpoint_id="1"
        ),
    )
    assert job.pre_tuned_model.tuned_model_name == sft_job.tuned_model.model
    job = _ended(client, job)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED, job.error
    spec = job.preference_optimization_spec
    assert spec.training_dataset_uri == "gs://b/pairs.jsonl" and spec.hyper_parameters.beta == 0.2
    stats = job.tuning_data_stats.preference_optimization_data_stats
    assert stats.tuning_dataset_example_count == 4 and stats.user_dataset_examples[0].completions[0].score == 1
    answer = client.models.generate_content(model=job.tuned_model.endpoint, contents="abc")
    assert answer.candidates


def test_distillation_from_a_teacher_id_and_from_a_tuned_model(client, server, sft_job):
    """google-genai's DISTILLATION: the prompt dataset's lines are GenerateContent-shaped; with the model's answer
    given (as here), the teacher explains it. The student learns answers and rationales (distillation step by step;
    sft_loss_weight_multiplier weighs the rationales)."""
    by_id = client.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=_train(),
        config=types.CreateTuningJobConfig(
            method="DISTILLATION",
            base_teacher_model="gemini-2.5-pro",
            sft_loss_weight_multiplier=0.5,
            epoch_count=1,
            adapter_size="ADAPTER_SIZE_FOUR",
            tuned_model_display_name="distilled",
        ),
    )
    by_tuned = client.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=_train(),
        config=types.CreateTuningJobConfig(
            method="DISTILLATION", tuned_teacher_model_source=sft_job.tuned_model.model, epoch_count=1
        ),
    )
    by_id, by_tuned = _ended(client, by_id), _ended(client, by_tuned)
    assert by_id.state == by_tuned.state == types.JobState.JOB_STATE_SUCCEEDED, (by_id.error, by_tuned.error)
    spec = by_id.distillation_spec
    assert spec.prompt_dataset_uri == "gs://b/train.jsonl" and spec.base_teacher_model == "gemini-2.5-pro"
    raw = httpx.get(f"{server.url}/v1/{by_id.name}").json()
    assert raw["distillationSpec"]["hyperParameters"]["sftLossWeightMultiplier"] == 0.5  # the SDK's type lacks it
    assert by_tuned.distillation_spec.tuned_teacher_model_source == sft_job.tuned_model.model
    stats = by_id.tuning_data_stats.distillation_data_stats.training_dataset_stats
    assert stats.tuning_dataset_example_count == 24 and stats.tuning_step_count == 3  # 48 multi-task lines, batch 16
    assert stats.user_output_token_distribution.sum > 0 and stats.dropped_example_indices in (None, [])
    answer = client.models.generate_content(model=by_id.tuned_model.endpoint, contents="abc")
    assert answer.candidates


def test_open_models_full_and_lora_with_a_custom_base_and_an_output_uri(client, server, tiny_dir):
    shutil.copytree(tiny_dir("tiny-llama"), server.bucket / "b" / "weights" / "llama", dirs_exist_ok=True)
    full = client.tunings.tune(
        base_model="meta/llama3_1@llama-3.1-8b",
        training_dataset=_train(),
        config=types.CreateTuningJobConfig(
            tuning_mode="TUNING_MODE_FULL",
            custom_base_model="gs://b/weights/llama",
            output_uri="gs://b/out/full",
            batch_size=8,
            learning_rate=1e-3,
            epoch_count=1,
        ),
    )
    lora = client.tunings.tune(
        base_model="meta/llama3_1@llama-3.1-8b",
        training_dataset=_train(),
        config=types.CreateTuningJobConfig(tuning_mode="TUNING_MODE_PEFT_ADAPTER", adapter_size="ADAPTER_SIZE_FOUR"),
    )
    full, lora = _ended(client, full), _ended(client, lora)
    assert full.state == lora.state == types.JobState.JOB_STATE_SUCCEEDED, (full.error, lora.error)
    assert full.supervised_tuning_spec.tuning_mode == types.TuningMode.TUNING_MODE_FULL
    assert full.supervised_tuning_spec.hyper_parameters.batch_size == 8 and full.custom_base_model
    assert (server.bucket / "b" / "out" / "full" / "postprocess" / "node-0" / "checkpoints" / "final").is_dir()
    assert full.tuned_model.checkpoints[0].step == 3  # 24 lines, batch 8
    assert lora.supervised_tuning_spec.hyper_parameters.adapter_size == types.AdapterSize.ADAPTER_SIZE_FOUR


def test_list_with_paging_and_a_filter_and_get(client, sft_job):
    pager = client.tunings.list(config=types.ListTuningJobsConfig(page_size=1))
    assert len(pager.page) == 1
    names = [j.name for j in pager]
    assert sft_job.name in names and len(names) == len(set(names)) >= 2
    labelled = list(client.tunings.list(config=types.ListTuningJobsConfig(filter='labels.team="search"')))
    assert [j.name for j in labelled] == [sft_job.name]
    assert client.tunings.get(name=sft_job.name).name == sft_job.name


def test_cancel_a_running_job_and_an_ended_one(client, sft_job):
    job = client.tunings.tune(
        base_model="gemini-2.5-flash", training_dataset=_train(), config=types.CreateTuningJobConfig(epoch_count=400)
    )
    wait_for(lambda: client.tunings.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING, 120, 0.3, "running")
    client.tunings.cancel(name=job.name)
    ended = _ended(client, job, timeout=60)
    assert ended.state == types.JobState.JOB_STATE_CANCELLED and ended.error.code == 1
    with pytest.raises(errors.ClientError) as exc:
        client.tunings.cancel(name=sft_job.name)
    assert exc.value.code == 400 and exc.value.status == "FAILED_PRECONDITION"


@pytest.mark.parametrize(
    ("base_model", "dataset", "config", "code", "words"),
    [
        ("llama-9", "gs://b/train.jsonl", {}, 404, "unknown model 'llama-9'"),
        ("gemini-2.5-flash", "gs://b/missing.jsonl", {}, 400, "gs://b/missing.jsonl not found"),
        (
            "gemini-2.5-flash",
            "gs://b/train.jsonl",
            {"beta": 0.3},
            400,
            "preferenceOptimizationSpec.hyperParameters.beta",
        ),
        ("gemini-2.5-flash", "gs://b/train.jsonl", {"method": "PREFERENCE_TUNING"}, 400, 'missing "completions"'),
        ("gemini-2.5-flash", "gs://b/bad-pairs.jsonl", {"method": "PREFERENCE_TUNING"}, 400, "give exactly two"),
        ("gemini-2.5-flash", "gs://b/train.jsonl", {"tuning_mode": "TUNING_MODE_FULL"}, 400, "does not support FULL"),
        (
            "gemini-2.5-flash",
            "gs://b/train.jsonl",
            {
                "evaluation_config": types.EvaluationConfig(
                    metrics=[types.Metric(name="exact_match")],
                    output_config=types.OutputConfig(
                        gcs_destination=types.GcsDestination(output_uri_prefix="gs://b/eval")
                    ),
                )
            },
            400,
            "evaluationConfig (Gen AI evaluation during tuning) is not supported",
        ),
        ("projects/p/locations/us-central1/models/404", "gs://b/train.jsonl", {}, 404, "models/404"),
        ("gemini-2.5-flash", "gs://b/train.jsonl", {"method": "DISTILLATION"}, 400, "distillation needs one teacher"),
        (
            "gemini-2.5-flash",
            "gs://b/train.jsonl",
            {"method": "DISTILLATION", "base_teacher_model": "llama-9"},
            404,
            "unknown model 'llama-9'",
        ),
        (
            "gemini-2.5-flash",
            "gs://b/train.jsonl",
            {"method": "DISTILLATION", "tuned_teacher_model_source": "projects/q/locations/us-central1/models/1"},
            400,
            "must be a model of this project",
        ),
        (
            "gemini-2.5-flash",
            "gs://b/prompts.jsonl",
            {"method": "DISTILLATION", "base_teacher_model": "gemini-2.5-pro"},
            400,
            "runs on the dev-mode stand-in tiny-gemma3, which cannot label unlabelled prompts (2 of 2",
        ),
        (
            "gemini-2.5-flash",
            "gs://b/multi-turn-prompts.jsonl",
            {"method": "DISTILLATION", "base_teacher_model": "gemini-2.5-pro"},
            400,
            "line 1, contents: a distillation prompt is one user turn",
        ),
        (
            "gemini-2.5-flash",
            "gs://b/train.jsonl",
            {"method": "REINFORCEMENT_TUNING"},
            400,
            "reinforcement tuning is not supported by tuneforge",
        ),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_to_fix(client, base_model, dataset, config, code, words):
    with pytest.raises(errors.ClientError) as exc:
        client.tunings.tune(
            base_model=base_model, training_dataset=_train(dataset), config=types.CreateTuningJobConfig(**config)
        )
    assert exc.value.code == code and words in exc.value.message, exc.value.message
