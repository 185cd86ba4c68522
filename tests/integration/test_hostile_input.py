"""Hostile input on a live server: each request that once broke it (a 500, a hang, unbounded memory, a stored record
that broke later reads) now gets a clear 4xx, and the server goes on answering everyone else."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from tests.integration.conftest import start_server

P = "/v1/projects/p/locations/us-central1"
TINY = f"{P}/publishers/tuneforge/models/tiny-llama:generateContent"
LINE = json.dumps(
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "o"}]}]}
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile-home")
    server = start_server(
        home,
        f"sqlite:///{home / 'tuneforge.db'}",
        extra_env={"TUNEFORGE_WORKERS": "0", "TUNEFORGE_QUEUE_OVER_QUOTA": "1"},
    )
    with server.client() as c:
        r = c.post(f"{P}/tuneforge/datasets:upload", params={"uri": "gs://b/good.jsonl"}, content=(LINE + "\n") * 4)
        assert r.status_code == 200, r.text
    yield server
    server.stop()


def _raw(srv, path: str, body: str, timeout: float = 60) -> httpx.Response:
    with srv.client() as c:
        return c.post(path, content=body.encode(), headers={"content-type": "application/json"}, timeout=timeout)


def _job(**hyper) -> dict:
    spec = {"trainingDatasetUri": "gs://b/good.jsonl", "hyperParameters": hyper}
    return {"baseModel": "tiny-llama", "supervisedTuningSpec": spec}


def _clear_400(r: httpx.Response, *words: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text[:500])
    message = r.json()["error"]["message"]
    assert all(w in message for w in words), message


def test_a_huge_seed_is_refused_and_never_stalls_the_engine_for_others(srv):
    ask = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 4}}
    answers: list[int] = []

    def other() -> None:
        with srv.client() as c:
            answers.append(c.post(TINY, json=ask, timeout=60).status_code)

    others = [threading.Thread(target=other) for _ in range(4)]
    for t in others:
        t.start()
    seed = json.dumps({**ask, "generationConfig": {"maxOutputTokens": 4, "seed": 2**70}})
    _clear_400(_raw(srv, TINY, seed, timeout=30), "generationConfig.seed", "out of range")
    chat = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    _clear_400(_raw(srv, "/v1/chat/completions", json.dumps({**chat, "seed": 2**70}), timeout=30), "seed")
    big = json.dumps({**ask, "generationConfig": {"maxOutputTokens": 4, "seed": 2**63 - 1}})  # int64, past torch's
    _clear_400(_raw(srv, TINY, big, timeout=30), "generationConfig.seed must be between 0 and")
    for t in others:
        t.join(timeout=60)
    assert answers == [200] * 4
    with srv.client() as c:
        assert c.post("/v1/chat/completions", json=chat, timeout=60).status_code == 200


@pytest.mark.parametrize(
    "body, words",
    [
        (
            '{"model": "tiny-llama", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
            ["messages[0].content", "surrogate"],
        ),
        ('{"model": "tiny-llama", "messages": [{"role": "user", "content": "a\\u0000b"}]}', ["NUL"]),
        ('{"model": "tiny-llama", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}', ["finite"]),
        ('{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}', ["does not exist"]),
        ('{"model": "gpt-nonexistent-9", "messages": [{"role": "user", "content": "x"}]}', ["does not exist"]),
        (
            '{"model": "tiny-llama", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}',
            ["response_format"],
        ),
    ],
)
def test_openai_chat_refuses_what_it_cannot_use(srv, body, words):
    r = _raw(srv, "/v1/chat/completions", body)
    assert r.status_code in (400, 404), r.text
    error = r.json()["error"]
    assert all(w in error["message"] for w in words), error


def test_generate_content_refuses_structured_output(srv):
    ask = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with srv.client() as c:
        _clear_400(
            c.post(TINY, json={**ask, "generationConfig": {"responseMimeType": "application/json"}}), "responseMimeType"
        )
        _clear_400(
            c.post(TINY, json={**ask, "generationConfig": {"responseSchema": {"type": "OBJECT"}}}), "responseSchema"
        )


@pytest.mark.parametrize(
    "hyper, words",
    [
        ('{"learningRateMultiplier": Infinity}', ["finite"]),
        ('{"learningRate": 1e308}', ["learningRate"]),
        ('{"epochCount": "1000000000000000000"}', ["epochCount"]),
        ('{"epochCount": 18446744073709551616}', ["out of range"]),
        ('{"batchSize": 1000000000000}', ["batchSize"]),
        ('{"batchSize": 1e999999}', ["finite"]),
        ('{"adapterSize": 9}', ["adapterSize must be one of", "3 EIGHT", "not ranks"]),
    ],
)
def test_numbers_no_run_could_use_are_refused_and_nothing_is_stored(srv, hyper, words):
    body = json.dumps(_job()).replace('"hyperParameters": {}', f'"hyperParameters": {hyper}')
    _clear_400(_raw(srv, f"{P}/tuningJobs", body), *words)
    with srv.client() as c:  # what was refused is not stored: every list and filter still reads
        r = c.get(f"{P}/tuningJobs", params={"filter": 'method="supervised"'})
        assert r.status_code == 200 and r.json().get("tuningJobs", []) == [], r.text


BAD_URIS = ["gs://b/x\u0000.jsonl", "gs://b/" + "a" * 300 + ".jsonl", "gs://b/\u0007bell.jsonl"]


@pytest.mark.parametrize("uri", BAD_URIS)
def test_uris_with_nul_bytes_or_overlong_parts_get_a_400_on_every_door(srv, uri):
    with srv.client() as c:
        for r in (
            c.post(f"{P}/tuningJobs:preview", json={**_job(), "outputUri": uri.replace(".jsonl", "")}),
            c.post(f"{P}:deploy", json={"customModel": {"gcsUri": uri}}),
            c.post(f"{P}/tuneforge/datasets:upload", params={"uri": uri}, content=LINE + "\n"),
            c.post(f"{P}/tuneforge/datasets:inspect", json={"uri": uri, "purpose": "supervised"}),
        ):
            assert r.status_code == 400, (r.status_code, r.text[:300])
        assert c.get("/healthz").status_code == 200


def test_a_lone_surrogate_in_a_display_name_is_a_400(srv):
    body = json.dumps(_job()).replace('"baseModel"', '"tunedModelDisplayName": "a\\udc00", "baseModel"')
    _clear_400(_raw(srv, f"{P}/tuningJobs", body), "tunedModelDisplayName", "surrogate")


def test_an_overlong_upload_file_name_is_a_400(srv):
    with srv.client() as c:
        r = c.post("/v1/files", files={"file": ("x" * 5000 + ".jsonl", b"{}\n")}, data={"purpose": "fine-tune"})
    assert r.status_code == 400 and "name" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(
    "line, words",
    [("[" * 100_000 + "]" * 100_000, "line 1"), ('{"n": ' + "9" * 100_000 + "}", "line 1")],
)
def test_an_unreadable_line_is_reported_and_breaks_nothing_later(srv, line, words):
    uri = f"gs://b/unreadable-{len(line)}-{line[0]}.jsonl".replace("[", "n").replace("{", "i")
    with srv.client() as c:
        up = c.post(f"{P}/tuneforge/datasets:upload", params={"uri": uri}, content=line + "\n" + LINE + "\n")
        assert up.status_code == 200 and up.json()["errors"] == 1, up.text
        assert c.get(f"{P}/tuneforge/datasets").status_code == 200
        job = {**_job(), "supervisedTuningSpec": {"trainingDatasetUri": uri}}
        r = c.post(f"{P}/tuningJobs", json=job)
        assert r.status_code == 400 and words in r.text, r.text


def _rss(srv) -> int:
    status = Path(f"/proc/{srv.process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024


@pytest.mark.parametrize("noise", [b"\n", b"x\n"])
def test_a_large_blank_or_noisy_upload_keeps_memory_and_the_report_bounded(srv, noise):
    data = noise * (2**20 // len(noise))  # 1 MiB (8 MiB once grew a dev server by 1.5 GB)
    before = _rss(srv)
    with srv.client() as c:
        r = c.post(f"{P}/tuneforge/datasets:upload", params={"uri": f"gs://b/noise-{len(noise)}.jsonl"}, content=data)
        assert r.status_code == 200, r.text
        found = r.json()
        listed = c.get(f"{P}/tuneforge/datasets").json()["datasets"]
        report = c.post(
            f"{P}/tuneforge/datasets:inspect", json={"uri": f"gs://b/noise-{len(noise)}.jsonl", "purpose": "supervised"}
        ).json()
    grown = _rss(srv) - before
    lines = len(data) // len(noise)
    assert found["lines"] == lines and found["warnings" if noise == b"\n" else "errors"] >= lines
    assert any(d["uri"].endswith(f"noise-{len(noise)}.jsonl") for d in listed)
    assert len(report["problems"]) <= 202 and "more" in report["problems"][-1]["message"]  # a count past the first
    assert grown < 200 * 2**20, f"the server grew by {grown / 2**20:.0f} MiB"  # measured at 2 MiB: 3 and 22 MiB
