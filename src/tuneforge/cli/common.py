"""What every command shares: the consoles, the server options, the one API-error handler, tables and JSON output.

Output adapts to where it goes. On a terminal: colours, tables sized to the window, live progress bars. To a file
or a CI log: no colours, no line wrapping (a path is never broken mid-word), and progress as plain periodic lines.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuneforge.cli.client import ApiError, Client
from tuneforge.cli.config_options import extend, option
from tuneforge.errors import TuneforgeError
from tuneforge.settings import Settings


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    # Not a terminal: never wrap (a long path stays one line), no colour codes in logs.
    return Console(stderr=stderr, soft_wrap=True, width=10_000, no_color=True, highlight=False)


console = _console(stderr=False)
err = _console(stderr=True)


def is_terminal() -> bool:
    return console.is_terminal


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def settings(**overrides: Any) -> Settings:
    """The process's settings (TUNEFORGE_* variables) with the command's flags over them."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


# -- the server a remote command talks to ------------------------------------------------------------------------

SERVER = typer.Option(
    None,
    "--server",
    help="tuneforge server URL [default: $TUNEFORGE_SERVER or http://127.0.0.1:8080]",
    show_default=False,
)
PROJECT = typer.Option(None, "--project", help="Project [default: $TUNEFORGE_PROJECT or tuneforge]", show_default=False)
LOCATION = typer.Option(
    None, "--location", help="Region [default: $TUNEFORGE_LOCATION or us-central1]", show_default=False
)
API_KEY = typer.Option(
    None, "--api-key", envvar="TUNEFORGE_API_KEY", help="API key [default: $TUNEFORGE_API_KEY]", show_default=False
)
OUTPUT = typer.Option("table", "--output", "-o", help="table, wide (every column) or json.")
JSON = typer.Option(False, "--json", help="Print JSON (the same as -o json).")


def client(
    server: str | None = None, project: str | None = None, location: str | None = None, api_key: str | None = None
) -> Client:
    s = settings()
    url = server or os.environ.get("TUNEFORGE_SERVER") or f"http://{s.host}:{s.port}"
    return Client(url, project=project or s.project, location=location or s.location, api_key=api_key)


def remote(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command on a server: it gets --server, --project, --location and --api-key, and receives the client as
    ``c``."""
    params = [
        option("server", Optional[str], SERVER),
        option("project", Optional[str], PROJECT),
        option("location", Optional[str], LOCATION),
        option("api_key", Optional[str], API_KEY),
    ]
    return extend(command, "c", params, lambda values: client(**values))


def where(c: Client) -> str:
    """How to look elsewhere, for empty lists and 404s."""
    return (
        f"project {c.project}, location {c.location} on {c.url}; pass --project/--location (or set "
        "TUNEFORGE_PROJECT/TUNEFORGE_LOCATION) to look elsewhere"
    )


@contextmanager
def api_errors(c: Client | None = None) -> Iterator[None]:
    """The one place a remote command's errors are printed: the server's message, and where it looked on a 404."""
    try:
        yield
    except ApiError as exc:
        hint = f"\n(looked in {where(c)})" if c is not None and exc.status == 404 else ""
        fail(f"{exc}{hint}")
    except TuneforgeError as exc:
        fail(str(exc))
    except OSError as exc:  # connection refused, DNS, TLS
        target = f" {c.url}" if c is not None else ""
        fail(f"cannot reach the tuneforge server{target}: {exc}; start it with `tuneforge serve` or pass --server")


# -- tables and JSON -----------------------------------------------------------------------------------------------


def output_mode(output: str, as_json: bool) -> str:
    mode = "json" if as_json else output
    if mode not in ("table", "wide", "json"):
        fail(f"--output must be table, wide or json (got {output!r})")
    return mode


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def table(columns: list[str], rows: list[list[str]], *, keys: tuple[int, ...] = (0,)) -> Table:
    """A table whose key columns (ids, names people copy) are never cut; other columns give way first."""
    t = Table(*columns)
    for i, column in enumerate(t.columns):
        if i in keys:
            column.no_wrap = True
            column.min_width = max([len(columns[i]), *(len(r[i]) for r in rows)], default=len(columns[i]))
            column.overflow = "ignore"
        else:
            column.overflow = "fold"
    for r in rows:
        t.add_row(*(escape(str(v)) for v in r))
    return t


def show_list(
    kind: str,
    rows: list[list[str]],
    columns: list[str],
    c: Client,
    mode: str,
    items: list[dict],
    wide: tuple[int, ...] = (),
) -> None:
    """A list command's output: JSON, or a table (``wide`` columns only with -o wide); an empty list says where it
    looked."""
    if mode == "json":
        print_json(items)
        return
    if not rows:
        err.print(f"no {kind} in {where(c)}")
        return
    keep = [i for i in range(len(columns)) if mode == "wide" or i not in wide]
    console.print(table([columns[i] for i in keep], [[r[i] for i in keep] for r in rows]))
