"""A real tuneforge server in a subprocess, on SQLite or on the machine's PostgreSQL."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

PG_ADMIN = os.environ.get("TUNEFORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    if not _pg_available():
        pytest.fail(
            "PostgreSQL is not reachable at 127.0.0.1:5432; start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    import psycopg

    name = f"tuneforge_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    url: str
    home: Path
    env: dict
    process: subprocess.Popen
    log: Path
    extra: list = field(default_factory=list)

    @property
    def bucket(self) -> Path:
        return self.home / "buckets"

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)


def _tuneforge() -> str:
    return str(Path(sys.executable).with_name("tuneforge"))


def start_server(home: Path, database_url: str, *, extra_env: dict | None = None, args: tuple = ()) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "TUNEFORGE_HOME": str(home),
        "TUNEFORGE_DATABASE_URL": database_url,
        "TUNEFORGE_DEV": "1",
        "TUNEFORGE_PORT": str(port),
        "TUNEFORGE_HEARTBEAT_SECONDS": "0.5",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.update(extra_env or {})
    log = home / f"server-{port}.log"
    proc = subprocess.Popen([_tuneforge(), "serve", *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).json().get("status") == "ok":
                return Server(url, home, env, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not become ready: {log.read_text()[-3000:]}")


def _database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tuneforge.db'}"
    return reset_postgres(request.getfixturevalue("pg_url"))


def reset_postgres(url: str) -> str:
    """An empty schema in the test database (a fresh database per test is too slow)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def every_database_url(request, tmp_path):
    """Both databases in `make test`: for what differs between them (claiming jobs)."""
    return _database_url(request, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request, tmp_path):
    """SQLite in `make test`, PostgreSQL too in `make test-slow`: for long flows whose database code is shared."""
    return _database_url(request, tmp_path)


@pytest.fixture()
def server(tmp_path, database_url):
    home = tmp_path / "home"
    home.mkdir()
    srv = start_server(home, database_url)
    yield srv
    srv.stop()


@pytest.fixture()
def sqlite_server(tmp_path):
    """For tests of the API surface that do not depend on the database kind."""
    home = tmp_path / "home"
    home.mkdir()
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for a module's many small requests that leave nothing behind (validation errors)."""
    home = tmp_path_factory.mktemp("shared-home")
    srv = start_server(home, f"sqlite:///{home / 'tuneforge.db'}")
    yield srv
    srv.stop()


def write_dataset(path: Path, n: int = 24, fmt: str = "generate_content", seed: int = 0) -> Path:
    from tuneforge.train.demo_task import make_task, write_jsonl

    task = make_task(n_train=n, n_validation=1, n_held_out=1, seed=seed)
    return write_jsonl(path, task.train, fmt=fmt)


def init_vertex(url: str, project: str = "p", **extra) -> None:
    """Point the official SDK (vertexai, aiplatform) at a tuneforge server over REST, anonymously."""
    import google.auth.credentials
    import vertexai

    vertexai.init(
        project=project,
        location="us-central1",
        api_endpoint=url,
        api_transport="rest",
        credentials=google.auth.credentials.AnonymousCredentials(),
        **extra,
    )


def wait_for(predicate, timeout: float = 120, interval: float = 0.3, what: str = "condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value {last!r}")


@pytest.fixture()
def pipeline_server(server):
    """A server whose bucket holds the example datasets, with the SDK pointed at it air-gapped (tuneforge.vertex_offline)."""
    import vertexai  # noqa: F401 - the SDK loads before vertex_offline patches it (its loggers are its own class then)

    from tuneforge import vertex_offline

    vertex_offline.install(server.url)  # template downloads and the bucket probe stay on this machine
    init_vertex(server.url, "my-project", staging_bucket="gs://b/staging")
    for name in (
        "code_generation.jsonl",
        "code_generation_eval.jsonl",
        "codechat.jsonl",
        "distill_labeled.jsonl",
        "distill_unlabeled.jsonl",
        "distill_eval.jsonl",
    ):
        (server.bucket / "b").mkdir(parents=True, exist_ok=True)
        shutil.copy(examples_dir() / name, server.bucket / "b" / name)
    yield server
    import os
    import urllib.request

    urllib.request.install_opener(None)
    os.environ.pop("STORAGE_EMULATOR_HOST", None)


def examples_dir() -> Path:
    from tests.conftest import EXAMPLES

    return EXAMPLES


def add_pending_jobs(store, count: int, project: str = "p") -> None:
    """``count`` PENDING tuning jobs of ``project`` written straight into the store (for tests of claiming)."""
    from tuneforge.control import states
    from tuneforge.control.tables import TuningJobRow, utcnow

    with store.session() as s:
        for i in range(count):
            s.add(
                TuningJobRow(
                    id=str(10**17 + i),
                    project=project,
                    location="us-central1",
                    state=states.PENDING,
                    resource={},
                    config={},
                    labels={},
                    display_name="",
                    base_model="x",
                    create_time=utcnow(),
                    update_time=utcnow(),
                    cancel_requested=False,
                    attempts=0,
                )
            )
