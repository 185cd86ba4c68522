"""The API the web console is built on, against a live server: the base model catalog, dataset uploads (never over an
existing file), the dataset list and reports, job previews (what create would do, stored nowhere; the estimate is
measured from finished jobs), job events, list filters, and base-model serving (publishers/…/models/…)."""

from __future__ import annotations

import json
import shutil

import pytest
from tests.integration.conftest import examples_dir, start_server, wait_for

P = "/v1/projects/console-api/locations/us-central1"
WORDS = ["abc", "hello", "world", "tuneforge", "vertex", "lora"]
GOOD = "".join(
    json.dumps({"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": w[::-1]}]}) + "\n"
    for w in WORDS * 4
)
BAD = GOOD + '{"messages": [{"role": "bot", "content": "x"}]}\n' + "not json\n"
TUNE = "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v3.0.0"


def sft(uri: str, **spec) -> dict:
    return {"baseModel": "tiny-llama", "supervisedTuningSpec": {"trainingDatasetUri": uri, **spec}}


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """This module's server: uploads limited to 100 kB."""
    home = tmp_path_factory.mktemp("console-api-home")
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}", extra_env={"TUNEFORGE_MAX_UPLOAD_BYTES": "100000"})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(shared_server):
    """The module's server with two uploaded files and one finished LoRA job (on the good one)."""
    with shared_server.client() as c:
        for name, text in (("good", GOOD), ("bad", BAD)):
            r = c.post(f"{P}/tuneforge/datasets:upload", params={"uri": f"gs://up/{name}.jsonl"}, content=text)
            assert r.status_code == 200, r.text
        before = c.post(f"{P}/tuningJobs:preview", json=sft("gs://up/good.jsonl")).json()
        job = c.post(f"{P}/tuningJobs", json=sft("gs://up/good.jsonl")).json()
        done = wait_for(
            lambda: (j := c.get(f"/v1/{job['name']}").json())["state"].endswith(("SUCCEEDED", "FAILED")) and j,
            timeout=180,
            what="the job to finish",
        )
    assert done["state"] == "JOB_STATE_SUCCEEDED", done
    shared_server.preview_before, shared_server.job = before, done
    return shared_server


def test_base_models_show_modes_limits_defaults_and_what_they_run_on(api):
    with api.client() as c:
        models = {m["id"]: m for m in c.get(f"{P}/tuneforge/baseModels").json()["models"]}
    tiny = models["tiny-llama"]
    assert tiny["kind"] == "open" and tiny["weightsConfigured"] and not tiny.get("standIn")
    assert {m["tuningMode"] for m in tiny["modes"]} == {"PEFT_ADAPTER", "FULL"}
    assert all(m["maxSeqLen"] > 0 and m["learningRate"] > 0 for m in tiny["modes"])
    gemini = models["gemini-2.5-flash"]  # dev mode: a closed id runs on its family's stand-in, and says so
    assert gemini["kind"] == "closed" and gemini["standIn"] and gemini["runsOn"] == "tiny-gemma3"
    assert not gemini["weightsConfigured"] and "stand-in" in gemini["note"]
    assert [m["tuningMode"] for m in gemini["modes"]] == ["PEFT_ADAPTER"]  # Gemini-style jobs tune adapters
    llama = models["meta/llama3_1@llama-3.1-8b"]
    assert llama["modalities"] == ["text"] and llama["runsOn"] == "tiny-llama" and llama["epochs"] >= 1
    assert "image" in models["meta/llama4@llama-4-scout-17b-16e-instruct"]["modalities"]


def test_an_upload_is_a_new_file_in_the_bucket_root_and_never_replaces_one(api):
    path = api.bucket / "up" / "good.jsonl"
    assert path.read_text() == GOOD
    with api.client() as c:
        again = c.post(f"{P}/tuneforge/datasets:upload", params={"uri": "gs://up/good.jsonl"}, content="{}\n")
        assert again.status_code == 409 and "never replaced" in again.json()["error"]["message"]
        assert path.read_text() == GOOD  # the job's data is as it was
        for uri, content, words in (
            ("gs://up/../escape.jsonl", GOOD, "'..'"),
            ("gs://up/notes.txt", GOOD, ".jsonl"),
            ("gs://up/empty.jsonl", "", "empty"),
            ("/etc/owned.jsonl", GOOD, "bucket root"),
        ):
            r = c.post(f"{P}/tuneforge/datasets:upload", params={"uri": uri}, content=content)
            assert r.status_code == 400 and words in r.json()["error"]["message"], (uri, r.text)
        huge = c.post(f"{P}/tuneforge/datasets:upload", params={"uri": "gs://up/huge.jsonl"}, content=GOOD * 50)
        assert huge.status_code == 400 and "over 100,000 bytes" in huge.json()["error"]["message"]
        wrong = c.post(
            f"{P}/tuneforge/datasets:upload", params={"uri": "gs://up/x.jsonl", "purpose": "rl"}, content=GOOD
        )
        assert wrong.status_code == 400 and "purpose must be one of" in wrong.json()["error"]["message"]
    assert not (api.bucket.parent / "escape.jsonl").exists() and not (api.bucket / "up" / "x.jsonl").exists()
    assert not (api.bucket / "up" / "huge.jsonl").exists()


def test_a_preview_reports_every_bad_line_and_creates_nothing(api):
    with api.client() as c:
        jobs = len(c.get(f"{P}/tuningJobs").json().get("tuningJobs", []))
        preview = c.post(f"{P}/tuningJobs:preview", json=sft("gs://up/bad.jsonl")).json()
        assert len(c.get(f"{P}/tuningJobs").json().get("tuningJobs", [])) == jobs
        missing = c.post(f"{P}/tuningJobs:preview", json=sft("gs://up/nothing.jsonl")).json()
        no_model = c.post(f"{P}/tuningJobs:preview", json={**sft("gs://up/good.jsonl"), "baseModel": "tiny-lama"})
    assert preview["ready"] is False and "plan" not in preview
    where = {(p["line"], p["path"]) for p in preview["problems"]}
    assert where == {(25, "messages[0].role"), (26, "column 1")}
    assert all(p["severity"] == "error" and p["source"] == "gs://up/bad.jsonl" for p in preview["problems"])
    assert missing["ready"] is False and "not found" in missing["problems"][0]["message"]
    assert no_model.status_code == 404 and "tiny-llama" in no_model.json()["error"]["message"]  # as create says


def test_a_preview_shows_what_the_job_then_reports_and_a_measured_estimate(api):
    before, job = api.preview_before, api.job
    assert before["ready"] and before["runsOn"] == "tiny-llama" and before["examples"] == len(WORDS) * 4
    assert "no job on tiny-llama has finished" in before["estimateNote"] and "estimate" not in before
    stats = job["tuningDataStats"]["supervisedTuningDataStats"]
    assert before["tuningDataStats"]["supervisedTuningDataStats"] == stats  # the same figures, before and after
    assert before["plan"]["total_steps"] == int(stats["tuningStepCount"])
    assert before["datasets"] == [
        {"uri": "gs://up/good.jsonl", "role": "training", "format": "chat", "lines": 24, "examples": 24}
    ]
    with api.client() as c:
        after = c.post(f"{P}/tuningJobs:preview", json=sft("gs://up/good.jsonl")).json()
        full = c.post(f"{P}/tuningJobs:preview", json=sft("gs://up/good.jsonl", tuningMode="TUNING_MODE_FULL")).json()
        progress = c.get(f"/v1/{job['name']}/metrics").json()["progress"]
    assert progress["step"] == before["plan"]["total_steps"]
    estimate = after["estimate"]
    assert estimate["jobs"] == 1 and "1 finished tiny-llama PEFT_ADAPTER supervised" in estimate["basis"]
    assert estimate["seconds"] == pytest.approx(
        estimate["overheadSeconds"] + after["trainedTokens"] / estimate["tokensPerSecond"]
    )
    assert 0 < estimate["overheadSeconds"] < 600 and estimate["tokensPerSecond"] > 0
    assert full["estimate"]["jobs"] == 1 and "other modes or methods" in full["estimate"]["basis"]


def test_a_job_s_events_tell_what_happened_in_order(api):
    with api.client() as c:
        events = c.get(f"/v1/{api.job['name']}/events").json()["events"]
        gone = c.get(f"{P}/tuningJobs/123/events")
    said = [e["message"] for e in events]
    assert said[0].startswith("Validated the data: gs://up/good.jsonl: 24 examples, ")  # before it was stored
    assert said[1] == "Created (pending)" and said[2].startswith("Started on worker")
    assert any(m.startswith("Training 6 steps from the start on cpu") for m in said)
    assert said[-1].startswith("Succeeded after 6 steps: projects/console-api/locations/us-central1/models/")
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert gone.status_code == 404


def test_the_dataset_list_names_uploads_and_the_jobs_that_used_them(api):
    with api.client() as c:
        files = {f["uri"]: f for f in c.get(f"{P}/tuneforge/datasets").json()["datasets"]}
        report = c.post(
            f"{P}/tuneforge/datasets:inspect", json={"uri": "gs://up/good.jsonl", "baseModel": "tiny-llama"}
        ).json()
        as_pairs = c.post(
            f"{P}/tuneforge/datasets:inspect", json={"uri": "gs://up/good.jsonl", "purpose": "preference"}
        )
    good, bad = files["gs://up/good.jsonl"], files["gs://up/bad.jsonl"]
    assert good["uploaded"] and good["usedBy"] == [api.job["name"]] and good["sizeBytes"] == len(GOOD)
    assert (good["format"], good["lines"], good["examples"], good["errors"]) == ("chat", 24, 24, 0)
    assert bad["errors"] == 2 and bad["usedBy"] == []
    assert report["problems"] == [] and "tiny-llama in PEFT_ADAPTER mode: at most" in report["checkedAgainst"]
    assert as_pairs.status_code == 200 and as_pairs.json()["file"]["errors"] > 0  # a chat file is not preference data


def test_a_publisher_model_answers_with_its_own_weights(api):
    ask = {"contents": [{"role": "user", "parts": [{"text": "abc"}]}], "generationConfig": {"temperature": 0}}
    with api.client() as c:
        plain = c.post(f"{P}/publishers/tuneforge/models/tiny-llama:generateContent", json=ask)
        streamed = c.post(
            f"{P}/publishers/tuneforge/models/tiny-llama:streamGenerateContent", params={"alt": "sse"}, json=ask
        )
        unknown = c.post(f"{P}/publishers/meta/models/llama9:generateContent", json=ask)
    assert plain.status_code == 200, plain.text
    text = plain.json()["candidates"][0]["content"]["parts"][0]["text"]
    chunks = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert "".join(p["text"] for ch in chunks for p in ch["candidates"][0]["content"]["parts"]) == text
    assert plain.json()["modelVersion"] == "publishers/tuneforge/models/tiny-llama"
    assert unknown.status_code == 404 and "publishers/meta/models/llama3_1@llama-3.1-8b" in unknown.text


def test_a_pipeline_preview_checks_the_pipeline_s_rules_and_plans_its_tune_task(api):
    shutil.copy(examples_dir() / "code_generation.jsonl", api.bucket / "up" / "code.jsonl")
    body = {
        "templateUri": TUNE,
        "runtimeConfig": {
            "parameterValues": {
                "dataset_uri": "gs://up/code.jsonl",
                "large_model_reference": "code-bison@002",
                "train_steps": 3,
            }
        },
    }
    with api.client() as c:
        preview = c.post(f"{P}/pipelineJobs:preview", json=body).json()
        body["runtimeConfig"]["parameterValues"]["dataset_uri"] = "gs://up/good.jsonl"  # chat lines, not text pairs
        wrong = c.post(f"{P}/pipelineJobs:preview", json=body).json()
        assert c.get(f"{P}/pipelineJobs").json().get("pipelineJobs", []) == []
    assert preview["ready"] and preview["plan"]["total_steps"] == 3 and preview["examples"] == 12
    assert preview["runsOn"] == "tiny-gemma3" and preview["standIn"] and preview["trainedTokens"] > 0
    assert wrong["ready"] is False and wrong["problems"][0]["line"] == 1


def test_list_filters_by_method_and_pipelines_by_state_and_kind(api):
    with api.client() as c:
        supervised = c.get(f"{P}/tuningJobs", params={"filter": 'method="supervised"'}).json()["tuningJobs"]
        preference = c.get(f"{P}/tuningJobs", params={"filter": 'method="preference"'}).json()
        pipelines = c.get(f"{P}/pipelineJobs", params={"filter": 'pipeline_name="distillation" AND state!="x"'})
        bad = c.get(f"{P}/pipelineJobs", params={"filter": 'colour="red"'})
    assert [j["name"] for j in supervised] == [api.job["name"]] and preference.get("tuningJobs", []) == []
    assert pipelines.status_code == 200 and pipelines.json().get("pipelineJobs", []) == []
    assert bad.status_code == 400 and "pipeline_name" in bad.json()["error"]["message"]


def test_locations_list_the_regions_jobs_are_accepted_in(api):
    with api.client() as c:
        found = c.get("/v1/projects/console-api/locations").json()["locations"]
        refused = c.post(
            f"/v1/projects/console-api/locations/{'mars-north1'}/tuningJobs", json=sft("gs://up/good.jsonl")
        )
    ids = [x["locationId"] for x in found]
    assert "us-central1" in ids and "asia-southeast1" in ids and len(ids) == len(set(ids))
    assert found[ids.index("us-central1")]["name"] == "projects/console-api/locations/us-central1"
    open_model = {x["locationId"] for x in found if x["labels"].get("tuneforge-open-model-tuning") == "true"}
    assert open_model == {"us-central1", "europe-west4"}  # SPEC §2.4
    assert refused.status_code == 400 and "asia-southeast1" in refused.json()["error"]["message"]


def test_a_distillation_preview_counts_the_prompts_and_refuses_what_create_refuses(api):
    for name in ("distill_labeled.jsonl", "distill_unlabeled.jsonl"):
        shutil.copy(examples_dir() / name, api.bucket / "up" / name)
    body = {
        "baseModel": "tiny-llama",
        "distillationSpec": {"promptDatasetUri": "gs://up/distill_labeled.jsonl", "baseTeacherModel": "gemini-2.5-pro"},
    }
    with api.client() as c:
        labelled = c.post(f"{P}/tuningJobs:preview", json=body).json()
        body["distillationSpec"]["promptDatasetUri"] = "gs://up/distill_unlabeled.jsonl"
        unlabelled = c.post(f"{P}/tuningJobs:preview", json=body)
        created = c.post(f"{P}/tuningJobs", json=body)
    assert labelled["ready"] and labelled["examples"] == 12 and "teacher" in labelled["estimateNote"]
    assert unlabelled.status_code == created.status_code == 400
    assert unlabelled.json()["error"]["message"] == created.json()["error"]["message"]  # the same words as create


def test_the_json_column_filters_work_on_both_databases(every_database_url):
    """method (tuningJobs) and base_model / display_name (pipelineJobs) read JSON columns: json_extract on SQLite,
    ->> on PostgreSQL."""
    from sqlalchemy import select

    from tuneforge.control.db import Store
    from tuneforge.control.filters import PIPELINE_JOB_FILTERS, TUNING_JOB_FILTERS, filter_conditions
    from tuneforge.control.tables import PipelineJobRow, TuningJobRow, utcnow

    store = Store(every_database_url)
    now = utcnow()
    common = dict(project="p", location="l", state="S", labels={}, create_time=now, update_time=now)
    pipelines = {
        "p0": ("distillation", {"student_model_reference": "text-bison@002"}),
        "p1": ("tune-large-model", {"large_model_reference": "code-bison@002"}),
    }
    with store.session() as s:
        for i, method in enumerate(("supervised", "preference")):
            s.add(TuningJobRow(id=str(i), resource={}, config={"method": method}, **common))
        for job_id, (template, params) in pipelines.items():
            display = {"displayName": f"job {job_id[1]}"}
            s.add(
                PipelineJobRow(
                    id=job_id,
                    pipeline_job_id=job_id,
                    template=template,
                    parameters=params,
                    resource=display,
                    tasks=[],
                    **common,
                )
            )

    def found(table, columns, text):
        with store.session() as s:
            return s.scalars(select(table.id).where(*filter_conditions(text, columns, table.labels))).all()

    assert found(TuningJobRow, TUNING_JOB_FILTERS, 'method="preference"') == ["1"]
    assert found(PipelineJobRow, PIPELINE_JOB_FILTERS, 'base_model="code-bison@002"') == ["p1"]
    assert found(PipelineJobRow, PIPELINE_JOB_FILTERS, 'base_model="text-bison@002" AND display_name="job 0"') == ["p0"]
    assert found(PipelineJobRow, PIPELINE_JOB_FILTERS, 'pipeline_name!="distillation"') == ["p1"]
    store.dispose()
