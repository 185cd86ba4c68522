"""The OpenAI files API with the official ``openai`` client against a live server, on SQLite and PostgreSQL: upload
(streamed, size-limited), list (purpose filter, paging), retrieve, content, delete; a file a running job trains on
is not deleted; errors in OpenAI's shape; a second API key never sees the first one's files."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from tests.integration.conftest import reset_postgres, start_server

LINES = "".join(
    json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}) + "\n"
    for i in range(5)
)
LIMIT = 64 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def keyed_server(request, tmp_path_factory):
    """One server per database for the module; each test works in its own project (its own key)."""
    home = tmp_path_factory.mktemp("files-home")
    url = f"sqlite:///{home / 'tuneforge.db'}"
    if request.param == "postgresql":
        url = reset_postgres(request.getfixturevalue("pg_url"))
    keys = ",".join(f"key-{p}=team-{p}" for p in "abcde") + ",key-both=team-c|team-d"
    env = {"TUNEFORGE_API_KEYS": keys, "TUNEFORGE_MAX_UPLOAD_BYTES": str(LIMIT), "TUNEFORGE_WORKERS": "0"}
    srv = start_server(home, url, extra_env=env)
    yield srv
    srv.stop()


def _client(server, key: str = "key-a", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, **kw)


def test_upload_list_page_read_and_delete(keyed_server, tmp_path):
    client = _client(keyed_server)
    path = tmp_path / "train.jsonl"
    path.write_text(LINES)
    uploaded = [client.files.create(file=path.open("rb"), purpose="fine-tune") for _ in range(3)]
    other = client.files.create(file=("notes.jsonl", b'{"x": 1}\n'), purpose="batch")
    first = uploaded[0]
    assert first.id.startswith("file-") and first.object == "file" and first.purpose == "fine-tune"
    assert first.bytes == len(LINES.encode()) and first.filename == "train.jsonl" and first.status == "processed"
    assert client.files.retrieve(first.id) == first
    assert client.files.content(first.id).read() == LINES.encode()
    # Stored under the bucket root, in the project's own folder.
    stored = list((keyed_server.bucket / "tuneforge-files" / "team-a").iterdir())
    assert len(stored) == 4 and any(p.read_bytes() == LINES.encode() for p in stored)

    tuning = client.files.list(purpose="fine-tune")
    assert [f.id for f in tuning.data] == [f.id for f in reversed(uploaded)]  # newest first
    page = client.files.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    every = [f.id for f in client.files.list(limit=2)]  # iterating the page follows `after`
    assert sorted(every) == sorted([f.id for f in uploaded] + [other.id]) and len(every) == 4
    oldest = client.files.list(order="asc", limit=1).data[0]
    assert oldest.id == first.id

    gone = client.files.delete(first.id)
    assert gone.deleted and gone.id == first.id
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve(first.id)
    assert missing.value.body["message"] == f"No such File object: {first.id}"  # the client hands back "error"
    assert missing.value.body["type"] == "invalid_request_error" and missing.value.body["param"] == "file_id"
    assert len(list((keyed_server.bucket / "tuneforge-files" / "team-a").iterdir())) == 3


def test_bad_uploads_are_400s_in_openais_shape_and_leave_nothing(keyed_server, tmp_path):
    client = _client(keyed_server, "key-b")
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"messages": []}\n' * (LIMIT // 17 + 10))
    with pytest.raises(openai.BadRequestError) as too_big:
        client.files.create(file=big.open("rb"), purpose="fine-tune")
    assert f"over {LIMIT:,} bytes, the most an upload may have (TUNEFORGE_MAX_UPLOAD_BYTES)" in too_big.value.message
    assert too_big.value.body["param"] == "file"
    with pytest.raises(openai.BadRequestError, match="purpose 'training' is not one of"):
        client.files.create(file=("a.jsonl", LINES.encode()), purpose="training")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="is empty"):
        client.files.create(file=("empty.jsonl", b""), purpose="fine-tune")
    raw = httpx.post(
        f"{keyed_server.url}/v1/files", headers={"Authorization": "Bearer key-b"}, json={"purpose": "fine-tune"}
    )
    assert raw.status_code == 400 and "multipart/form-data" in raw.json()["error"]["message"]
    no_file = httpx.post(
        f"{keyed_server.url}/v1/files",
        headers={"Authorization": "Bearer key-a"},
        files={"purpose": (None, "fine-tune")},
    )
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    assert client.files.list().data == []
    assert not any((keyed_server.home / "staging" / "uploads").iterdir())  # no half-written upload left
    assert not (keyed_server.bucket / "tuneforge-files" / "team-b").exists()


def test_keys_see_only_their_projects_files(keyed_server):
    a, b = _client(keyed_server, "key-c"), _client(keyed_server, "key-d")
    mine = a.files.create(file=("a.jsonl", LINES.encode()), purpose="fine-tune")
    assert b.files.list().data == []
    with pytest.raises(openai.NotFoundError):
        b.files.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        b.files.content(mine.id)
    with pytest.raises(openai.NotFoundError):
        b.files.delete(mine.id)
    with pytest.raises(openai.AuthenticationError) as unknown:
        _client(keyed_server, "nope").files.list()
    assert unknown.value.body["type"] == "authentication_error" and unknown.value.body["code"] == "invalid_api_key"
    # A key of two projects names one (openai.OpenAI(project=...) sends OpenAI-Project); it may not name another.
    with pytest.raises(openai.BadRequestError, match="OpenAI-Project"):
        _client(keyed_server, "key-both").files.list()
    assert [f.id for f in _client(keyed_server, "key-both", project="team-c").files.list().data] == [mine.id]
    with pytest.raises(openai.PermissionDeniedError, match="may not use project 'team-c'"):
        _client(keyed_server, "key-d", project="team-c").files.list()
    with pytest.raises(openai.BadRequestError, match="is not a project id"):
        _client(keyed_server, "key-both", project="../team-c").files.list()


def test_a_file_an_active_job_trains_on_is_not_deleted(keyed_server):
    client = _client(keyed_server, "key-e")
    used = client.files.create(file=("train.jsonl", LINES.encode()), purpose="fine-tune")
    # A tuning job that trains on the file (this server runs no worker, so it stays queued until cancelled).
    auth = {"Authorization": "Bearer key-e"}
    body = {
        "baseModel": "tiny-llama",
        "supervisedTuningSpec": {"trainingDatasetUri": f"gs://tuneforge-files/team-e/{used.id}.jsonl"},
    }
    with keyed_server.client(headers=auth) as c:
        job = c.post("/v1/projects/team-e/locations/us-central1/tuningJobs", json=body)
        assert job.status_code == 200, job.text
        with pytest.raises(openai.BadRequestError, match="used by a job that has not ended"):
            client.files.delete(used.id)
        assert c.post(f"/v1/{job.json()['name']}:cancel").status_code == 200
        assert c.get(f"/v1/{job.json()['name']}").json()["state"] == "JOB_STATE_CANCELLED"
    assert client.files.delete(used.id).deleted
