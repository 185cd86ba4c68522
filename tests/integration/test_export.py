"""models.export as GGUF through the official SDK, unmodified: a tuned model of a Llama-family base lists its formats
(gguf-f16, gguf-q8_0), Model.export_model writes the file and a Modelfile under Vertex's layout and returns where,
and the file answers as the tuned artifact does; a Gemma model lists none and the SDK says it is not exportable; bad
requests are 4xx naming the field."""

from __future__ import annotations

import pytest
from tests.integration.conftest import init_vertex, start_server, wait_for, write_dataset

from tuneforge.train.demo_task import load_model

P = "/v1/projects/p/locations/us-central1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):

    home = tmp_path_factory.mktemp("export-home")
    write_dataset(home / "buckets" / "b" / "train.jsonl", n=16, fmt="chat")
    server = start_server(home, f"sqlite:///{home / 'tuneforge.db'}", extra_env={"TUNEFORGE_AUTO_DEPLOY": "0"})
    init_vertex(server.url)
    yield server
    server.stop()


def _tuned(srv, base: str) -> str:
    job = {
        "baseModel": base,
        "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl", "hyperParameters": {"epochCount": "1"}},
    }
    with srv.client() as c:
        name = c.post(f"{P}/tuningJobs", json=job).json()["name"]
        done = wait_for(
            lambda: (j := c.get(f"/v1/{name}").json())["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED") and j,
            timeout=300,
            what="the tuning job",
        )
    assert done["state"] == "JOB_STATE_SUCCEEDED", done
    return done["tunedModel"]["model"]


def test_the_sdk_exports_a_tuned_llama_model_as_gguf_that_answers_as_the_artifact(srv):
    import torch
    from google.cloud import aiplatform
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = aiplatform.Model(_tuned(srv, "meta/llama3_1@llama-3.1-8b"))
    assert sorted(model.supported_export_formats) == ["gguf-f16", "gguf-q8_0"]
    out = model.export_model(export_format_id="gguf-f16", artifact_destination="gs://b/exports/")
    uri = out["artifactOutputUri"]
    assert uri.startswith(f"gs://b/exports/model-{model.name}/gguf-f16/"), out
    folder = srv.bucket / uri.removeprefix("gs://")
    gguf = [p.name for p in folder.glob("*.f16.gguf")]
    assert len(gguf) == 1 and sorted(p.name for p in folder.iterdir()) == sorted([*gguf, "Modelfile"])
    # the file, read back by transformers, answers greedily as the tuned artifact does (plain transformers + peft)
    artifact = srv.bucket / model.uri.removeprefix("gs://")
    tokenizer, tuned = load_model(artifact)
    back = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf[0], dtype=torch.float32).eval()
    assert AutoTokenizer.from_pretrained(folder, gguf_file=gguf[0])("abc")["input_ids"] == tokenizer("abc")["input_ids"]
    for prompt in ("abc", "hello", "tune"):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            want, got = (m.generate(**ids, max_new_tokens=8, do_sample=False) for m in (tuned, back))
        assert got.tolist() == want.tolist(), prompt


def test_models_that_cannot_be_exported_and_bad_requests_are_refused(srv):
    from google.cloud import aiplatform

    gemma = aiplatform.Model(_tuned(srv, "gemini-2.5-flash"))
    assert gemma.supported_export_formats == {}
    with pytest.raises(ValueError, match="not exportable"):
        gemma.export_model(export_format_id="gguf-f16", artifact_destination="gs://b/x/")
    with srv.client() as c:
        models = c.get(f"{P}/models").json()["models"]
        llama = next(m for m in models if m.get("supportedExportFormats"))["name"]
        gemma_name = next(m for m in models if not m.get("supportedExportFormats"))["name"]
        for name, body, words in (
            (llama, {"outputConfig": {"exportFormatId": "tf-saved-model"}}, "exportFormatId must be one of"),
            (llama, {"outputConfig": {"exportFormatId": "gguf-q8_0"}}, "outputUriPrefix is required"),
            (gemma_name, {"outputConfig": {"exportFormatId": "gguf-q8_0"}}, "has no export format"),
        ):
            r = c.post(f"/v1/{name}:export", json=body)
            assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
        r = c.post(f"{P}/models/nope:export", json={"outputConfig": {"exportFormatId": "gguf-q8_0"}})
        assert r.status_code == 404


def test_an_export_a_restart_interrupted_ends_aborted(tmp_path):
    from tuneforge.control import operations
    from tuneforge.control.db import Store
    from tuneforge.control.exports import METADATA, ExportService
    from tuneforge.settings import Settings

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    name = operations.record_pending(store, "projects/p/locations/us-central1/models/1", METADATA, {"outputInfo": {}})
    other = operations.record_pending(store, "projects/p/locations/us-central1/endpoints/2", "x.DeployMetadata")
    ExportService(store, Settings(home=tmp_path)).recover()
    op = operations.get(store, name)
    assert op.done and op.error.code == 10 and "export the model again" in op.error.message  # 10: ABORTED
    assert not operations.get(store, other).done  # a deployment's operation is the deployments' to resume
    store.dispose()
