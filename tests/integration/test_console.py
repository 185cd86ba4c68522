"""The web console in a real browser: Playwright driving Debian's chromium (no browser download) against a live server
with API keys. A job created through the form with a tiny model, followed to Succeeded with charts drawn from its real
metrics, deployed, answering in the playground (streamed, beside its base model); a bad file's report; a running job
cancelled; two jobs compared; a pipeline's tasks; datasets, models and endpoints; and on every page at 1280 and 390
px: no serious or critical axe-core violation, nothing wider than the screen, no request leaving the server.

The tests share one server and run in order (each leaves what the next one uses). With TUNEFORGE_CONSOLE_SCREENSHOTS
set to a folder, the last test saves a screenshot of every page at both widths there (`make screenshots`)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from tests.integration.conftest import examples_dir, start_server, wait_for

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parents[2] / "src/tuneforge/console/web/node_modules/axe-core/axe.min.js"
KEY = "console-key"
PROJECT = "console-test"
P = f"projects/{PROJECT}/locations/us-central1"
WORDS = ["abc", "hello", "world", "tuneforge", "vertex", "lora"]
GOOD = "".join(
    json.dumps({"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": w[::-1]}]}) + "\n"
    for w in WORDS * 4
)
BAD = GOOD + '{"messages": [{"role": "bot", "content": "x"}]}\n' + "not json\n"
SLOW = 180_000  # ms: a tiny job from start to end on a 2-core machine, with the other tests' jobs queued before it


def api(server, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(
        method, f"{server.url}/v1/{path}", headers={"Authorization": f"Bearer {KEY}"}, timeout=60, **kw
    )


def finished(server, name: str) -> dict:
    return wait_for(
        lambda: (j := api(server, "GET", name).json())["state"].endswith(("SUCCEEDED", "FAILED", "CANCELLED")) and j,
        timeout=SLOW / 1000,
        what=f"{name} to end",
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tuneforge import console

    assert console.built(), "the console is not built: `make test` builds it (npm ci + vite) before the tests"
    home = tmp_path_factory.mktemp("console-home")
    bucket = home / "buckets" / "b"
    bucket.mkdir(parents=True)
    (bucket / "train.jsonl").write_text(GOOD)
    (bucket / "bad.jsonl").write_text(BAD)
    shutil.copy(examples_dir() / "code_generation.jsonl", bucket / "code.jsonl")
    (home / "form.jsonl").write_text(GOOD)  # the file the form uploads from "this computer"
    # gs://b was filled by hand (as an operator would): it is granted to the project, as an operator grants it
    env = {
        "TUNEFORGE_API_KEYS": KEY,
        "TUNEFORGE_QUEUE_OVER_QUOTA": "1",
        "TUNEFORGE_BUCKET_ACCESS": f"b={PROJECT}|paging-test",
    }
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}", extra_env=env)
    body = {
        "baseModel": "tiny-llama",
        "tunedModelDisplayName": "console-first-job",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/train.jsonl",
            "validationDatasetUri": "gs://b/train.jsonl",
            "tuningMode": "TUNING_MODE_FULL",
            "hyperParameters": {"epochCount": "2", "batchSize": "4"},
        },
    }
    created = api(srv, "POST", f"{P}/tuningJobs", json=body)
    assert created.status_code == 200, created.text
    srv.first = created.json()["name"]
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


class Console:
    """A page of the console with the session (project, API key) set, recording every request it makes."""

    def __init__(self, browser, server, width: int = 1280):
        self.server = server
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        session = json.dumps({"apiKey": KEY, "project": PROJECT, "location": "us-central1"})
        self.page.add_init_script(f"sessionStorage.setItem('tuneforge.session', {json.dumps(session)})")

    def open(self, fragment: str):
        self.page.goto(f"{self.server.url}/console/{fragment}")
        return self.page

    def close(self) -> None:
        outside = [u for u in self.requests if not u.startswith(self.server.url) and not u.startswith("data:")]
        self.page.close()
        assert self.requests and not outside, outside  # nothing from outside the server


@pytest.fixture()
def console(browser, server):
    opened = Console(browser, server)
    yield opened
    opened.close()


def test_the_landing_page_links_to_the_console(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and 'href="/console/"' in page.text
    assert httpx.get(server.url + "/console", follow_redirects=False).headers["location"] == "/console/"
    escape = httpx.get(server.url + "/console/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd")  # never a file outside dist/
    assert escape.status_code == 200 and '<div id="root">' in escape.text and "root:" not in escape.text


def test_the_jobs_list_needs_the_api_key_and_shows_the_project_s_jobs(browser, server):
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + "/console/")
    page.get_by_label("Project").fill(PROJECT)
    page.get_by_role("button", name="Switch").click()
    assert "401" in page.get_by_role("alert").first.inner_text(timeout=10_000)  # no key yet: the API's own answer

    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Switch").click()
    row = page.get_by_role("row").filter(has_text="console-first-job")
    row.wait_for(timeout=10_000)
    text = row.inner_text()
    assert "tiny-llama" in text and "SFT · full" in text and "tuningJobs" in text
    assert any(s in text for s in ("pending", "running", "succeeded"))
    assert page.get_by_text(f"Working in {PROJECT} / us-central1").is_visible()

    page.reload()  # the key and the project stay for the browser session
    page.get_by_role("row").filter(has_text="console-first-job").wait_for(timeout=10_000)
    page.get_by_label("State").select_option("failed")
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_text("No jobs match").wait_for(timeout=10_000)  # filtered by the server
    assert requests and all(url.startswith(server.url) or url.startswith("data:") for url in requests), requests
    page.close()


def test_the_list_pages_newest_first_across_tuning_and_pipeline_jobs(browser, server):
    """22 tuning jobs and a pipeline job in a project of their own, cancelled while queued (no worker time): pages of
    20, newest first whatever their kind, and back."""
    project = "paging-test"
    names = []
    for i in range(22):
        body = {"baseModel": "tiny-llama", "tunedModelDisplayName": f"page-job-{i:02d}"}
        body["supervisedTuningSpec"] = {"trainingDatasetUri": "gs://b/train.jsonl"}
        names.append(
            api(server, "POST", f"projects/{project}/locations/us-central1/tuningJobs", json=body).json()["name"]
        )
        if i == 10:  # a pipeline job between them
            pipeline = {
                "displayName": "page-pipeline",
                "templateUri": "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v3.0.0",
                "runtimeConfig": {
                    "parameterValues": {"dataset_uri": "gs://b/code.jsonl", "large_model_reference": "code-bison@002"}
                },
            }
            path = f"projects/{project}/locations/us-central1/pipelineJobs"
            names.append(api(server, "POST", path, json=pipeline).json()["name"])
    for name in names:
        assert api(server, "POST", f"{name}:cancel").status_code == 200
    newest_first = [f"page-job-{i:02d}" for i in range(21, 10, -1)] + ["page-pipeline"]
    newest_first += [f"page-job-{i:02d}" for i in range(10, -1, -1)]
    opened = Console(browser, server)
    page = opened.open("#/jobs")
    page.get_by_label("Project").fill(project)
    page.get_by_role("button", name="Switch").click()
    titles = page.get_by_role("region", name="Jobs").locator("a.name")
    expect(titles).to_have_count(20, timeout=10_000)
    assert titles.all_inner_texts() == newest_first[:20]
    page.get_by_role("button", name="Next page").click()
    expect(titles).to_have_text(newest_first[20:], timeout=10_000)
    assert page.get_by_role("button", name="Next page").is_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(titles).to_have_count(20, timeout=10_000)
    page.get_by_label("Kind").select_option("pipeline")
    page.get_by_role("button", name="Apply filters").click()
    expect(titles).to_have_text(["page-pipeline"], timeout=10_000)
    opened.close()


def test_a_job_created_through_the_form_is_followed_to_success_with_its_real_metrics(console, server):
    page = console.open("#/create")
    page.get_by_role("link", name="Open model: supervised tuning").click()
    page.get_by_label("Base model").select_option("tiny-llama")
    page.get_by_label("Tuned model name").fill("form-job")
    training = page.get_by_role("group", name="Training data (required)")
    training.get_by_label("Upload a JSONL file").check()
    training.get_by_label("JSONL file", exact=True).set_input_files(str(server.home / "form.jsonl"))
    training.get_by_label("Dataset location").fill("gs://uploads/form.jsonl")
    training.get_by_role("button", name="Upload training data").click()
    training.get_by_role("status").filter(has_text="Uploaded gs://uploads/form.jsonl").wait_for(timeout=20_000)
    assert (server.bucket / "uploads" / "form.jsonl").read_text() == GOOD

    body = {"baseModel": "tiny-llama", "tunedModelDisplayName": "form-job"}
    body["supervisedTuningSpec"] = {
        "tuningMode": "TUNING_MODE_PEFT_ADAPTER",
        "trainingDatasetUri": "gs://uploads/form.jsonl",
    }
    expected = api(server, "POST", f"{P}/tuningJobs:preview", json=body).json()
    cost = page.get_by_role("region", name="What this job will do")
    cost.get_by_text("Trained tokens").wait_for(timeout=20_000)
    shown = dict(zip(cost.locator("dt").all_inner_texts(), cost.locator("dd").all_inner_texts()))
    assert shown["Examples"] == "24" and shown["Steps"] == str(expected["plan"]["total_steps"])
    assert shown["Trained tokens"] == f"{expected['trainedTokens']:,}"
    assert shown["Estimated duration here"].startswith(("about ", "not measured yet"))
    assert cost.locator("[data-bars]").count() == 3  # the data statistics' histograms
    snippets = page.locator(".snippet pre").all_inner_texts()
    assert 'base_model="tiny-llama"' in snippets[0] and 'gcs_uri="gs://uploads/form.jsonl"' in snippets[0]
    assert json.loads(re.search(r"-d '(.*)'", snippets[1], re.S).group(1)) == body  # REST: what the form sends
    assert "tuneforge tune --server" in snippets[2]

    page.get_by_role("button", name="Start tuning").click()
    page.get_by_role("heading", name="form-job").wait_for(timeout=20_000)
    server.form_job = f"{P}/tuningJobs/" + page.url.rsplit("/", 1)[-1]
    page.locator(".badge.succeeded").first.wait_for(timeout=SLOW)  # the page follows the job to its end

    metrics = api(server, "GET", f"{server.form_job}/metrics").json()
    losses = [m for m in metrics["metrics"] if m["name"] == "train_total_loss"]
    assert len(losses) == metrics["progress"]["step"] == expected["plan"]["total_steps"]
    page.wait_for_function(
        "n => document.querySelector('[aria-label^=\"Loss:\"]').dataset.points == n", arg=str(len(losses))
    )
    assert page.get_by_role("img", name="Loss: ", exact=False).locator("canvas").count() == 1  # the charting library
    page.get_by_role("tab", name="Details").click()
    plan = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="total_steps", exact=True))
    assert plan.inner_text().split()[-1] == str(expected["plan"]["total_steps"])
    assert page.locator("[data-bars]").count() == 3
    page.get_by_role("tab", name=re.compile("Events")).click()
    assert "Succeeded after" in page.get_by_role("tabpanel").inner_text()


def test_a_deployed_model_answers_streamed_in_the_playground_beside_its_base(console, server):
    page = console.open(f"#/jobs/tuning/{server.form_job.rsplit('/', 1)[-1]}")
    page.get_by_role("button", name="Deploy to a new endpoint").click()  # a finished job is auto-deployed too
    deployed = page.get_by_role("status").filter(has_text="Deployed to")
    deployed.wait_for(timeout=60_000)
    endpoint = deployed.inner_text().removeprefix("Deployed to ").strip()
    page.get_by_role("link", name="Test in the playground").click()
    expect(page.get_by_label("Endpoint")).to_have_value(endpoint, timeout=10_000)
    page.get_by_label("Also ask the base model").check()
    page.get_by_label("Max output tokens").fill("12")
    page.get_by_label("Message", exact=True).fill("hello")
    page.get_by_role("button", name="Send").click()
    tuned = page.get_by_role("region", name=re.compile("^Tuned:")).locator(".model .text")
    base = page.get_by_role("region", name=re.compile("^Base:")).locator(".model .text")
    page.get_by_role("button", name="Send").wait_for(timeout=60_000)  # it says "Answering…" until both streams end
    ask = {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "generationConfig": {"temperature": 0, "topP": 1, "topK": 0, "maxOutputTokens": 12},
    }
    whole = api(server, "POST", f"{endpoint}:generateContent", json=ask).json()
    base_whole = api(server, "POST", f"{P}/publishers/tuneforge/models/tiny-llama:generateContent", json=ask).json()
    assert tuned.inner_text() == whole["candidates"][0]["content"]["parts"][0]["text"] != ""
    assert base.inner_text() == base_whole["candidates"][0]["content"]["parts"][0]["text"]
    streamed = [u for u in console.requests if ":streamGenerateContent" in u]
    assert len(streamed) == 2 and all("alt=sse" in u for u in streamed)  # server-sent events, both answers
    server.endpoint = endpoint


def test_a_bad_file_shows_its_line_numbered_report_and_start_says_why_it_is_disabled(console, server):
    jobs = len(api(server, "GET", f"{P}/tuningJobs").json()["tuningJobs"])
    page = console.open("#/create/open-sft")
    page.get_by_label("Base model").select_option("tiny-llama")
    page.get_by_role("group", name="Training data (required)").get_by_label("Cloud Storage file path").fill(
        "gs://b/bad.jsonl"
    )
    report = page.get_by_role("region", name="Dataset report", exact=True)
    report.wait_for(timeout=20_000)
    rows = [r.inner_text() for r in report.get_by_role("row").all()[1:]]
    assert len(rows) == 2 and "25" in rows[0] and "messages[0].role" in rows[0] and '"bot"' in rows[0]
    assert "26" in rows[1] and "invalid JSON" in rows[1]
    start = page.get_by_role("button", name="Start tuning")
    assert start.is_disabled()
    assert "The dataset has 2 error(s)" in page.locator("#why-disabled").inner_text()
    assert len(api(server, "GET", f"{P}/tuningJobs").json()["tuningJobs"]) == jobs  # nothing was created


def test_a_running_job_is_cancelled_after_confirmation(console, server):
    body = {
        "baseModel": "tiny-llama",
        "tunedModelDisplayName": "long-job",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/train.jsonl",
            "hyperParameters": {"epochCount": "500", "batchSize": "1"},
        },
    }
    job = api(server, "POST", f"{P}/tuningJobs", json=body).json()
    page = console.open(f"#/jobs/tuning/{job['name'].rsplit('/', 1)[-1]}")
    page.locator(".badge.running").first.wait_for(timeout=SLOW)
    page.get_by_role("button", name="Cancel job").click()
    dialog = page.get_by_role("dialog", name="Cancel job")
    assert "nothing is exported" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel the job").click()
    page.locator(".badge.cancelled").first.wait_for(timeout=60_000)
    assert api(server, "GET", job["name"]).json()["state"] == "JOB_STATE_CANCELLED"
    page.get_by_role("tab", name=re.compile("Events")).click()
    assert "Cancel requested" in page.get_by_role("tabpanel").inner_text()


def test_two_jobs_are_compared_curves_overlaid_and_differences_marked(console, server):
    finished(server, server.first)
    page = console.open("#/jobs")
    page.get_by_label("Compare console-first-job").check()
    page.get_by_label("Compare form-job").check()
    page.get_by_role("button", name="Compare selected (2)").click()
    page.get_by_role("heading", name="Compare 2 jobs").wait_for()
    counts = [
        len([m for m in api(server, "GET", f"{name}/metrics").json()["metrics"] if m["name"] == "train_total_loss"])
        for name in (server.first, server.form_job)
    ]
    page.wait_for_function(
        "n => document.querySelector('[aria-label^=\"Training loss:\"]')?.dataset.points == n", arg=str(sum(counts))
    )
    mode = page.locator("tr.differs").filter(has_text="supervisedTuningSpec.tuningMode")
    assert "≠" in mode.inner_text() and "TUNING_MODE_FULL" in mode.inner_text()
    same = page.get_by_role("row").filter(has_text="baseModel")
    assert "differs" not in (same.first.get_attribute("class") or "")


def test_a_pipeline_job_created_through_its_form_shows_its_tasks_in_order(console, server):
    page = console.open("#/create/code-generation")
    page.get_by_label("Base model").select_option("code-bison@002")
    page.get_by_label("Tuned model name").fill("code-job")
    page.get_by_role("group", name="Training data (required)").get_by_label("Cloud Storage file path").fill(
        "gs://b/code.jsonl"
    )
    page.get_by_text("Advanced options").click()
    page.get_by_label("Training steps").fill("2")
    page.get_by_role("region", name="What this job will do").get_by_text("Steps", exact=True).wait_for(timeout=20_000)
    page.get_by_role("button", name="Start tuning").click()
    page.get_by_role("heading", name="code-job").wait_for(timeout=20_000)
    server.pipeline = page.url.rsplit("/", 1)[-1]
    page.locator("p.meta .badge.succeeded").wait_for(timeout=SLOW)
    tasks = [r.locator("td").nth(1).inner_text() for r in page.get_by_role("row").all()[1:]]
    assert tasks == ["tune-large-model", "validate-data", "tune", "upload-llm-model", "deploy-llm-model"]
    assert page.locator(".badge.succeeded").count() == len(tasks) + 1
    page.get_by_role("link", name="← Tuning jobs").click()
    row = page.get_by_role("row").filter(has_text="code-job")
    assert "Code generation pipeline" in row.inner_text() and "pipelineJobs" in row.inner_text()


def test_datasets_models_and_endpoints_pages_show_and_undeploy(console, server):
    page = console.open("#/datasets")
    row = page.get_by_role("row").filter(has_text="gs://uploads/form.jsonl")
    row.wait_for(timeout=10_000)
    assert "24" in row.inner_text() and "0 error(s)" in row.inner_text()
    assert row.get_by_role("link", name=server.form_job.rsplit("/", 1)[-1]).count() == 1
    bad = page.get_by_role("row").filter(has_text="gs://b/bad.jsonl")
    assert bad.count() == 0  # only uploads and files a job named
    row.get_by_role("button", name="Report for form.jsonl").click()
    page.get_by_text("No problems found.").wait_for()

    page = console.open("#/models")
    page.get_by_role("heading", name="Model registry").wait_for()
    model = page.get_by_role("row").filter(has_text="form-job").first
    model.wait_for(timeout=10_000)
    assert "publishers/tuneforge/models/tiny-llama" in model.inner_text()
    endpoints = page.get_by_role("region", name="Endpoints")
    endpoint = endpoints.get_by_role("row").filter(has_text=server.endpoint.rsplit("/", 1)[-1])
    endpoint.get_by_role("button", name="Undeploy form-job").click()
    page.get_by_role("dialog").get_by_role("button", name="Undeploy").click()
    wait_for(lambda: not api(server, "GET", server.endpoint).json().get("deployedModels"), timeout=30, what="undeploy")
    endpoint.filter(has_text="none").wait_for(timeout=20_000)


PAGES = {
    "jobs": "#/jobs",
    "job-monitor": "#/jobs/tuning/{form}",
    "job-details": "#/jobs/tuning/{form}",
    "create-flows": "#/create",
    "create-form": "#/create/open-sft",
    "compare": "#/compare?jobs=tuning:{first},tuning:{form}",
    "pipeline-job": "#/jobs/pipeline/{pipeline}",
    "datasets": "#/datasets",
    "models": "#/models",
    "playground": "#/playground",
}


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_is_accessible_fits_the_screen_and_is_reachable_by_keyboard(browser, server, width):
    shots = os.environ.get("TUNEFORGE_CONSOLE_SCREENSHOTS")
    ids = {
        "form": server.form_job.rsplit("/", 1)[-1],
        "first": server.first.rsplit("/", 1)[-1],
        "pipeline": server.pipeline,
    }
    opened = Console(browser, server, width)
    page = opened.page
    for name, fragment in PAGES.items():
        page = opened.open(fragment.format(**ids))
        page.locator("main h2").first.wait_for(timeout=20_000)
        if name == "create-form":
            page.get_by_role("group", name="Training data (required)").get_by_label("Cloud Storage file path").fill(
                "gs://b/train.jsonl"
            )
            page.get_by_role("region", name="What this job will do").get_by_text("Trained tokens").wait_for(
                timeout=20_000
            )
        if name == "job-details":
            page.get_by_role("tab", name="Details").click()
        expect(page.get_by_text("Loading…")).to_have_count(0, timeout=20_000)  # the page's data has arrived
        page.add_script_tag(path=str(AXE))
        found = page.evaluate(
            "async () => (await axe.run()).violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"
        )
        serious = [v for v in found if v["impact"] in ("serious", "critical")]
        assert not serious, (name, width, serious)
        wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, (name, width, f"{wide} px wider than the screen")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"{name}-{width}.png"), full_page=True)
    # Keyboard: Tab reaches every control of the create form, each with a visible focus, up to Start tuning.
    page = opened.open(PAGES["create-form"])
    page.get_by_role("group", name="Training data (required)").get_by_label("Cloud Storage file path").fill(
        "gs://b/train.jsonl"
    )
    page.get_by_role("button", name="Start tuning").and_(page.locator(":enabled")).wait_for(timeout=20_000)
    page.locator("header h1").click()  # Tab starts again from the top of the page
    reached = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focus = page.evaluate(
            "() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return {text: (e.innerText || e.getAttribute('aria-label') || e.name || '').trim(), tag: e.tagName,"
            " outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2}; }"
        )
        reached.append(focus)
        assert focus["outline"], focus  # a visible focus on every control reached
        if focus["text"] == "Start tuning":
            break
    else:
        pytest.fail(f"Tab never reached Start tuning: {reached}")
    assert {"INPUT", "SELECT", "BUTTON", "A"} <= {f["tag"] for f in reached}, reached
    opened.close()
