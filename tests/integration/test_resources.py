"""pipelineJobs, endpoints, operations over HTTP; the SDK's PipelineJob and Endpoint; schema upgrades."""

from __future__ import annotations

import json
import shutil

import pytest

TUNE = "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v3.0.0"
CHAT = "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-chat-model/v3.0.0"
DISTILL = "https://us-kfp.pkg.dev/ml-pipeline/distillation/distillation/v1.0.0"
BASE = "/v1/projects/p/locations/us-central1/pipelineJobs"


def body(template=TUNE, **params):
    values = {"project": "p", "dataset_uri": "gs://b/code.jsonl", **params}
    if template != DISTILL:
        values.setdefault("large_model_reference", "codechat-bison@002" if template == CHAT else "code-bison@002")
    return {
        "displayName": "x",
        "runtimeConfig": {"gcsOutputDirectory": "gs://b/out", "parameterValues": values},
        "templateUri": template,
    }


def err(resp):
    return resp.json()["error"]["message"]


def test_pipeline_jobs_create_get_list_cancel(tmp_path):
    from tests.integration.conftest import start_server

    # no worker: the job stays PENDING, so cancel meets it there (the running case is in test_pipelines.py)
    sqlite_server = start_server(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", extra_env={"TUNEFORGE_WORKERS": "0"})
    try:
        _create_get_list_cancel(sqlite_server)
    finally:
        sqlite_server.stop()


def _create_get_list_cancel(sqlite_server):
    with sqlite_server.client() as c:
        r = c.post(
            BASE,
            params={"pipelineJobId": "tune-large-model-20261123072027"},
            content=json.dumps(
                body(
                    train_steps=10.0,
                    evaluation_data_uri="gs://b/eval.jsonl",
                    evaluation_interval="5",
                    enable_early_stopping="true",
                )
            ),
        )
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["name"] == "projects/p/locations/us-central1/pipelineJobs/tune-large-model-20261123072027"
        assert job["state"] == "PIPELINE_STATE_PENDING" and job["templateUri"] == TUNE
        tasks = [t["taskName"] for t in job["jobDetail"]["taskDetails"]]
        assert tasks == [
            "tune-large-model",
            "validate-data",
            "tune",
            "evaluate",
            "upload-llm-model",
            "deploy-llm-model",
        ]
        again = c.post(BASE, params={"pipelineJobId": "tune-large-model-20261123072027"}, content=json.dumps(body()))
        assert again.status_code == 409 and again.json()["error"]["status"] == "ALREADY_EXISTS"
        assert [j["name"] for j in c.get(BASE).json()["pipelineJobs"]] == [job["name"]]
        assert c.post("/v1/" + job["name"] + ":cancel").json() == {}
        cancelled = c.get("/v1/" + job["name"]).json()
        assert cancelled["state"] == "PIPELINE_STATE_CANCELLED" and cancelled["error"]["code"] == 1
        assert c.post("/v1/" + job["name"] + ":cancel").status_code == 400
        d = c.post(
            BASE,
            content=json.dumps(
                body(DISTILL, teacher_model_reference="text-unicorn@001", student_model_reference="text-bison@002")
            ),
        )
        assert d.status_code == 200 and d.json()["name"].split("/")[-1].startswith("distillation-")
        assert "teacher-labelling" in [t["taskName"] for t in d.json()["jobDetail"]["taskDetails"]]


@pytest.mark.parametrize(
    "payload,message",
    [
        ({**body(), "templateUri": "https://example.com/mine"}, "is not a supported pipeline"),
        (
            body(**{"evaluation_data_uri:": "gs://b/e.jsonl"}),
            'unknown parameter "evaluation_data_uri:"; did you mean "evaluation_data_uri"?',
        ),
        (body(CHAT, evaluation_data_uri="gs://b/e.jsonl"), "evaluation is not supported for code chat"),
        (body(train_steps="many"), "train_steps must be an integer"),
        (
            body(enable_early_stopping="yes", evaluation_data_uri="gs://b/e.jsonl"),
            "enable_early_stopping must be true or false",
        ),
        (body(evaluation_interval=5), "evaluation_interval needs evaluation_data_uri"),
        (body(accelerator_type="FPGA"), 'accelerator_type must be "GPU" or "TPU"'),
        (body(location="mars"), "not a supported region"),
        (body(DISTILL, teacher_model_reference="text-unicorn@001"), "student_model_reference is required"),
        ({**body(encryption_spec_key_name="k1"), "encryptionSpec": {"kmsKeyName": "k2"}}, "differ"),
    ],
)
def test_pipeline_parameters_are_checked(shared_server, payload, message):
    with shared_server.client() as c:
        r = c.post(BASE, content=json.dumps(payload))
        assert r.status_code == 400 and message in err(r), r.text


def test_endpoints_and_operations(sqlite_server):
    with sqlite_server.client() as c:
        op = c.post("/v1/projects/p/locations/us-central1/endpoints", content=json.dumps({"displayName": "e"})).json()
        assert op["done"] and op["response"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.Endpoint"
        endpoint = op["response"]["name"]
        assert op["name"].startswith(endpoint + "/operations/")
        assert c.get("/ui/" + op["name"]).json() == op  # the SDK polls under /ui/
        assert c.get("/v1/" + endpoint).json()["displayName"] == "e"
        assert [e["name"] for e in c.get("/v1/projects/p/locations/us-central1/endpoints").json()["endpoints"]] == [
            endpoint
        ]
        deleted = c.delete("/v1/" + endpoint).json()
        assert deleted["done"] and deleted["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}
        assert c.get("/v1/" + endpoint).status_code == 404
        assert c.get("/ui/projects/p/locations/us-central1/operations/1").status_code == 404


def test_sdk_endpoint_create_and_pipeline_list(sqlite_server):
    import google.auth.credentials
    from google.cloud import aiplatform

    aiplatform.init(
        project="p",
        location="us-central1",
        api_endpoint=sqlite_server.url,
        api_transport="rest",
        credentials=google.auth.credentials.AnonymousCredentials(),
    )
    endpoint = aiplatform.Endpoint.create(display_name="sdk-endpoint")
    assert endpoint.display_name == "sdk-endpoint"
    assert [e.resource_name for e in aiplatform.Endpoint.list()] == [endpoint.resource_name]
    with sqlite_server.client() as c:
        c.post(BASE, params={"pipelineJobId": "tune-large-model-1"}, content=json.dumps(body()))
    jobs = aiplatform.PipelineJob.list()
    assert [j.resource_name.split("/")[-1] for j in jobs] == ["tune-large-model-1"]
    assert jobs[0].state.name.startswith("PIPELINE_STATE_")  # the worker may already be running it
    model_path = "/v1/projects/p/locations/us-central1/models/123%401"
    with sqlite_server.client() as c:  # "@" arrives percent-encoded; an unknown model is a 404 that names it
        r = c.get(model_path)
        assert r.status_code == 404 and "models/123 not found" in err(r)


def _old_database(tmp_path, revision: str, fill=None):
    """(url, engine) of a SQLite database migrated only up to ``revision``; ``fill(conn)`` writes its rows."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config

    import tuneforge.control.db as db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        if fill:
            fill(conn)
    return url, engine


def test_server_upgrades_an_older_database(tmp_path):
    from sqlalchemy import inspect

    from tuneforge.control.db import Store, upgrade

    url, engine = _old_database(tmp_path, "0001")  # a database from before pipelines and endpoints
    assert "endpoints" not in inspect(engine).get_table_names()
    Store(url)  # what the server does on start
    assert {"endpoints", "pipeline_jobs", "operations", "tuning_jobs"} <= set(inspect(engine).get_table_names())
    upgrade(engine)  # idempotent


def test_an_upgrade_gives_each_bucket_in_use_to_the_project_that_used_it_first(tmp_path):
    """Bucket owners came in with 0010: the backfill (0012) gives a bucket an older deployment's project uploaded to
    or trained into to the earliest such project, so its tenants keep reading their data after the upgrade."""
    from sqlalchemy import text

    from tuneforge.control.access import BucketPolicy
    from tuneforge.control.db import Store
    from tuneforge.settings import Settings

    def fill(conn):
        for project, uri, day in (("a", "gs://lake/a.jsonl", 2), ("b", "gs://lake/b.jsonl", 3), ("b", "gs://bb/x", 1)):
            conn.execute(
                text(
                    "INSERT INTO datasets (project, location, uri, purpose, size_bytes, sha256, create_time) "
                    f"VALUES ('{project}', 'us-central1', '{uri}', 'supervised', 1, '', '2026-01-0{day} 00:00:00')"
                )
            )
        conn.execute(
            text(
                "INSERT INTO tuning_jobs (id, project, location, state, resource, config, labels, display_name, "
                "base_model, create_time, update_time, cancel_requested, pause_requested, attempts) VALUES ('1', 'c', "
                """'us-central1', 'JOB_STATE_SUCCEEDED', '{}', '{"output_uri": "gs://out-c/run"}', '{}', '', '', """
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 0, 0, 1)"
            )
        )

    url, _ = _old_database(tmp_path, "0011", fill)
    policy = BucketPolicy(Store(url), Settings(api_keys="K=a"))  # Store(url): what the server does on start
    assert [policy.owner(b, "x") for b in ("lake", "bb", "out-c", "new")] == [
        {"a": True},
        {"b": True},
        {"c": True},
        None,
    ]


def test_sdk_support_publisher_models_templates_and_bucket_probe(shared_server):
    import yaml

    from tuneforge.vertex_offline import stand_in_template

    with shared_server.client() as c:
        model = c.get("/v1/publishers/google/models/code-bison%40002").json()
        assert model["name"] == "publishers/google/models/code-bison" and model["versionId"] == "002"
        assert model["publisherModelTemplate"].endswith("/publishers/google/models/code-bison@002")
        assert model["predictSchemata"]["instanceSchemaUri"].endswith("/code_generation_1.0.0.yaml")
        chat = c.get("/v1/publishers/google/models/codechat-bison@002").json()
        assert chat["predictSchemata"]["instanceSchemaUri"].endswith("/codechat_generation_1.0.0.yaml")
        r = c.get("/v1/publishers/google/models/gemini-1.5-flash-002")
        assert r.status_code == 404 and "code-bison@002" in err(r)
        spec = yaml.safe_load(c.get("/tuneforge/pipeline-templates/ml-pipeline/distillation/distillation/v1.0.0").text)
        assert spec == stand_in_template(DISTILL)
        assert spec["pipelineInfo"]["name"] == "distillation" and spec["schemaVersion"] == "2.1.0"
        assert {"teacher_model_reference", "student_model_reference", "train_steps"} <= set(
            spec["root"]["inputDefinitions"]["parameters"]
        )
        assert c.get("/tuneforge/pipeline-templates/ml-pipeline/other/v1").status_code == 404
        # the SDK's bucket probe must get a 4xx, never a 200 (contract §1)
        assert c.get("/storage/v1/b/my-bucket", params={"fields": "name"}).status_code == 404
        assert c.post("/storage/v1/b", params={"project": "p"}, json={"name": "x"}).status_code == 403


def test_the_readme_pipeline_snippet_goes_on_past_the_bucket_probe_without_a_traceback(tmp_path):
    """The SDK probes the pipeline bucket (GET 404, POST 403: contract §1) and logs the failure with a traceback;
    vertex_offline.install turns that into one line. The README's snippet, run as a user would, in a subprocess."""
    import subprocess
    import sys

    from tests.integration.conftest import examples_dir, start_server

    home = tmp_path / "home"
    (home / "buckets" / "my-bucket").mkdir(parents=True)
    shutil.copy(examples_dir() / "code_generation.jsonl", home / "buckets" / "my-bucket" / "code.jsonl")
    server = start_server(home, f"sqlite:///{home / 'tuneforge.db'}", args=("--workers", "0"))
    script = f"""
import vertexai, google.auth.credentials
from tuneforge import vertex_offline
vertex_offline.install("{server.url}")
vertexai.init(project="my-project", location="us-central1", api_endpoint="{server.url}", api_transport="rest",
              credentials=google.auth.credentials.AnonymousCredentials())
from vertexai.language_models import CodeGenerationModel
job = CodeGenerationModel.from_pretrained("code-bison@002").tune_model(
    training_data="gs://my-bucket/code.jsonl", train_steps=2, tuning_job_location="us-central1",
    tuned_model_location="us-central1", accelerator_type="GPU")
print("SUBMITTED", job._job.resource_name)
"""
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "SUBMITTED projects/my-project/locations/us-central1/pipelineJobs/" in text, text
    assert "Traceback" not in text and "403" not in text, text
    assert "no bucket to create" in text
