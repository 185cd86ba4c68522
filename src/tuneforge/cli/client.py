"""A small REST client for a tuneforge server (the CLI's `--server` paths and the demo use it)."""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable

import httpx

from tuneforge.errors import TuneforgeError
from tuneforge.wire import names

FINAL_STATES = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}


class ApiError(TuneforgeError):
    def __init__(self, status: int, body: dict):
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.status_name = err.get("status", "")
        violations = [v.get("description", "") for d in err.get("details", []) for v in d.get("fieldViolations", [])]
        super().__init__(f"{status} {err.get('status', '')}: {err.get('message', body)}", details=violations)


class Client:
    def __init__(
        self,
        url: str,
        project: str = "tuneforge",
        location: str = "us-central1",
        api_key: str | None = None,
        timeout: float = 60,
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url, self.project, self.location = url.rstrip("/"), project, location
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.parent = names.parent(project, location)

    def _call(self, method: str, path: str, **kw) -> dict:
        resp = self.http.request(method, "/v1/" + path.lstrip("/"), **kw)
        try:
            body = resp.json()
        except json.JSONDecodeError:
            body = {"error": {"message": resp.text}}
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, body)
        return body

    def _name(self, ref: str, collection: str = "tuningJobs") -> str:
        """A full resource name from an id or a name (``projects/…`` names are taken as they are)."""
        return ref if ref.startswith("projects/") else f"{self.parent}/{collection}/{ref}"

    def create_tuning_job(self, body: dict) -> dict:
        return self._call("POST", f"{self.parent}/tuningJobs", content=json.dumps(body))

    def create_pipeline_job(self, body: dict, job_id: str) -> dict:
        return self._call(
            "POST", f"{self.parent}/pipelineJobs", params={"pipelineJobId": job_id}, content=json.dumps(body)
        )

    def get(self, job: str, collection: str = "tuningJobs") -> dict:
        return self._call("GET", self._name(job, collection))

    def list(self, filter: str | None = None, collection: str = "tuningJobs") -> list[dict]:
        jobs, token = [], None
        while True:
            params = {k: v for k, v in (("filter", filter), ("pageToken", token)) if v}
            page = self._call("GET", f"{self.parent}/{collection}", params=params)
            jobs.extend(page.get(collection, []))
            token = page.get("nextPageToken")
            if not token:
                return jobs

    def cancel(self, job: str, collection: str = "tuningJobs") -> None:
        self._call("POST", self._name(job, collection) + ":cancel")

    def metrics(self, job: str, since_step: int = 0) -> dict:
        return self._call("GET", self._name(job) + "/metrics", params={"sinceStep": since_step})

    def follow(
        self,
        job: str,
        on_progress: Callable[[dict, dict], None] | None = None,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> dict:
        """Poll until the job ends; ``on_progress(job, metrics_page)`` after each poll. Returns the final job."""
        started, seen = time.monotonic(), 0
        while True:
            current = self.get(job)
            page = self.metrics(job, since_step=seen)
            if page["metrics"]:  # the last step again next time: its eval metrics are written after its train ones
                seen = max(m["step"] for m in page["metrics"]) - 1
            if on_progress:
                on_progress(current, page)
            if current["state"] in FINAL_STATES:
                return current
            if timeout is not None and time.monotonic() - started > timeout:
                raise TimeoutError(f"{job} still {current['state']} after {timeout:.0f} s")
            time.sleep(poll)

    # -- deploying and serving ---------------------------------------------------------------------------------
    def wait_operation(self, op: dict, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while not op.get("done"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"operation {op['name']} not done after {timeout:.0f} s")
            time.sleep(0.3)
            op = self._call("GET", op["name"])
        if "error" in op:
            raise TuneforgeError(f"operation failed: {op['error'].get('message', op['error'])}")
        return op["response"]

    def deploy(self, model: str, endpoint: str | None = None, resources: dict | None = None) -> str:
        """Deploy a registry model (id or name) or weights (gs:// URI); returns the endpoint's resource name."""
        resources = resources or {}
        if model.startswith("gs://"):
            body = {"customModel": {"gcsUri": model}, "deployConfig": resources}
            resp = self.http.post(f"/v1beta1/{self.parent}:deploy", content=json.dumps(body))
            op = resp.json()
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, op)
            return self.wait_operation(op)["endpoint"]
        model_name = self._name(model, "models")
        if endpoint is None:
            display = self._call("GET", model_name).get("displayName", "model")
            op = self._call(
                "POST", f"{self.parent}/endpoints", content=json.dumps({"displayName": f"{display}_endpoint"})
            )
            endpoint = self.wait_operation(op)["name"]
        endpoint = self._name(endpoint, "endpoints")
        body = {"deployedModel": {"model": model_name, **resources}, "trafficSplit": {"0": 100}}
        self.wait_operation(self._call("POST", endpoint + ":deployModel", content=json.dumps(body)))
        return endpoint

    def predict(self, endpoint: str, instances: builtins.list[dict]) -> dict:
        return self._call(
            "POST", self._name(endpoint, "endpoints") + ":predict", content=json.dumps({"instances": instances})
        )

    def chat_stream(self, endpoint: str, messages: builtins.list[dict], **params):
        """OpenAI-style chat over SSE; yields the answer's text as it is generated."""
        url = "/v1/" + self._name(endpoint, "endpoints") + "/chat/completions"
        body = {"messages": messages, "stream": True, **{k: v for k, v in params.items() if v is not None}}
        with self.http.stream("POST", url, content=json.dumps(body), timeout=None) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise ApiError(resp.status_code, resp.json())
            for line in resp.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices", []):
                    if choice.get("delta", {}).get("content"):
                        yield choice["delta"]["content"]

    def close(self) -> None:
        self.http.close()
