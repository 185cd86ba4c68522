"""`tuneforge serve` (the API with an in-process worker) and `tuneforge worker` (workers on other machines).

Both check what they need before claiming to be up: the database opens (and is upgraded), the port is free. A
problem is one clear line, not a traceback.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Optional

import typer

from tuneforge.cli.common import console, fail, settings
from tuneforge.quiet import quiet_libraries
from tuneforge.settings import Settings

HOME = typer.Option(
    None,
    "--home",
    help="Where tuneforge keeps its database, models and bucket root [default: $TUNEFORGE_HOME or ~/.tuneforge].",
    show_default=False,
)
BUCKET_ROOT = typer.Option(
    None,
    "--bucket-root",
    help="gs://BUCKET/path maps to <bucket-root>/BUCKET/path [default: $TUNEFORGE_BUCKET_ROOT or <home>/buckets].",
    show_default=False,
)
DATABASE_URL = typer.Option(
    None,
    "--database-url",
    help="sqlite:///… or postgresql://… [default: $TUNEFORGE_DATABASE_URL or SQLite under <home>].",
    show_default=False,
)
DEV = typer.Option(
    None,
    "--dev/--no-dev",
    help="Dev mode: models without weights run on their tiny stand-ins [default: $TUNEFORGE_DEV or off].",
    show_default=False,
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-migration INFO lines are not for users


def _redacted(url: str) -> str:
    """A database URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        rest = f"{credentials.split(':', 1)[0]}:***@{host}" if ":" in credentials else rest
    return scheme + sep + rest


def open_store(s: Settings):
    """The job store, created or upgraded; one clear line when the database cannot be opened."""
    from tuneforge.control.db import Store  # lazy: SQLAlchemy and the tables load only for the servers

    try:
        return Store(s.resolved_database_url)
    except Exception as exc:  # any driver's connection or permission error
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(
            f"cannot open the database {_redacted(s.resolved_database_url)}: {cause}. Check --database-url "
            "(TUNEFORGE_DATABASE_URL) and that the database server is running"
        )


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. Pass --port (TUNEFORGE_PORT), or stop what "
                "is using it"
            )


GRACEFUL_SECONDS = 3  # what open requests get after SIGTERM before the server stops


def serve(
    host: Optional[str] = typer.Option(
        None, "--host", help="Listen address [default: $TUNEFORGE_HOST or 127.0.0.1].", show_default=False
    ),
    port: Optional[int] = typer.Option(
        None, "--port", help="Port [default: $TUNEFORGE_PORT or 8080].", show_default=False
    ),
    database_url: Optional[str] = DATABASE_URL,
    home: Optional[Path] = HOME,
    bucket_root: Optional[Path] = BUCKET_ROOT,
    api_keys: Optional[str] = typer.Option(
        None,
        "--api-keys",
        help="KEY or KEY=proj1|proj2, comma-separated [default: $TUNEFORGE_API_KEYS; none: no authentication].",
        show_default=False,
    ),
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        help="In-process worker slots; 0: run `tuneforge worker` separately [default: $TUNEFORGE_WORKERS or 1].",
        show_default=False,
    ),
    dev: Optional[bool] = DEV,
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback address without API keys."),
) -> None:
    """Start the Vertex-compatible API (and an in-process worker)."""
    s = settings(
        host=host,
        port=port,
        database_url=database_url,
        home=home,
        bucket_root=bucket_root,
        api_keys=api_keys,
        workers=workers,
        dev=dev,
        insecure=insecure or None,
    )
    if not s.api_keys and not _is_loopback(s.host) and not s.insecure:
        fail(f"refusing to listen on {s.host} without API keys; set --api-keys (TUNEFORGE_API_KEYS) or pass --insecure")
    quiet_libraries()
    _logging()
    _check_port(s.host, s.port)
    store = open_store(s)
    import uvicorn  # lazy: the server's own dependencies load only for `serve`

    from tuneforge.api import create_app  # lazy: as above (it loads torch for the serving engine)

    app = create_app(s, store=store)
    console.print(
        f"tuneforge API on http://{s.host}:{s.port} (database {s.resolved_database_url.split('://')[0]}, "
        f"dev mode {'on' if s.dev else 'off'}; docs at http://{s.host}:{s.port}/docs)"
    )
    # SIGTERM: open requests get a few seconds (a stream never holds the process), then the lifespan stops the
    # engine and the worker, whose children save their checkpoints and stop.
    uvicorn.run(app, host=s.host, port=s.port, log_level="warning", timeout_graceful_shutdown=GRACEFUL_SECONDS)


def worker(
    database_url: Optional[str] = DATABASE_URL,
    home: Optional[Path] = HOME,
    bucket_root: Optional[Path] = BUCKET_ROOT,
    slots: int = typer.Option(1, "--slots", help="Jobs this worker runs at once."),
    dev: Optional[bool] = DEV,
) -> None:
    """Run jobs from the shared database (any number of workers, on any machine that sees the database and storage)."""
    s = settings(database_url=database_url, home=home, bucket_root=bucket_root, dev=dev)
    quiet_libraries()
    _logging()
    store = open_store(s)
    from tuneforge.worker.worker import Worker  # lazy: the worker loads the training stack

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    w = Worker(store, s, slots=slots)
    console.print(f"worker {w.worker_id} on {s.resolved_database_url.split('://')[0]}, {slots} slot(s)")
    w.run(stop)


def openapi() -> None:
    """Print the server's OpenAPI document (JSON): what the console's typed client is generated from."""
    import json
    import tempfile

    from tuneforge.api.app import create_app  # lazy: the API stack, for this command only

    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=Path(home)), with_worker=False)
        document = app.openapi()
        app.state.store.dispose()
    typer.echo(json.dumps(document, indent=1, sort_keys=True))
