"""Tenant isolation on a live server with two projects' keys (KEYA -> a, KEYB -> b): B's key, on B's own
/projects/b/... routes, never reads, inspects, trains on, deploys from or writes to A's buckets, and a refusal is the
same whether A's object exists or not; a bucket the operator shares (TUNEFORGE_BUCKET_ACCESS) is read-only to B; a
bucket becomes the project's that first writes to it. Every /projects/{project}/... route of the app refuses B's
key on A's project (the route list is read from the app, so a new route is covered)."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from tests.integration.conftest import start_server

LOC = "us-central1"
A, B = {"Authorization": "Bearer KEYA"}, {"Authorization": "Bearer KEYB"}
LINE = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]}]}
DATA = (json.dumps(LINE) + "\n").encode() * 4
SCOUT = "publishers/meta/models/llama4@llama-4-scout-17b-16e-instruct"


@pytest.fixture(scope="module")
def tenants(tmp_path_factory):
    home = tmp_path_factory.mktemp("tenants-home")
    env = {
        "TUNEFORGE_API_KEYS": "KEYA=a,KEYB=b",
        "TUNEFORGE_BUCKET_ACCESS": "shared=a|b:read,team/b-corner=b",
        "TUNEFORGE_WORKERS": "0",
        "TUNEFORGE_QUEUE_OVER_QUOTA": "1",
        "TUNEFORGE_TEACHER_URLS": "https://llm.internal/v1/",
    }
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}", extra_env=env)
    with srv.client() as c:
        for uri in ("gs://bkt-a/secret-train.jsonl", "gs://shared/common.jsonl"):
            r = c.post(
                f"/v1/projects/a/locations/{LOC}/tuneforge/datasets:upload",
                params={"uri": uri},
                content=DATA,
                headers=A,
            )
            assert r.status_code == 200, r.text
    model = srv.bucket / "tuneforge-a" / "tuningJobs" / "1" / "postprocess" / "node-0" / "checkpoints" / "final"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    yield srv
    srv.stop()


def _post(srv, path: str, body=None, headers=B, **kw) -> httpx.Response:
    with srv.client() as c:
        return c.post(f"/v1/projects/b/locations/{LOC}{path}", json=body, headers=headers, **kw)


def _refused(r: httpx.Response, uri: str) -> str:
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    message = error["message"]
    assert error["status"] == "PERMISSION_DENIED", error
    assert f"may not read {uri}" in message or f"may not write to {uri}" in message, error
    return message.replace(uri, "URI")


def _job(train: str, output: str | None = None) -> dict:
    job = {"baseModel": "meta/llama3_1@llama-3.1-8b", "supervisedTuningSpec": {"trainingDatasetUri": train}}
    return {**job, "outputUri": output} if output else job


A_FILES = ["gs://bkt-a/secret-train.jsonl", "gs://tuneforge-files/a/file-1.jsonl"]
NOT_THERE = "gs://bkt-a/no-such-file.jsonl"


@pytest.mark.parametrize("uri", [*A_FILES, NOT_THERE, "gs://tuneforge-a/tuningJobs/1/x.jsonl", "gs://nobodys/x.jsonl"])
def test_b_cannot_read_train_on_or_inspect_what_is_not_its_own(tenants, uri):
    messages = {
        _refused(_post(tenants, "/tuneforge/datasets:inspect", {"uri": uri, "purpose": "supervised"}), uri),
        _refused(_post(tenants, "/tuningJobs", _job(uri)), uri),
        _refused(_post(tenants, "/tuningJobs:preview", _job(uri)), uri),
    }
    for path in ("/pipelineJobs", "/pipelineJobs:preview"):
        pipeline = {
            "templateUri": "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v2.0.0",
            "runtimeConfig": {"parameterValues": {"dataset_uri": uri, "large_model_reference": "text-bison@002"}},
        }
        messages.add(_refused(_post(tenants, path, pipeline), uri))
    assert len({m.split(":", 1)[1] for m in messages}) == 1  # one answer, whatever the door (and whether it exists)


def test_a_refusal_does_not_say_whether_the_object_exists(tenants):
    body = {"uri": A_FILES[0], "purpose": "supervised"}
    there = _refused(_post(tenants, "/tuneforge/datasets:inspect", body), A_FILES[0])
    missing = _refused(_post(tenants, "/tuneforge/datasets:inspect", {**body, "uri": NOT_THERE}), NOT_THERE)
    assert there == missing
    for uri in (A_FILES[0], NOT_THERE):  # an upload over A's existing file is no 409 telling B it exists
        r = _post(tenants, "/tuneforge/datasets:upload", params={"uri": uri}, content=DATA)
        assert _refused(r, uri) == _refused(
            _post(tenants, "/tuneforge/datasets:upload", params={"uri": NOT_THERE}, content=DATA), NOT_THERE
        )


@pytest.mark.parametrize(
    "uri",
    [
        "gs://tuneforge-files/a/planted.jsonl",
        "gs://bkt-a/planted.jsonl",
        "gs://tuneforge-a/x.jsonl",
        "gs://shared/planted.jsonl",
        "gs://team/b-corner-not/x.jsonl",
    ],
)
def test_b_cannot_write_into_a_bucket_it_does_not_own(tenants, uri):
    _refused(_post(tenants, "/tuneforge/datasets:upload", params={"uri": uri}, content=DATA), uri)
    out = uri.rsplit("/", 1)[0] + "/out"
    _refused(_post(tenants, "/tuningJobs", _job("gs://tuneforge-b/mine.jsonl", output=out)), out)
    assert not (tenants.bucket / uri[5:]).exists()


def test_b_cannot_deploy_a_model_from_a_bucket(tenants):
    uri = "gs://tuneforge-a/tuningJobs/1/postprocess/node-0/checkpoints/final"
    _refused(_post(tenants, ":deploy", {"customModel": {"gcsUri": uri}}), uri)
    with tenants.client() as c:
        assert c.get(f"/v1/projects/b/locations/{LOC}/models", headers=B).json().get("models", []) == []


def test_shared_buckets_claims_and_prefix_grants(tenants):
    # The operator's shared bucket: B reads (and trains on) it, A writes it.
    r = _post(tenants, "/tuneforge/datasets:inspect", {"uri": "gs://shared/common.jsonl", "purpose": "supervised"})
    assert r.status_code == 200 and r.json()["file"]["examples"] == 4, r.text
    assert _post(tenants, "/tuningJobs:preview", _job("gs://shared/common.jsonl")).json()["ready"] is True
    # A bucket nobody owned becomes B's with its first write; then A cannot read it, B trains on it.
    r = _post(tenants, "/tuneforge/datasets:upload", params={"uri": "gs://bkt-b/train.jsonl"}, content=DATA)
    assert r.status_code == 200, r.text
    with tenants.client() as c:
        r = c.post(
            f"/v1/projects/a/locations/{LOC}/tuneforge/datasets:inspect",
            headers=A,
            json={"uri": "gs://bkt-b/train.jsonl", "purpose": "supervised"},
        )
    _refused(r, "gs://bkt-b/train.jsonl")
    job = _post(tenants, "/tuningJobs", _job("gs://bkt-b/train.jsonl", output="gs://bkt-b/out"))
    assert job.status_code == 200, job.text
    # A prefix granted to B in a bucket nobody else was given: B writes under it.
    r = _post(tenants, "/tuneforge/datasets:upload", params={"uri": "gs://team/b-corner/x.jsonl"}, content=DATA)
    assert r.status_code == 200, r.text
    # B's own list shows only what B uploaded or named.
    with tenants.client() as c:
        listed = c.get(f"/v1/projects/b/locations/{LOC}/tuneforge/datasets", headers=B).json()["datasets"]
    assert {d["uri"] for d in listed} == {"gs://bkt-b/train.jsonl", "gs://team/b-corner/x.jsonl"}


def test_serving_reads_images_only_from_the_projects_buckets(tenants):
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, format="PNG")
    for bucket in ("bkt-a", "bkt-b"):  # bkt-a is A's (its upload above), bkt-b B's (claimed above)
        (tenants.bucket / bucket / "red.png").write_bytes(png.getvalue())

    def ask(uri: str) -> httpx.Response:
        part = {"fileData": {"mimeType": "image/png", "fileUri": uri}}
        body = {
            "contents": [{"role": "user", "parts": [part, {"text": "colour?"}]}],
            "generationConfig": {"maxOutputTokens": 2},
        }
        return _post(tenants, f"/{SCOUT}:generateContent", body, timeout=120)

    assert ask("gs://bkt-b/red.png").status_code == 200
    assert _refused(ask("gs://bkt-a/red.png"), "gs://bkt-a/red.png") == _refused(
        ask("gs://bkt-a/none.png"), "gs://bkt-a/none.png"
    )


def _routes():
    from tuneforge.api.app import create_app
    from tuneforge.settings import Settings

    app = create_app(Settings(home="/nonexistent-never-written"), with_worker=False, store=_NoStore())
    for route in iter_route_contexts(app.routes):  # every route, through the routers the app includes
        if "{project}" in route.path and route.path.startswith("/v1/"):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path


class _NoStore:
    """create_app only keeps the store; reading the route list needs no database."""

    dialect = "none"


def _fill(path: str) -> str:
    values = {"project": "a", "location": LOC, "publisher": "google", "model": "gemini-2.5-flash"}
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: values.get(m.group(1), "123"), path)


def test_every_project_route_refuses_another_projects_key(tenants):
    routes = list(_routes())
    assert len(routes) > 30  # the whole API, read from the app
    with tenants.client() as c:
        for method, path in routes:
            for headers, status in ((B, 403), ({}, 401), ({"Authorization": "Bearer nope"}, 401)):
                r = c.request(method, _fill(path), headers=headers, json={})
                assert r.status_code == status, (method, path, headers, r.status_code, r.text[:300])


def test_pipeline_job_ids_are_per_project(tenants):
    template = "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v2.0.0"

    def create(project: str, headers: dict, data: str) -> httpx.Response:
        body = {
            "templateUri": template,
            "runtimeConfig": {"parameterValues": {"dataset_uri": data, "large_model_reference": "text-bison@002"}},
        }
        with tenants.client() as c:
            return c.post(
                f"/v1/projects/{project}/locations/{LOC}/pipelineJobs",
                params={"pipelineJobId": "same-name"},
                json=body,
                headers=headers,
            )

    a = create("a", A, "gs://bkt-a/secret-train.jsonl")
    b = create("b", B, "gs://shared/common.jsonl")
    assert a.status_code == b.status_code == 200, (a.text, b.text)  # B is not told that A has one of that name
    assert create("b", B, "gs://shared/common.jsonl").status_code == 409  # within a project, still unique
    with tenants.client() as c:
        got = c.get(f"/v1/projects/b/locations/{LOC}/pipelineJobs/same-name", headers=B).json()
        mine = c.get(f"/v1/projects/a/locations/{LOC}/pipelineJobs/same-name", headers=A).json()
    assert got["name"].startswith("projects/b/") and mine["name"].startswith("projects/a/")
    assert got["runtimeConfig"]["parameterValues"]["dataset_uri"] == "gs://shared/common.jsonl"
    assert mine["runtimeConfig"]["parameterValues"]["dataset_uri"] == "gs://bkt-a/secret-train.jsonl"


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "http://127.0.0.1:5432/v1", "https://llm.internal.evil/v1/"]
)
def test_a_teacher_url_the_operator_did_not_allow_is_refused(tenants, url):
    """A distillation teacher given as a URL makes the server connect to it: with tenants, only the operator's
    TUNEFORGE_TEACHER_URLS prefixes, on create and on preview (the worker checks again when it runs)."""
    body = {
        "templateUri": "https://us-kfp.pkg.dev/ml-pipeline/distillation/distillation/v1.0.0",
        "runtimeConfig": {
            "parameterValues": {
                "dataset_uri": "gs://shared/common.jsonl",
                "teacher_model_reference": url,
                "student_model_reference": "text-bison@002",
            }
        },
    }
    for path in ("/pipelineJobs", "/pipelineJobs:preview"):
        r = _post(tenants, path, body)
        assert r.status_code == 403, r.text
        assert "TUNEFORGE_TEACHER_URLS" in r.json()["error"]["message"], r.text
    body["runtimeConfig"]["parameterValues"]["teacher_model_reference"] = "https://llm.internal/v1/chat"
    assert _post(tenants, "/pipelineJobs", body).status_code == 200


def test_b_cannot_export_its_model_into_a_bucket_it_does_not_own(tenants):
    """models.export writes where the request says: the destination is checked like every URI (write access)."""
    from tuneforge.control.db import Store
    from tuneforge.control.registry import register_model

    store = Store(f"sqlite:///{tenants.home / 'tuneforge.db'}")
    with store.session() as s:
        model = register_model(
            s,
            project="b",
            location=LOC,
            display_name="b's",
            description="",
            artifact_uri="gs://tuneforge-b/m",
            base_model="meta/llama3_1@llama-3.1-8b",
            kind="lora",
            labels={},
            source_job="1",
        )
        model_id = model.id
    store.dispose()
    body = {"outputConfig": {"exportFormatId": "gguf-q8_0", "artifactDestination": {"outputUriPrefix": "gs://bkt-a/x"}}}
    r = _post(tenants, f"/models/{model_id}:export", body)
    assert r.status_code == 403 and "may not write to gs://bkt-a/x/model-" in r.json()["error"]["message"], r.text
    with tenants.client() as c:  # and A cannot export B's model at all
        r = c.post(f"/v1/projects/a/locations/{LOC}/models/{model_id}:export", json=body, headers=A)
    assert r.status_code == 404, r.text
