"""The OpenAPI document describes the API it serves: every body and answer has a named schema, and a bounded fuzzing
run (schemathesis, against a live server on SQLite) finds no server error, no undocumented status code and no
answer that breaks its schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"


def test_the_document_names_every_body_answer_and_error(shared_server):
    doc = httpx.get(shared_server.url + "/openapi.json", timeout=30).json()
    schemas = doc["components"]["schemas"]
    assert {
        "TuningJob",
        "PipelineJob",
        "Model",
        "Endpoint",
        "DeployedModel",
        "Operation",
        "ErrorBody",
        "PredictRequest",
        "GenerateContentRequest",
        "ChatCompletionRequest",
        "ChatCompletion",
    } <= set(schemas)
    assert "HTTPValidationError" not in schemas  # bad requests answer 400 with a google.rpc.Status
    create = doc["paths"]["/v1/projects/{project}/locations/{location}/tuningJobs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TuningJob"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "422" not in codes, (method, path)
            if path.startswith("/v1/"):
                assert {"200", "400", "404", "500"} <= codes, (method, path, codes)
                # OpenAI's routes answer OpenAI's error body; the rest a google.rpc.Status.
                openai_paths = ("/v1/files", "/v1/fine_tuning", "/v1/models", "/v1/chat/completions")
                body = "OpenAIErrorBody" if path.startswith(openai_paths) else "ErrorBody"
                assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
                    "$ref": f"#/components/schemas/{body}"
                }
    assert not [p for p in doc["paths"] if p.startswith(("/v1beta1/", "/ui/"))]  # the same routes, listed once
    # OpenAPI links from each create to what its id reaches (a stateful fuzzer follows them), to real operations
    ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    links = {
        path: operations["post"]["responses"].get("200", {}).get("links", {})
        for path, operations in doc["paths"].items()
        if "post" in operations
    }
    assert len(links["/v1/projects/{project}/locations/{location}/pipelineJobs"]) == 3
    assert len(links["/v1/files"]) == 4 and len(links["/v1/fine_tuning/jobs"]) == 6
    assert all(link["operationId"] in ids for found in links.values() for link in found.values())
    assert httpx.get(shared_server.url + "/docs", timeout=30).status_code == 200


def test_only_documented_versions_are_routes(shared_server):
    r = httpx.get(shared_server.url + "/v2/projects/p/locations/us-central1/tuningJobs", timeout=30)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    for version in ("v1", "v1beta1", "ui"):
        assert (
            httpx.get(
                f"{shared_server.url}/{version}/projects/p/locations/us-central1/tuningJobs", timeout=30
            ).status_code
            == 200
        )


def test_a_fuzzing_run_finds_no_server_error_and_no_undocumented_answer(shared_server, tmp_path):
    st = Path(sys.executable).with_name("st")
    out = subprocess.run(
        [
            str(st),
            "--no-color",
            "run",
            f"{shared_server.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "12",
            "--seed",
            "1",
            "--request-timeout",
            "30",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=tmp_path,  # schemathesis keeps a cache in its working folder
    )
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    # the stateful phase ran and followed links (an uploaded file's id into get, content, delete, a job's create)
    covered = re.search(r"API Links:\s+(\d+) covered", out.stdout)
    assert covered and int(covered.group(1)) >= 1, out.stdout[-4000:]


def test_openai_routes_answer_openais_error_shape(shared_server):
    """Under /v1/files (OpenAI's paths) an unknown path, a missing object and a bad parameter answer OpenAI's body."""
    for url, status in (("/v1/files/file-nope", 404), ("/v1/files?limit=0", 400), ("/v1/files/x/nothing", 404)):
        r = httpx.get(shared_server.url + url, timeout=30)
        assert r.status_code == status, (url, r.text)
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error", error
    assert httpx.get(shared_server.url + "/v1/files?limit=0", timeout=30).json()["error"]["param"] == "limit"
