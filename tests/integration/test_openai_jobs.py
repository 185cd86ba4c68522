"""OpenAI fine-tuning jobs with the official ``openai`` client against a live server: upload, create (a catalog id
and an OpenAI id on its dev-mode stand-in), follow the events to success, the same run seen through the Vertex
API, list with paging and a metadata filter, cancel; refused requests (reinforcement, integrations, a bad line, a
missing file) are OpenAI-shaped 400/404s with the field named. SQLite in `make test`, PostgreSQL in `make test-slow`.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from tests.integration.conftest import start_server

from tuneforge.train.demo_task import greedy_answers

P = "projects/team-a/locations/us-central1"


def _lines(n: int) -> bytes:
    rows = [
        {"messages": [{"role": "user", "content": f"echo {i}"}, {"role": "assistant", "content": f"{i}"}]}
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture()
def jobs_server(tmp_path, database_url):
    home = tmp_path / "home"
    home.mkdir()
    env = {"TUNEFORGE_API_KEYS": "key-a=team-a,key-b=team-b,key-ops", "TUNEFORGE_QUEUE_OVER_QUOTA": "1"}
    srv = start_server(home, database_url, extra_env=env)
    yield srv
    srv.stop()


def _client(server, key: str = "key-a") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def _wait(client: openai.OpenAI, job_id: str, statuses: tuple[str, ...], timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.5)
    raise AssertionError(f"{job_id} still {job.status}")


def test_a_supervised_job_runs_to_success_and_is_the_same_run_as_a_tuning_job(jobs_server):
    client = _client(jobs_server)
    train = client.files.create(file=("train.jsonl", _lines(16)), purpose="fine-tune")
    valid = client.files.create(file=("valid.jsonl", _lines(4)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tiny-llama",
        training_file=train.id,
        validation_file=valid.id,
        suffix="echo",
        seed=7,
        metadata={"team": "search"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 8}}},
    )
    assert job.id.startswith("ftjob-") and job.status in ("queued", "running") and job.seed == 7
    assert job.training_file == train.id and job.validation_file == valid.id and job.metadata == {"team": "search"}
    # The legacy hyperparameters and an OpenAI id (dev mode: its stand-in); queued behind the first (quota 1).
    second = client.fine_tuning.jobs.create(
        model="gpt-4.1-mini-2025-04-14", training_file=train.id, hyperparameters={"n_epochs": 1}
    )
    done = _wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tiny-llama:team-a:echo:{job.id.removeprefix('ftjob-')}"
    assert done.hyperparameters.n_epochs == 2 and done.hyperparameters.batch_size == 8
    assert done.hyperparameters.learning_rate_multiplier == 1.0  # "auto": the catalog's rate
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at >= done.created_at
    assert done.method.type == "supervised" and done.method.supervised.hyperparameters.n_epochs == 2

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)  # newest first
    metrics = [e for e in events if e.type == "metrics"]
    assert {e.data["step"] for e in metrics} == {1, 2, 3, 4}  # 16 lines, batch 8, 2 epochs
    assert all("train_loss" in e.data for e in metrics) and any("valid_loss" in e.data for e in metrics)
    assert any(e.type == "message" and e.message.startswith("Created") for e in events)
    messages = [e.message for e in events if e.type == "message"]
    validated = next(m for m in messages if m.startswith("Validated the data: "))  # validation, start, ..., the end
    assert f"{train.id}.jsonl: 16 examples" in validated and f"{valid.id}.jsonl: 4 examples" in validated, validated
    assert "checkpoint saved at step 2: a resumed run continues from it" in messages  # the first epoch's end
    assert messages[0].startswith("Succeeded after 4 steps")
    page = client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert len(page.data) == 2 and page.has_more
    rest = client.fine_tuning.jobs.list_events(job.id, after=page.data[-1].id, limit=100).data
    assert [e.id for e in page.data + rest] == [e.id for e in events]

    # The same run through the Vertex API: its tuning job, its tuned model.
    vertex = httpx.get(
        f"{jobs_server.url}/v1/{P}/tuningJobs/{job.id.removeprefix('ftjob-')}",
        headers={"Authorization": "Bearer key-a"},
        timeout=30,
    ).json()
    assert vertex["state"] == "JOB_STATE_SUCCEEDED" and vertex["tunedModel"]["model"]
    assert vertex["tunedModelDisplayName"] == "tiny-llama-echo"

    third = client.fine_tuning.jobs.create(model="tiny-llama", training_file=train.id)  # queued behind the second
    listed = client.fine_tuning.jobs.list(limit=1)
    assert [j.id for j in listed.data] == [third.id] and listed.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "search"})] == [job.id]
    assert client.fine_tuning.jobs.cancel(third.id).status in ("cancelled", "running")
    assert _wait(client, third.id, ("cancelled", "failed", "succeeded")).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="has already ended"):
        client.fine_tuning.jobs.cancel(third.id)

    # The fine-tuned models: listed, and chatting answers what plain transformers + peft answer from the artifact.
    other = _wait(client, second.id, ("succeeded", "failed", "cancelled"))
    assert other.status == "succeeded" and other.fine_tuned_model.startswith("ft:gpt-4.1-mini-2025-04-14:team-a::")
    assert [m.id for m in client.models.list()] == [other.fine_tuned_model, done.fine_tuned_model]
    assert client.models.retrieve(done.fine_tuned_model).owned_by == "team-a"
    final = jobs_server.bucket / f"tuneforge-team-a/tuningJobs/{job.id.removeprefix('ftjob-')}"
    expected = greedy_answers(final / "postprocess/node-0/checkpoints/final", ["echo 3"], max_new_tokens=6)[0]
    messages = [{"role": "user", "content": "echo 3"}]
    plain = client.chat.completions.create(model=done.fine_tuned_model, messages=messages, max_tokens=6, temperature=0)
    assert plain.choices[0].message.content.strip() == expected and plain.model == done.fine_tuned_model
    stream = client.chat.completions.create(
        model=done.fine_tuned_model, messages=messages, max_tokens=6, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip() == expected
    [checkpoint] = client.fine_tuning.jobs.checkpoints.list(job.id).data  # tuneforge exports the last step's
    assert checkpoint.step_number == 4 and checkpoint.metrics.train_loss is not None
    assert checkpoint.fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-4"
    at_checkpoint = client.chat.completions.create(
        model=checkpoint.fine_tuned_model_checkpoint, messages=messages, max_tokens=6, temperature=0
    )
    assert at_checkpoint.choices[0].message.content.strip() == expected
    # The results file: the metrics of every step, as a CSV the client downloads.
    [results] = done.result_files
    csv = client.files.content(results).read().decode().splitlines()
    assert csv[0] == "step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy"
    assert [row.split(",")[0] for row in csv[1:]] == ["1", "2", "3", "4"] and all(r.split(",")[1] for r in csv[1:])
    assert client.files.retrieve(results).purpose == "fine-tune-results"
    client.chat.completions.create(model=other.fine_tuned_model, messages=messages, max_tokens=2)
    ops = {"Authorization": "Bearer key-ops"}  # the serving view is the operator's
    groups = httpx.get(f"{jobs_server.url}/tuneforge/serving", headers=ops, timeout=30).json()["groups"]
    assert [len(g["adapters"]) for g in groups if g["adapters"]] == [2]  # both fine-tunes on one loaded base
    # The same model on the Vertex side: the job's endpoint (auto-deployed, as Vertex does) answers the same.
    endpoint = openai.OpenAI(
        base_url=f"{jobs_server.url}/v1beta1/{vertex['tunedModel']['endpoint']}", api_key="key-a", max_retries=0
    )
    on_endpoint = endpoint.chat.completions.create(model="any", messages=messages, max_tokens=6, temperature=0)
    assert on_endpoint.choices[0].message.content.strip() == expected
    groups = httpx.get(f"{jobs_server.url}/tuneforge/serving", headers=ops, timeout=30).json()["groups"]
    assert [len(g["adapters"]) for g in groups if g["adapters"]] == [3]  # the endpoint's too, on the same base
    assert client.models.delete(other.fine_tuned_model).deleted
    assert [m.id for m in client.models.list()] == [done.fine_tuned_model]
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model=other.fine_tuned_model, messages=messages, max_tokens=2)
    # Another key's project sees none of it.
    stranger = _client(jobs_server, "key-b")
    with pytest.raises(openai.NotFoundError):
        stranger.fine_tuning.jobs.retrieve(job.id)
    assert stranger.fine_tuning.jobs.list().data == [] and stranger.models.list().data == []
    with pytest.raises(openai.NotFoundError):
        stranger.chat.completions.create(model=done.fine_tuned_model, messages=messages, max_tokens=2)


def test_refused_requests_name_the_field(jobs_server):
    client = _client(jobs_server)
    train = client.files.create(file=("train.jsonl", _lines(4)), purpose="fine-tune")
    cases = [
        (dict(method={"type": "reinforcement", "reinforcement": {}}), "method.type", "not supported"),
        (dict(integrations=[{"type": "wandb", "wandb": {"project": "x"}}]), "integrations", "TensorBoard"),
        (dict(training_file="file-nope"), "training_file", "No such File object: file-nope"),
        (dict(model="no-such-model"), None, "no-such-model"),
        (dict(hyperparameters={"n_epochs": 0}), "hyperparameters.n_epochs", "an integer from 1 to 50; got 0"),
    ]
    for extra, param, words in cases:
        kwargs = {"model": "tiny-llama", "training_file": train.id, **extra}
        with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as refused:
            client.fine_tuning.jobs.create(**kwargs)
        assert words in refused.value.message, (extra, refused.value.message)
        if param:
            assert refused.value.body["param"] == param, refused.value.body
    bad = client.files.create(
        file=("bad.jsonl", _lines(2) + b'{"messages": [{"role": "user", "content": "hi"}]}\n'), purpose="fine-tune"
    )
    with pytest.raises(openai.BadRequestError) as lines:
        client.fine_tuning.jobs.create(model="tiny-llama", training_file=bad.id)
    assert "line 3" in lines.value.message, lines.value.message
    assert client.fine_tuning.jobs.list().data == []  # nothing refused became a job


def test_a_dpo_job_on_openais_preference_lines(jobs_server):
    """method.type dpo: OpenAI's preference lines, DPO's recipe, beta resolved on the job, a model chat takes."""
    client = _client(jobs_server)
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": f"say {w}"}]},
            "preferred_output": [{"role": "assistant", "content": w.upper()}],
            "non_preferred_output": [{"role": "assistant", "content": w}],
        }
        for w in ("abc", "def", "ghi", "jkl", "mno", "pqr", "stu", "vwx")
    ]
    pairs = client.files.create(
        file=("pairs.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode()), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model="tiny-llama",
        training_file=pairs.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "batch_size": 4, "beta": 0.2}}},
    )
    done = _wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    assert done.method.type == "dpo" and done.method.dpo.hyperparameters.beta == 0.2
    assert done.hyperparameters.batch_size == 4 and done.hyperparameters.n_epochs == 1
    vertex = httpx.get(
        f"{jobs_server.url}/v1/{P}/tuningJobs/{job.id.removeprefix('ftjob-')}",
        headers={"Authorization": "Bearer key-a"},
        timeout=30,
    ).json()
    assert vertex["preferenceOptimizationSpec"]["hyperParameters"]["beta"] == 0.2
    reply = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "say abc"}], max_tokens=3
    )
    assert reply.choices[0].message.content is not None
    # An SFT file for dpo (or pairs for supervised) is refused with the line and the fix.
    sft = client.files.create(file=("sft.jsonl", _lines(4)), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="line 1"):
        client.fine_tuning.jobs.create(model="tiny-llama", training_file=sft.id, method={"type": "dpo"})


def _step_losses(client: openai.OpenAI, job_id: str) -> dict[int, float]:
    events = client.fine_tuning.jobs.list_events(job_id, limit=1000).data
    steps = [e.data["step"] for e in events if e.type == "metrics"]
    assert len(steps) == len(set(steps)), steps  # a resumed run repeats no step
    return {e.data["step"]: e.data["train_loss"] for e in events if e.type == "metrics"}


def test_pause_and_resume_continue_from_the_checkpoint(jobs_server):
    """A running job paused mid-run stops at a saved checkpoint ("pausing", then "paused"; JOB_STATE_PAUSED on the
    Vertex side; its file cannot be deleted), and resumed it continues from that step: every step's loss equals an
    uninterrupted run's with the same seed. A queued job pauses at once; a paused one can be cancelled."""
    client = _client(jobs_server)
    train = client.files.create(file=("train.jsonl", _lines(6)), purpose="fine-tune")
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 8, "batch_size": 1}}}
    job = client.fine_tuning.jobs.create(model="tiny-llama", training_file=train.id, seed=11, method=method)
    queued = client.fine_tuning.jobs.create(model="tiny-llama", training_file=train.id, method=method)
    assert client.fine_tuning.jobs.pause(queued.id).status == "paused"  # not started: paused at once
    assert client.fine_tuning.jobs.resume(queued.id).status == "queued"
    assert client.fine_tuning.jobs.pause(queued.id).status == "paused"
    # A job whose data disappears behind the API's back (removed from the bucket while it waits) fails when it runs.
    lost = client.files.create(file=("lost.jsonl", _lines(6)), purpose="fine-tune")
    doomed = client.fine_tuning.jobs.create(model="tiny-llama", training_file=lost.id, method=method)
    assert client.fine_tuning.jobs.pause(doomed.id).status == "paused"
    (jobs_server.bucket / f"tuneforge-files/team-a/{lost.id}.jsonl").unlink()

    deadline = time.monotonic() + 120
    while not _step_losses(client, job.id) and time.monotonic() < deadline:
        time.sleep(0.2)
    running = client.fine_tuning.jobs.retrieve(job.id)  # mid-run: a finish time estimated from its steps so far
    assert running.status == "running" and running.estimated_finish >= running.created_at, running
    pausing = client.fine_tuning.jobs.pause(job.id)
    assert pausing.status in ("pausing", "paused")
    with pytest.raises(openai.BadRequestError, match="only a queued or running job is paused"):
        client.fine_tuning.jobs.pause(job.id)
    paused = _wait(client, job.id, ("paused", "succeeded", "failed"))
    assert paused.status == "paused", paused
    stopped_at = max(_step_losses(client, job.id))
    assert 0 < stopped_at < 48
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert f"Paused at step {stopped_at} of 48; resume continues from this step" in messages
    vertex = httpx.get(
        f"{jobs_server.url}/v1/{P}/tuningJobs/{job.id.removeprefix('ftjob-')}",
        headers={"Authorization": "Bearer key-a"},
        timeout=30,
    ).json()
    assert vertex["state"] == "JOB_STATE_PAUSED"
    with pytest.raises(openai.BadRequestError, match="not ended"):
        client.files.delete(train.id)  # a paused job still needs its file
    time.sleep(1.5)  # a paused job stays paused
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"

    assert client.fine_tuning.jobs.resume(job.id).status in ("queued", "running")
    with pytest.raises(openai.BadRequestError, match="only a paused job is resumed"):
        client.fine_tuning.jobs.resume(job.id)
    done = _wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=200).data]
    assert any(m.startswith(f"Training 48 steps from step {stopped_at} ") for m in messages), messages
    resumed = _step_losses(client, job.id)
    assert sorted(resumed) == list(range(1, 49))

    assert client.fine_tuning.jobs.cancel(queued.id).status == "cancelled"  # cancelled while paused
    client.fine_tuning.jobs.resume(doomed.id)
    failed = _wait(client, doomed.id, ("succeeded", "failed", "cancelled"))
    assert failed.status == "failed" and failed.error.code == "invalid_argument", failed
    assert f"{lost.id}.jsonl" in failed.error.message and failed.finished_at and failed.fine_tuned_model is None
    reference = client.fine_tuning.jobs.create(model="tiny-llama", training_file=train.id, seed=11, method=method)
    assert _wait(client, reference.id, ("succeeded", "failed", "cancelled")).status == "succeeded"
    uninterrupted = _step_losses(client, reference.id)
    assert resumed == pytest.approx(uninterrupted, rel=1e-4), (stopped_at, resumed, uninterrupted)


def test_tool_use_lines_train_and_chat_renders_tools_as_training_did(jobs_server):
    """Tool-use lines (tools, assistant tool_calls, tool messages) train through the model's template; chat with the
    same tools answers what plain transformers + peft answer from the artifact (read back as tool_calls when it is a
    call); a model whose template has no tools (Gemma 3) refuses the line by number at create."""
    from tuneforge.infer.tool_calls import split_tool_calls
    from tuneforge.train.demo_task import load_model
    from tuneforge.train.tool_task import TOOLS, call_turns, prompt, template_chat, tool_line

    client = _client(jobs_server)
    body = "".join(json.dumps(tool_line(city, i)) + "\n" for i, city in enumerate(["abc", "defg", "hij", "klmno"]))
    train = client.files.create(file=("tools.jsonl", body.encode()), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model="tiny-gemma3", training_file=train.id)
    assert "line 1" in refused.value.message and "does not render tool use" in refused.value.message
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}}}
    job = client.fine_tuning.jobs.create(model="tiny-qwen3", training_file=train.id, method=method)
    done = _wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error

    final = jobs_server.bucket / f"tuneforge-team-a/tuningJobs/{job.id.removeprefix('ftjob-')}"
    tokenizer, model = load_model(final / "postprocess/node-0/checkpoints/final")
    offered = {t["function"]["name"] for t in TOOLS}
    for chat in (prompt("pqrs", "weather"), [*prompt("pqrs", "weather"), *call_turns("pqrs", "get_weather", "rainy")]):
        ids = tokenizer.apply_chat_template(
            template_chat(chat), tools=TOOLS, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        out = model.generate(**ids, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        content, calls = split_tool_calls(text.strip(), offered)
        reply = client.chat.completions.create(
            model=done.fine_tuned_model, messages=chat, tools=TOOLS, max_tokens=24, temperature=0
        ).choices[0]
        assert (reply.message.content or None) == ((content and content.strip()) or None), (text, reply)
        got = [(c.function.name, json.loads(c.function.arguments)) for c in reply.message.tool_calls or []]
        assert got == [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls], (text, reply)
        assert reply.finish_reason == ("tool_calls" if calls else reply.finish_reason)
        chunks = list(
            client.chat.completions.create(
                model=done.fine_tuned_model, messages=chat, tools=TOOLS, max_tokens=24, temperature=0, stream=True
            )
        )
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        streamed = [(t.function.name, json.loads(t.function.arguments)) for d in deltas for t in d.tool_calls or []]
        assert "".join(d.content or "" for d in deltas) == (reply.message.content or "") and streamed == got
        assert chunks[-1].choices[0].finish_reason == reply.finish_reason
    with pytest.raises(openai.BadRequestError, match="a call cannot be forced"):
        client.chat.completions.create(model=done.fine_tuned_model, messages=chat, tools=TOOLS, tool_choice="required")
