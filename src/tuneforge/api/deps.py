"""Request plumbing shared by routers: the JSON body, API-key authentication scoped to projects."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from tuneforge.errors import InvalidArgument, PermissionDenied, Unauthenticated


def parse_api_keys(spec: str) -> dict[str, set[str] | None]:
    """``KEY`` (all projects) or ``KEY=proj1|proj2``, comma-separated."""
    keys: dict[str, set[str] | None] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        key, _, projects = item.partition("=")
        keys[key.strip()] = {p.strip() for p in projects.split("|") if p.strip()} if projects else None
    return keys


def authorize(request: Request, project: str | None) -> None:
    """A valid key for ``project``; ``None`` (server-wide operator views) needs a key scoped to every project."""
    keys: dict = request.app.state.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if token not in keys:
        raise Unauthenticated("missing or unknown API key; send Authorization: Bearer <key> (with the SDK: "
                              "credentials=google.oauth2.credentials.Credentials(token=KEY))")
    scope = keys[token]
    if scope is not None and (project is None or project not in scope):
        raise PermissionDenied(f"this API key may not use project {project!r}" if project is not None
                               else "this view needs an API key that is not scoped to projects")


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    return body


def split_verb(value: str, collection: str, verbs: tuple[str, ...] = ("cancel",)) -> tuple[str, str]:
    """``123:cancel`` -> ("123", "cancel"); a verb the collection does not have is a clear 400."""
    resource_id, _, verb = value.partition(":")
    if verb not in verbs:
        raise InvalidArgument(f"unknown method {verb!r} on {collection}; supported: {', '.join(verbs)}")
    return resource_id, verb
