"""Deploying and serving against a live server: the official SDK (Model Garden deploy, Model.deploy, Endpoint.predict,
GenerativeModel on an endpoint, streaming), the official openai client, raw HTTP for errors, load and disconnects."""

from __future__ import annotations

import asyncio
import shutil
import time

import httpx
import pytest
from tests.integration.conftest import init_vertex, start_server, wait_for

from fixed_format import FIXED_ANSWER, SYSTEM, random_adapter, train_fixed_format

P = "projects/p/locations/us-central1"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server whose bucket holds a model tuned to answer FIXED_ANSWER and three LoRA adapters of tiny-llama."""
    from tuneforge.catalog.weights import materialize
    from tuneforge.settings import Settings

    home = tmp_path_factory.mktemp("serving-home")
    settings = Settings(home=home)
    final = train_fixed_format(home / "work", settings)
    shutil.copytree(final, home / "buckets" / "b" / "fixed")
    base = materialize("builtin:tiny-llama", settings)
    for i in range(3):
        random_adapter(base, home / "buckets" / "b" / f"adapter{i}", seed=i)
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def vertex(served):
    init_vertex(served.url)
    return served


@pytest.fixture(scope="module")
def fixed_endpoint(vertex):
    """The documented Model Garden flow: CustomModel(gcs_uri).deploy(machine_type, accelerator_type, count)."""
    from vertexai.preview import model_garden

    endpoint = model_garden.CustomModel(gcs_uri="gs://b/fixed").deploy(
        machine_type="g2-standard-12",
        accelerator_type="NVIDIA_L4",
        accelerator_count=1,
        endpoint_display_name="fixed-endpoint",
        model_display_name="fixed-model",
    )
    return endpoint


def test_model_garden_deploy_records_the_machine_spec(fixed_endpoint):
    assert fixed_endpoint.display_name == "fixed-endpoint"
    [deployed] = fixed_endpoint.list_models()
    assert deployed.display_name == "fixed-model"
    spec = deployed.dedicated_resources.machine_spec
    assert (spec.machine_type, spec.accelerator_type.name, spec.accelerator_count) == ("g2-standard-12", "NVIDIA_L4", 1)


def test_the_tuned_format_comes_back_through_all_three_apis(vertex, fixed_endpoint):
    """The chat template is applied at serving as at training: the tuned answer appears through each API."""
    import openai
    from vertexai.generative_models import GenerationConfig, GenerativeModel

    name = fixed_endpoint.resource_name
    # 1. predict, as the open-model documents show it
    response = fixed_endpoint.predict(
        instances=[
            {
                "prompt": "question abc?",
                "max_tokens": 20,
                "temperature": 0.0,
                "top_p": 1.0,
                "top_k": 1,
                "raw_response": True,
            }
        ]
    )
    assert response.predictions == [FIXED_ANSWER]
    assert response.deployed_model_id
    framed = fixed_endpoint.predict(instances=[{"prompt": "question xyz?", "max_tokens": 20, "temperature": 0.0}])
    assert framed.predictions == [f"Prompt:\nquestion xyz?\nOutput:\n{FIXED_ANSWER}"]
    # 2. generateContent and its stream
    model = GenerativeModel(name)
    config = GenerationConfig(temperature=0.0, max_output_tokens=20)
    answer = model.generate_content("question hij?", generation_config=config)
    assert answer.text == FIXED_ANSWER
    assert answer.usage_metadata.candidates_token_count > 0 and answer.usage_metadata.prompt_token_count > 0
    chunks = list(model.generate_content("question hij?", generation_config=config, stream=True))
    assert len(chunks) > 2 and "".join(c.text for c in chunks if c.candidates[0].content.parts) == FIXED_ANSWER
    # 3. OpenAI chat completions, plain and streamed
    client = openai.OpenAI(base_url=f"{vertex.url}/v1beta1/{name}", api_key="unused")
    assert [m.id for m in client.models.list()] == ["fixed-model"]
    chat = client.chat.completions.create(
        model="anything", temperature=0, max_tokens=20, messages=[{"role": "user", "content": "question q?"}]
    )
    assert chat.choices[0].message.content == FIXED_ANSWER and chat.choices[0].finish_reason == "stop"
    assert chat.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model="anything",
        temperature=0,
        max_tokens=20,
        stream=True,
        messages=[{"role": "user", "content": "question q?"}],
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == FIXED_ANSWER


def test_greedy_is_deterministic_and_sampling_reproducible_with_seed(served, fixed_endpoint):
    url = f"{served.url}/v1/{fixed_endpoint.resource_name}:generateContent"
    body = {
        "contents": [{"role": "USER", "parts": {"text": "Why is sky blue?"}}],  # SPEC §4.7's lenient shape
        "generation_config": {
            "temperature": 1.5,
            "top_p": 0.95,
            "top_k": 40.0,
            "max_output_tokens": 12,
            "seed": 3,
            "candidateCount": 2,
        },
    }
    first, second = (httpx.post(url, json=body, timeout=60).json() for _ in range(2))
    assert first["candidates"] == second["candidates"] and len(first["candidates"]) == 2
    greedy = {
        "contents": [{"role": "user", "parts": [{"text": "question one?"}]}],
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "generationConfig": {"temperature": 0},
    }
    answers = {
        httpx.post(url, json=greedy, timeout=60).json()["candidates"][0]["content"]["parts"][0]["text"]
        for _ in range(3)
    }
    assert len(answers) == 1


@pytest.mark.parametrize(
    "path,body,status,message",
    [
        (
            "endpoints/404:predict",
            {"instances": [{"prompt": "x"}]},
            404,
            "Endpoint projects/p/locations/us-central1/endpoints/404 not found",
        ),
        (":predict", {"instances": []}, 400, "instances must be a non-empty list"),
        (
            ":predict",
            {"instances": [{"prompt": "x", "temperature": "hot"}]},
            400,
            "instances[0].temperature must be a number, got str",
        ),
        (
            ":predict",
            {"instances": [{"prompt": "x", "top_p": 1.5}]},
            400,
            "instances[0].top_p must be greater than 0 and at most 1",
        ),
        (":predict", {"instances": [{"prompt": "x " * 5000}]}, 400, "tokens, but the model's context is 4096 tokens"),
        (":generateContent", {"contents": []}, 400, "contents: empty; give at least one user message"),
        (":generateContent", {"contents": [{"role": "bot", "parts": [{"text": "x"}]}]}, 400, "contents[0].role"),
        (
            ":generateContent",
            {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 20}},
            400,
            "generationConfig.candidateCount must be between 1 and 8",
        ),
        ("/chat/completions", {"messages": "hi"}, 400, "messages: expected a list"),
        ("/chat/completions", {"messages": [{"role": "assistant", "content": "x"}]}, 400, "must be from the user"),
        (":explode", {}, 400, "unknown method 'explode' on endpoints"),
    ],
)
def test_bad_serving_requests_are_clear_4xx(served, fixed_endpoint, path, body, status, message):
    url = (
        f"{served.url}/v1/{P}/{path}"
        if path.startswith("endpoints/")
        else f"{served.url}/v1/{fixed_endpoint.resource_name}{path}"
    )
    r = httpx.post(url, json=body, timeout=60)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


def test_endpoint_without_a_model_and_memory_refusals(served, tmp_path):
    with served.client() as c:
        op = c.post(f"/v1/{P}/endpoints", json={"displayName": "empty"}).json()
        empty = op["response"]["name"]
        r = c.post(f"/v1/{empty}:predict", json={"instances": [{"prompt": "x"}]})
        assert r.status_code == 400 and "has no deployed model; deploy one first" in r.json()["error"]["message"]
    # a server that may use almost no memory refuses the deploy with a clear error, not a crash
    home = tmp_path / "small"
    shutil.copytree(served.bucket, home / "buckets", ignore=shutil.ignore_patterns("adapter*"))
    small = start_server(
        home, f"sqlite:///{home / 'db.sqlite'}", extra_env={"TUNEFORGE_SERVE_MEMORY_LIMIT_BYTES": "100000"}
    )
    try:
        r = small.client().post(f"/v1beta1/{P}:deploy", json={"customModel": {"gcsUri": "gs://b/fixed"}})
        assert r.status_code == 429, r.text
        assert "not enough memory to serve" in r.json()["error"]["message"]
    finally:
        small.stop()


def test_three_adapters_share_one_base_and_undeploy_frees_it(served):
    with served.client() as c:
        endpoints = []
        for i in range(3):
            op = c.post(
                f"/v1beta1/{P}:deploy",
                json={
                    "customModel": {"gcsUri": f"gs://b/adapter{i}"},
                    "modelConfig": {"modelDisplayName": f"adapter{i}"},
                },
            ).json()
            op = wait_for(lambda name=op["name"]: (o := c.get(f"/ui/{name}").json())["done"] and o, what="deploy")
            assert "response" in op, op
            endpoints.append(op["response"]["endpoint"])
        stats = c.get("/tuneforge/serving").json()
        shared = [g for g in stats["groups"] if g["adapters"]]
        assert len(shared) == 1 and len(shared[0]["adapters"]) == 3  # one copy of the base, three adapters
        answers = []
        for e in endpoints:
            r = c.post(
                f"/v1/{e}:predict",
                json={"instances": [{"prompt": "abc", "max_tokens": 8, "temperature": 0, "raw_response": True}]},
            )
            answers.append(r.json()["predictions"][0])
        assert len(set(answers)) == 3  # each request ran with its own adapter
        before = c.get("/tuneforge/serving").json()["loadedBytes"]
        for e in endpoints:
            [dm] = c.get(f"/v1/{e}").json()["deployedModels"]
            op = c.post(f"/v1/{e}:undeployModel", json={"deployedModelId": dm["id"]}).json()
            assert op["done"] and op["response"]["@type"].endswith("v1.UndeployModelResponse")
            assert c.delete(f"/v1/{e}").status_code == 200
        after = c.get("/tuneforge/serving").json()
        assert all(not g["adapters"] for g in after["groups"]) and after["loadedBytes"] < before


def test_sdk_model_deploy_undeploy_and_delete(vertex, fixed_endpoint):
    from google.cloud import aiplatform

    model_name = fixed_endpoint.list_models()[0].model
    model = aiplatform.Model(model_name)
    assert model.display_name == "fixed-model"
    endpoint = model.deploy(machine_type="n1-standard-4")
    assert endpoint.display_name == "fixed-model_endpoint"
    [deployed] = endpoint.list_models()
    assert deployed.dedicated_resources.machine_spec.machine_type == "n1-standard-4"
    assert endpoint.predict(
        instances=[{"prompt": "question?", "temperature": 0, "max_tokens": 20, "raw_response": True}]
    ).predictions == [FIXED_ANSWER]
    assert {d.endpoint for d in aiplatform.Model(model_name).gca_resource.deployed_models} == {
        fixed_endpoint.resource_name,
        endpoint.resource_name,
    }
    endpoint.delete(force=True)  # undeploys, then deletes
    with pytest.raises(Exception, match="not found"):
        _ = aiplatform.Endpoint(endpoint.resource_name).display_name


def test_many_concurrent_requests_and_a_client_that_leaves_mid_stream(served, fixed_endpoint):
    url = f"{served.url}/v1/{fixed_endpoint.resource_name}"

    async def one(client, i):
        r = await client.post(
            f"{url}/chat/completions",
            json={"messages": [{"role": "user", "content": f"q{i}?"}], "max_tokens": 24, "temperature": 0},
        )
        return r.status_code, r.json()["choices"][0]["message"]["content"]

    async def all_of_them():
        async with httpx.AsyncClient(timeout=120) as client:
            return await asyncio.gather(*(one(client, i) for i in range(100)))

    results = asyncio.run(all_of_them())
    assert all(status == 200 and text == FIXED_ANSWER for status, text in results)
    stats = httpx.get(f"{served.url}/tuneforge/serving").json()
    assert max(g["maxBatchSeen"] for g in stats["groups"]) > 8  # they were decoded together
    # a streaming client that disconnects frees its slot: decoding stops well before max_tokens
    body = {
        "contents": [{"role": "user", "parts": [{"text": "stream"}]}],
        "generationConfig": {"maxOutputTokens": 3000, "temperature": 1.0, "seed": 1},
    }
    with httpx.stream("POST", f"{url}:streamGenerateContent", json=body, timeout=60) as r:
        for _ in r.iter_raw():
            break

    def steps():
        return sum(g["decodeSteps"] for g in httpx.get(f"{served.url}/tuneforge/serving").json()["groups"])

    time.sleep(1.0)
    settled = steps()
    time.sleep(1.0)
    assert steps() == settled  # nothing is decoding for the departed client
    assert all(g["activeRows"] == 0 for g in httpx.get(f"{served.url}/tuneforge/serving").json()["groups"])


@pytest.mark.parametrize(
    "deployed,split,message",
    [
        (
            {
                "dedicatedResources": {
                    "machineSpec": {"machineType": "ct5lp-hightpu-1t", "acceleratorType": 12, "acceleratorCount": 1}
                }
            },
            None,
            "not TPUs",
        ),
        (
            {"dedicatedResources": {"machineSpec": {"acceleratorType": "NVIDIA_L4", "acceleratorCount": 17}}},
            None,
            "acceleratorCount must be a whole number from 0 to 16",
        ),
        ({"dedicatedResources": {"machineSpec": {"acceleratorType": "NVIDIA_L5"}}}, None, "is not an accelerator type"),
        ({"dedicatedResources": {"machineSpec": {"acceleratorCount": 2}}}, None, "no acceleratorType is given"),
        ({"dedicatedResources": {"minReplicaCount": 3, "maxReplicaCount": 1}}, None, "is below minReplicaCount"),
        ({}, {"0": 60}, "add up to 60; they must add up to 100"),
        ({}, {"777": 100}, "names deployed model '777', which is not on this endpoint"),
    ],
)
def test_deploy_requests_the_server_cannot_meet_are_refused(served, fixed_endpoint, deployed, split, message):
    model = fixed_endpoint.list_models()[0].model
    body = {"deployedModel": {"model": model, **deployed}, **({"trafficSplit": split} if split else {})}
    r = httpx.post(f"{served.url}/v1/{fixed_endpoint.resource_name}:deployModel", json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]
    missing = httpx.post(
        f"{served.url}/v1/{fixed_endpoint.resource_name}:deployModel",
        json={"deployedModel": {"model": f"{P}/models/404"}},
        timeout=60,
    )
    assert missing.status_code == 404 and "Model projects/p/locations/us-central1/models/404 not found" in missing.text


# last: it restarts the module's server
def test_deployments_survive_a_restart(served, fixed_endpoint, tmp_path):
    served.stop()
    again = start_server(served.home, served.env["TUNEFORGE_DATABASE_URL"])
    served.url, served.process = again.url, again.process  # so the module fixture stops the new server
    r = httpx.post(
        f"{again.url}/v1/{fixed_endpoint.resource_name}:predict",
        json={"instances": [{"prompt": "question?", "temperature": 0, "max_tokens": 20, "raw_response": True}]},
        timeout=60,
    )
    assert r.json()["predictions"] == [FIXED_ANSWER]  # loaded on its first request after the restart
    endpoint = httpx.get(f"{again.url}/v1/{fixed_endpoint.resource_name}", timeout=60).json()
    assert r.json()["deployedModelId"] == endpoint["deployedModels"][0]["id"]
