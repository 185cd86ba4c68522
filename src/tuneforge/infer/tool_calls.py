"""A reply's function calls, read back from the text the model wrote, for OpenAI's ``tool_calls``.

Models write calls the way their chat template renders them in training data, so the shapes are the families':
- tagged (Qwen 3, and the Hermes style many models share): ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``;
- bare JSON lines at the end of the reply (Llama 3.1 and later): ``{"name": …, "parameters": {…}}``.
A call counts only when it names a function the request offered and its arguments are a JSON object; a reply with a
malformed call is returned as text, unchanged, so nothing the model wrote is lost.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def _call(found: Any, offered: set[str]) -> dict | None:
    """An OpenAI tool call from a parsed object, or None if it is not a call of an offered function."""
    if not isinstance(found, dict) or found.get("name") not in offered:
        return None
    arguments = found.get("arguments", found.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    function = {"name": found["name"], "arguments": json.dumps(arguments, ensure_ascii=False)}
    return {"id": "call_" + secrets.token_hex(12), "type": "function", "function": function}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def split_tool_calls(text: str, offered: set[str]) -> tuple[str | None, list[dict]]:
    """(the reply's text without its calls, or None when nothing else is left; its calls). No calls: the text as
    it is and an empty list."""
    if not offered:
        return text, []
    tagged = list(TAGGED.finditer(text))
    if tagged:
        found = [_call(_json(m.group(1)), offered) for m in tagged]
        if any(c is None for c in found):
            return text, []
        content = TAGGED.sub("", text).strip()
        return content or None, [c for c in found if c is not None]
    lines = text.rstrip().split("\n")
    calls: list[dict] = []
    while lines and (last := _call(_json(lines[-1].strip()), offered)) is not None:
        calls.insert(0, last)
        lines.pop()
    if not calls:
        return text, []
    content = "\n".join(lines).strip()
    return content or None, calls
