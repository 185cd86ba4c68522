"""Images end to end against a live server: two LoRA adapters of the tiny Llama 4 stand-in, tuned on images, served on
one base; the official SDKs send images (google-genai ``Part.from_bytes`` / ``Part.from_uri``, vertexai
``Part.from_data`` / ``Part.from_uri``, the ``openai`` client's ``image_url`` parts, predict instances), every route
answers what plain transformers + peft answer from the saved adapter, and bad images get a 4xx with the reason."""

from __future__ import annotations

import base64
import io
import random
import shutil

import httpx
import pytest
from tests.integration.conftest import init_vertex, start_server, wait_for

from tuneforge.train.image_task import QUESTION, greedy_image_answers, shape_image, write_dataset

P = "projects/p/locations/us-central1"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tuneforge.settings import Settings
    from tuneforge.train.config import TuningConfig
    from tuneforge.train.recipes.sft import run_sft

    home = tmp_path_factory.mktemp("images-home")
    settings = Settings(home=home)
    train, _ = write_dataset(settings, "b", "shapes", 16, seed=3)
    # img-b trains long enough to name a colour, img-a not: the two answer differently, so a request answered with the
    # other adapter (or none) shows.
    for name, seed, steps in (("img-a", 1, 3), ("img-b", 2, 24)):
        config = TuningConfig(
            base_model="tiny-llama4", train_dataset=train, output_uri=str(home / name), max_steps=steps, seed=seed
        )
        final = run_sft(config, settings=settings).final_dir
        shutil.copytree(final, home / "buckets" / "b" / name)
    png, _ = shape_image(random.Random(7))
    (home / "buckets" / "b" / "pics").mkdir()
    (home / "buckets" / "b" / "pics" / "shape.png").write_bytes(png)
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}")
    srv.png, srv.train = png, train
    yield srv
    srv.stop()


def _deploy(server, name: str) -> str:
    from vertexai.preview import model_garden

    init_vertex(server.url)
    endpoint = model_garden.CustomModel(gcs_uri=f"gs://b/{name}").deploy(endpoint_display_name=name)
    return endpoint.resource_name


@pytest.fixture(scope="module")
def endpoints(served):
    return {name: _deploy(served, name) for name in ("img-a", "img-b")}


def _expected(served, name: str) -> str:
    from PIL import Image

    image = Image.open(io.BytesIO(served.png)).convert("RGB")
    return greedy_image_answers(served.bucket / "b" / name, [image])[0]


def test_every_sdk_sends_images_and_gets_what_plain_transformers_answers(served, endpoints):
    import openai
    from google import genai
    from google.genai import types
    from google.oauth2.credentials import Credentials
    from vertexai.generative_models import GenerationConfig, GenerativeModel, Part

    png, data_url = served.png, "data:image/png;base64," + base64.b64encode(served.png).decode()
    for name, endpoint in endpoints.items():
        expected = _expected(served, name)
        client = genai.Client(
            vertexai=True,
            project="p",
            location="us-central1",
            credentials=Credentials(token="t"),
            http_options=types.HttpOptions(base_url=served.url, api_version="v1"),
        )
        config = types.GenerateContentConfig(temperature=0, max_output_tokens=8)
        by_bytes = client.models.generate_content(
            model=endpoint, contents=[QUESTION, types.Part.from_bytes(data=png, mime_type="image/png")], config=config
        )
        by_uri = client.models.generate_content(
            model=endpoint,
            contents=[QUESTION, types.Part.from_uri(file_uri="gs://b/pics/shape.png", mime_type="image/png")],
            config=config,
        )
        assert by_bytes.text.strip() == by_uri.text.strip() == expected, name
        streamed = client.models.generate_content_stream(
            model=endpoint, contents=[QUESTION, types.Part.from_bytes(data=png, mime_type="image/png")], config=config
        )
        assert "".join(c.text or "" for c in streamed).strip() == expected

        for part in (Part.from_data(png, "image/png"), Part.from_uri("gs://b/pics/shape.png", "image/png")):
            vertex = GenerativeModel(endpoint).generate_content(
                [QUESTION, part], generation_config=GenerationConfig(temperature=0, max_output_tokens=8)
            )
            assert vertex.text.strip() == expected

        chat = openai.OpenAI(base_url=f"{served.url}/v1beta1/{endpoint}", api_key="unused")
        for url in (data_url, "gs://b/pics/shape.png"):
            content = [{"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": url}}]
            answer = chat.chat.completions.create(
                model="any", temperature=0, max_tokens=8, messages=[{"role": "user", "content": content}]
            )
            assert answer.choices[0].message.content.strip() == expected

        content = [{"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": data_url}}]
        predicted = httpx.post(
            f"{served.url}/v1/{endpoint}:predict",
            json={
                "instances": [{"messages": [{"role": "user", "content": content}]}],
                "parameters": {"temperature": 0, "maxOutputTokens": 8},
            },
            timeout=60,
        )
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["predictions"][0].strip() == expected


def test_adapters_of_one_image_model_share_its_base(served, endpoints):
    """Both adapters (LoRA on the routed experts too) on one base; requests for both at once are batched one adapter
    at a time, and each gets its own adapter's answer."""
    from concurrent.futures import ThreadPoolExecutor

    groups = httpx.get(f"{served.url}/tuneforge/serving", timeout=30).json()["groups"]
    [group] = [g for g in groups if g["adapters"]]
    assert len(group["adapters"]) == 2 and group["deployments"] == 2
    data = base64.b64encode(served.png).decode()
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": QUESTION}, {"inlineData": {"mimeType": "image/png", "data": data}}]}
        ],
        "generationConfig": {"temperature": 0, "maxOutputTokens": 8},
    }

    def ask(name: str) -> str:
        r = httpx.post(f"{served.url}/v1/{endpoints[name]}:generateContent", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["candidates"][0]["content"]["parts"][0]["text"].strip()

    names = ["img-a", "img-b"] * 3
    expected = {name: _expected(served, name) for name in endpoints}
    assert expected["img-a"] != expected["img-b"]  # the check below can tell them apart
    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(ask, names))
    assert answers == [expected[name] for name in names]


@pytest.mark.parametrize(
    "part,message",
    [
        ({"inline_data": {"mime_type": "image/gif", "data": "R0lGODlhAQABAAAAACw="}}, "image/gif"),
        ({"inline_data": {"mime_type": "image/png", "data": base64.b64encode(b"GIF89a....").decode()}}, "not a PNG"),
        ({"file_data": {"mime_type": "image/png", "file_uri": "gs://b/pics/missing.png"}}, "not found"),
        ({"file_data": {"mime_type": "image/png", "file_uri": "gs://b/../etc/x.png"}}, "'..' are not allowed"),
        ({"file_data": {"mime_type": "image/jpeg", "file_uri": "gs://b/pics/shape.png"}}, "declared image/jpeg"),
    ],
)
def test_bad_images_get_a_4xx_with_the_reason(served, endpoints, part, message):
    body = {"contents": [{"role": "user", "parts": [{"text": QUESTION}, part]}]}
    response = httpx.post(f"{served.url}/v1/{endpoints['img-a']}:generateContent", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_an_image_job_through_the_api_on_the_scout_id_adapts_what_it_asks(served):
    """A tuningJob for Llama 4 Scout (dev mode: the tiny stand-in) on image lines, through the server and its worker:
    the data statistics count the images, and the adapter holds the vision tower (asked) and not the experts (asked
    not to)."""
    from safetensors import safe_open

    body = {
        "baseModel": "meta/llama4@llama-4-scout-17b-16e-instruct",
        "supervisedTuningSpec": {
            "trainingDatasetUri": served.train,
            "hyperParameters": {"epochCount": "1", "tuneVisionTower": True, "tuneExperts": False},
        },
        "outputUri": "gs://b/api-job",
    }
    with served.client() as c:
        job = c.post(f"/v1/{P}/tuningJobs", json=body)
        assert job.status_code == 200, job.text
        done = wait_for(
            lambda: (
                (j := c.get("/v1/" + job.json()["name"]).json())["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED")
                and j
            ),
            timeout=240,
            what="the image job's end",
        )
    assert done["state"] == "JOB_STATE_SUCCEEDED", done.get("error")
    stats = done["tuningDataStats"]["supervisedTuningDataStats"]
    assert stats["userImagePerExampleDistribution"]["max"] == 1 and stats["tuningDatasetExampleCount"] == "16"
    assert done["supervisedTuningSpec"]["hyperParameters"]["tuneVisionTower"] is True
    final = served.bucket / "b" / "api-job" / "postprocess" / "node-0" / "checkpoints" / "final"
    with safe_open(str(final / "adapter_model.safetensors"), "pt") as saved:
        names = saved.keys()
    assert any("vision_model" in n for n in names) and not any(".experts." in n for n in names)
