"""The landing page at ``/`` and the web console's assets at ``/console`` (outside the OpenAPI document)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from tuneforge import console

router = APIRouter(include_in_schema=False)

LANDING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tuneforge</title></head>
<body><main><h1>tuneforge</h1><p>Self-hosted, Vertex AI-compatible model tuning.</p><ul>
<li><a href="/console/">Web console</a></li><li><a href="/docs">API reference (OpenAPI)</a></li>
<li><a href="/healthz">Health</a></li></ul></main></body></html>"""

NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tuneforge console</title></head>
<body><main><h1>The console is not built</h1><p>This installation has no console assets. Build them with
<code>make install</code> in a checkout (it needs Node.js and npm), or install a tuneforge package that carries
them.</p></main></body></html>"""


@router.get("/", response_class=HTMLResponse)
def landing() -> str:
    return LANDING


@router.get("/console")
def console_root() -> Response:
    return RedirectResponse("/console/")


@router.get("/console/{path:path}")
def console_file(path: str) -> Response:
    """A built asset, or the app's page for any other path under /console (its own routes)."""
    dist = console.built()
    if dist is None:
        return HTMLResponse(NOT_BUILT, status_code=503)
    target = (dist / path).resolve()
    if path and target.is_file() and target.is_relative_to(dist.resolve()):
        return FileResponse(target)
    return FileResponse(dist / "index.html")
