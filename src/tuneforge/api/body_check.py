"""Every JSON request body is read once here, before any route: what no route could use (a number that is not
finite or past int64, a NUL byte or a lone surrogate in a string, nesting past what any API shape needs, a number
with more digits than Python parses) is a clear 400 that names the path, instead of a 500 or a stored record that
breaks later reads (wire.base.hostile_value says what is refused)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from tuneforge.api.errors import error_response, is_openai, openai_error
from tuneforge.wire.base import hostile_value

RAW_BODIES = (":upload",)  # routes whose body is a file, not JSON (the console's dataset upload)


class CheckJsonBodies:
    """ASGI middleware: buffer a JSON body (up to ``limit`` bytes), check it, and hand the same bytes on."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not _checked(scope):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _refuse(scope, receive, send, f"the request body is over {self.limit:,} bytes")
                return
            if not message.get("more_body", False):
                break
        problem = _problem(bytes(body))
        if problem:
            await _refuse(scope, receive, send, problem)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: disconnects, for streaming answers

        await self.app(scope, replay, send)


def _checked(scope: dict[str, Any]) -> bool:
    if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
        return False
    if scope["path"].endswith(RAW_BODIES):
        return False
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
    return content_type.split(b";")[0].strip().lower() == b"application/json"


def _problem(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None  # not JSON: each route answers that in its own words
    except RecursionError:
        return "the request body is nested too deeply to read; flatten it"
    except ValueError as exc:  # an integer of more digits than Python converts, bytes that are not UTF-8
        return f"the request body cannot be read: {exc}"
    return hostile_value(value)


async def _refuse(scope: dict[str, Any], receive: Any, send: Any, message: str) -> None:
    request = Request(scope)
    response = openai_error(400, message) if is_openai(request) else error_response("INVALID_ARGUMENT", message)
    await response(scope, receive, send)
