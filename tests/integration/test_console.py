"""The web console in a real browser: Playwright driving Debian's chromium (no browser download) against a live
server. First part of the console (issue 15): served at /console and linked from /, the API key kept in the browser
session, the project and location switcher, the tuning jobs list from the typed API client; no request leaves the
server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.integration.conftest import start_server

CHROMIUM = Path("/usr/bin/chromium")
KEY = "console-key"
P = "projects/console-test/locations/us-central1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tuneforge import console

    assert console.built(), "the console is not built: `make test` builds it (npm ci + vite) before the tests"
    home = tmp_path_factory.mktemp("console-home")
    data = home / "buckets" / "b" / "train.jsonl"
    data.parent.mkdir(parents=True)
    line = {"messages": [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "cba"}]}
    data.write_text((json.dumps(line) + "\n") * 16)
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}", extra_env={"TUNEFORGE_API_KEYS": KEY})
    body = {
        "baseModel": "tiny-llama",
        "tunedModelDisplayName": "console-first-job",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/train.jsonl",
            "tuningMode": "TUNING_MODE_FULL",
            "hyperParameters": {"epochCount": "2", "batchSize": "4"},
        },
    }
    created = httpx.post(f"{srv.url}/v1/{P}/tuningJobs", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert created.status_code == 200, created.text
    srv.job = created.json()["name"]
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


def test_the_landing_page_links_to_the_console(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and 'href="/console/"' in page.text
    assert httpx.get(server.url + "/console", follow_redirects=False).headers["location"] == "/console/"
    escape = httpx.get(server.url + "/console/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd")  # never a file outside dist/
    assert escape.status_code == 200 and '<div id="root">' in escape.text and "root:" not in escape.text


def test_the_jobs_list_needs_the_api_key_and_shows_the_project_s_jobs(server, browser):
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + "/console/")
    page.get_by_label("Project").fill("console-test")
    page.get_by_role("button", name="Switch").click()
    assert "401" in page.get_by_role("alert").inner_text(timeout=10_000)  # no key yet: the API's own answer

    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Switch").click()
    row = page.get_by_role("row").filter(has_text="console-first-job")
    row.wait_for(timeout=10_000)
    text = row.inner_text()
    assert "tiny-llama" in text and "SFT · full" in text and any(s in text for s in ("pending", "running", "succeeded"))
    assert page.get_by_text("Working in console-test / us-central1").is_visible()

    page.reload()  # the key and the project stay for the browser session
    page.get_by_role("row").filter(has_text="console-first-job").wait_for(timeout=10_000)
    assert requests and all(url.startswith(server.url) for url in requests), requests  # nothing from outside
    page.close()


def test_a_job_s_page_charts_its_real_metrics_while_it_runs(server, browser):
    page = browser.new_page()
    page.goto(server.url + "/console/")
    page.get_by_label("Project").fill("console-test")
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Switch").click()
    page.get_by_role("link", name="console-first-job").click()
    page.get_by_role("heading", name="console-first-job").wait_for(timeout=10_000)
    page.locator(".badge.succeeded").wait_for(timeout=180_000)  # the page follows the job to its end

    metrics = httpx.get(f"{server.url}/v1/{server.job}/metrics", headers={"Authorization": f"Bearer {KEY}"}).json()
    losses = [m for m in metrics["metrics"] if m["name"] in ("train_total_loss", "eval_total_loss")]
    assert losses
    chart = page.get_by_role("img", name="Loss: ", exact=False)
    page.wait_for_function(
        "n => document.querySelector('[aria-label^=\"Loss:\"]').dataset.points == n", arg=str(len(losses))
    )
    assert chart.locator("canvas").count() == 1  # drawn by the charting library
    assert f"step {metrics['progress']['step']}" in page.get_by_role("region").inner_text()
    page.close()
