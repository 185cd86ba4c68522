"""Tool use in chat lines (OpenAI's format): the functions a line offers, the assistant's calls, the tool messages
that answer them, and the rules a conversation with tools keeps. Problems go to the line's report, each at its JSON
path with the fix.

- ``tools``: ``[{"type": "function", "function": {"name", "description"?, "parameters"?}}]`` on the line;
- an assistant message's ``tool_calls``: ``[{"id", "type": "function", "function": {"name", "arguments"}}]``, the
  arguments a JSON object written as a string (OpenAI's way) or given as an object;
- ``{"role": "tool", "tool_call_id", "content"}`` answers a call.
OpenAI's older spelling (``functions``, an assistant's ``function_call``, ``{"role": "function", "name"}``) is read as
the same thing: calls get ids (``call_<message>``) and a function message answers the call before it by name.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from tuneforge.data.conversation import Message, TextPart, ToolCall
from tuneforge.data.report import json_type

if TYPE_CHECKING:
    from tuneforge.data.formats import _Line

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CALL_SHAPE = '{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": …}"}}'


def _function_name(ctx: _Line, value: Any, path: str) -> str | None:
    if not isinstance(value, str) or not NAME.match(value):
        shown = json.dumps(value) if isinstance(value, str) else json_type(value)
        ctx.error(f"a function name is 1 to 64 letters, digits, _ or - (got {shown})", path)
        return None
    return value


def _function(ctx: _Line, spec: Any, path: str) -> dict | None:
    """One function definition: its name, and its description and JSON-schema parameters when given."""
    if not isinstance(spec, dict):
        like = '{"name": "get_weather", "parameters": {…}}'
        ctx.error(f"expected an object like {like}, got {json_type(spec)}", path)
        return None
    name = _function_name(ctx, spec.get("name"), f"{path}.name")
    if "parameters" in spec and not isinstance(spec["parameters"], dict):
        ctx.error(f"expected a JSON schema object, got {json_type(spec['parameters'])}", f"{path}.parameters")
        return None
    if "description" in spec and not isinstance(spec["description"], str):
        ctx.error(f"expected a string, got {json_type(spec['description'])}", f"{path}.description")
        return None
    return dict(spec) if name else None


def parse_tools(ctx: _Line, obj: dict) -> tuple[dict, ...]:
    """The line's ``tools`` (or legacy ``functions``), each as ``{"type": "function", "function": {...}}``."""
    key = "tools" if "tools" in obj else "functions" if "functions" in obj else None
    if key is None:
        return ()
    value = obj[key]
    if not isinstance(value, list) or not value:
        ctx.error(f"expected a non-empty list of function definitions, got {json_type(value)}", key)
        return ()
    out: list[dict] = []
    for i, item in enumerate(value):
        path = f"{key}[{i}]"
        if key == "tools":
            if not isinstance(item, dict) or item.get("type") != "function":
                ctx.error('expected {"type": "function", "function": {"name": …}}: only function tools are tuned', path)
                continue
            item, path = item.get("function"), f"{path}.function"
        function = _function(ctx, item, path)
        if function is not None:
            out.append({"type": "function", "function": function})
    names = [t["function"]["name"] for t in out]
    for name in {n for n in names if names.count(n) > 1}:
        ctx.error(f"the function {name!r} is defined twice; give each tool a different name", key)
    return tuple(out)


def _arguments(ctx: _Line, value: Any, path: str) -> dict | None:
    """A call's arguments: a JSON object, as a string (OpenAI's) or an object."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            ctx.error(
                f"not valid JSON ({exc.msg} at column {exc.colno}); write the arguments as a JSON object in a string, "
                'like "{\\"city\\": \\"Paris\\"}"',
                path,
            )
            return None
    if not isinstance(value, dict):
        ctx.error(f'the arguments must be a JSON object (got {json_type(value)}); use "{{}}" for none', path)
        return None
    return value


def _call(ctx: _Line, spec: Any, path: str, default_id: str | None = None) -> ToolCall | None:
    if not isinstance(spec, dict):
        ctx.error(f"expected a tool call like {CALL_SHAPE}, got {json_type(spec)}", path)
        return None
    function, fpath = (spec.get("function"), f"{path}.function") if default_id is None else (spec, path)
    call_id = spec.get("id", default_id)
    if default_id is None and spec.get("type", "function") != "function":
        ctx.error(f'only function calls are tuned; type must be "function" (got {spec.get("type")!r})', f"{path}.type")
        return None
    if not isinstance(call_id, str) or not call_id:
        ctx.error("missing; give the call an id (the tool message that answers it names it)", f"{path}.id")
        return None
    if not isinstance(function, dict):
        ctx.error(f'expected {{"name": …, "arguments": "{{…}}"}}, got {json_type(function)}', fpath)
        return None
    name = _function_name(ctx, function.get("name"), f"{fpath}.name")
    if "arguments" not in function:
        ctx.error('missing; give the arguments as a JSON object in a string ("{}" for none)', f"{fpath}.arguments")
        return None
    arguments = _arguments(ctx, function["arguments"], f"{fpath}.arguments")
    if name is None or arguments is None:
        return None
    return ToolCall(call_id, name, arguments, path=path)


def parse_calls(ctx: _Line, m: dict, path: str, index: int) -> tuple[ToolCall, ...] | None:
    """An assistant message's ``tool_calls`` (or legacy ``function_call``, given the id ``call_<index>``)."""
    if "function_call" in m:
        call = _call(ctx, m["function_call"], f"{path}.function_call", default_id=f"call_{index}")
        return (call,) if call else None
    value = m["tool_calls"]
    if not isinstance(value, list) or not value:
        got = "an empty list" if value == [] else json_type(value)
        ctx.error(f"expected a non-empty list of tool calls like [{CALL_SHAPE}], got {got}", f"{path}.tool_calls")
        return None
    calls = [_call(ctx, spec, f"{path}.tool_calls[{i}]") for i, spec in enumerate(value)]
    if any(c is None for c in calls):
        return None
    ids = [c.id for c in calls if c]
    for dup in {i for i in ids if ids.count(i) > 1}:
        ctx.error(f"the id {dup!r} is given to two calls; give each call its own id", f"{path}.tool_calls")
        return None
    return tuple(c for c in calls if c)


def tool_message(ctx: _Line, m: dict, path: str, content: str | None) -> Message | None:
    """A tool's result: ``{"role": "tool", "tool_call_id", "content"}`` (or legacy ``{"role": "function", "name"}``)."""
    if content is None:
        return None
    if m["role"] == "function":
        name = _function_name(ctx, m.get("name"), f"{path}.name")
        return Message("tool", (TextPart(content),), name=name) if name else None
    call_id = m.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        ctx.error("missing; give the id of the tool call this message answers", f"{path}.tool_call_id")
        return None
    return Message("tool", (TextPart(content),), tool_call_id=call_id)


def check_tool_turns(ctx: _Line, items: list[tuple[Message, str]], tools: tuple[dict, ...]) -> bool:
    """A conversation's tool rules: each tool message answers a call of the assistant message before it (by id; a
    legacy function message by name), every call is answered before the conversation goes on, and the functions
    called are ones the line offers (when it offers any)."""
    offered = {t["function"]["name"] for t in tools}
    open_calls: dict[str, ToolCall] = {}
    caller = ""
    for m, path in items:
        if m.role == "tool":
            if not caller:
                ctx.error("a tool message must answer a call: put it right after the assistant's tool_calls", path)
                return False
            answered = _answered(open_calls, m)
            if answered is None:
                what = f"tool_call_id {m.tool_call_id!r}" if m.tool_call_id else f"the function {m.name!r}"
                ids = ", ".join(open_calls) or "none left"
                ctx.error(f"{what} answers no open call of {caller} (open: {ids})", f"{path}.tool_call_id")
                return False
            del open_calls[answered]
            continue
        if open_calls:
            ids = ", ".join(open_calls)
            ctx.error(f"the calls {ids} of {caller} have no tool message answering them; add one for each", path)
            return False
        caller = ""
        if m.tool_calls:
            unknown = [c for c in m.tool_calls if offered and c.name not in offered]
            if unknown:
                names = ", ".join(sorted(offered))
                ctx.error(
                    f"calls {unknown[0].name!r}, which is not in tools ({names}); fix the name or add the tool",
                    f"{unknown[0].path}.function.name"
                    if "tool_calls" in unknown[0].path
                    else f"{unknown[0].path}.name",
                )
                return False
            open_calls, caller = {c.id: c for c in m.tool_calls}, path
    return True


def _answered(open_calls: dict[str, ToolCall], m: Message) -> str | None:
    if m.tool_call_id is not None:
        return m.tool_call_id if m.tool_call_id in open_calls else None
    return next((i for i, c in open_calls.items() if c.name == m.name), None)
