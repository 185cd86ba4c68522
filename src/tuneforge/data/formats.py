"""Parse JSONL dataset lines of every documented format into :class:`Conversation`.

Formats (SPEC §2.7), detected per line by their keys, one format per file:

- ``prompt_completion``: ``{"prompt": str, "completion": str}``
- ``chat``: ``{"messages": [{"role": system|user|assistant, "content": str | [parts]}]}``, parts being
  ``{"type": "text", "text"}`` and ``{"type": "image_url", "image_url": {"url", "detail"}}``; OpenAI's per-message
  ``weight`` and tool use (``tools``, assistant ``tool_calls``, ``tool`` messages: data/tools.py)
- ``generate_content``: ``{"systemInstruction"?: {"parts": [{"text"}]}, "contents": [{"role", "parts": [...]}]}``,
  roles user and model/assistant in any case, parts ``{"text"}`` and ``{"file_data": {"mime_type", "file_uri"}}``
- ``text_pair`` (code generation and distillation, SPEC §3.2, §5.2): ``{"input_text": str, "output_text": str}``
- ``codechat`` (SPEC §3.2): ``{"context"?: str, "messages": [{"author": user|assistant, "content": str}]}``; the
  context is the system prompt (it overrides the pipeline's ``default_context``)

Problems are collected into a :class:`Report` (never raised), worded as in ``EXAMPLES/invalid_examples.md``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Iterable
from typing import Any

from tuneforge.data import tools
from tuneforge.data.conversation import Conversation, ImagePart, Message, Part, TextPart, ToolCall
from tuneforge.data.images import IMAGE_MIME_TYPES, sniff
from tuneforge.data.report import Report, json_type
from tuneforge.errors import InvalidArgument
from tuneforge.wire.base import hostile_value

FORMAT_NAMES = {
    "prompt_completion": "prompt/completion",
    "chat": "chat messages",
    "generate_content": "GenerateContent",
    "text_pair": "input_text/output_text",
    "codechat": "code chat",
}
IMAGE_DETAILS = ("low", "high", "auto")
IMAGE_MODEL = "meta/llama4@llama-4-scout-17b-16e-instruct"
_GC_ROLES = {"user": "user", "model": "assistant", "assistant": "assistant"}


def _json_problem(text: str, exc: json.JSONDecodeError) -> tuple[str | None, str]:
    """(path, message) for a JSON syntax error, with the fix for the usual mistakes."""
    stripped = text.rstrip()
    before = text[: exc.pos].rstrip()
    at = text[exc.pos] if exc.pos < len(text) else ""
    if exc.pos >= len(stripped) and stripped.startswith(("{", "[")):
        return None, (
            "invalid JSON (object not closed at end of line); each example must be a single JSON object on ONE "
            "line; join the example's lines"
        )
    column = f"column {exc.colno}"
    if before.endswith(",") and at in "]}":
        return column, f"invalid JSON (expecting a value after ','); remove the trailing comma before '{at}'"
    if at == "'" or "double quotes" in exc.msg:
        return column, (
            'invalid JSON (property names and strings need double quotes); write {"prompt": "...", "completion": "..."}'
        )
    return column, f"invalid JSON ({exc.msg[0].lower() + exc.msg[1:]})"


def _author_keyed(messages: Any) -> bool:
    return isinstance(messages, list) and any(
        isinstance(m, dict) and "author" in m and "role" not in m for m in messages
    )


def detect_format(obj: dict) -> str | None:
    if "messages" in obj:
        return "codechat" if _author_keyed(obj["messages"]) else "chat"
    if "input_text" in obj or "output_text" in obj:
        return "text_pair"
    if "contents" in obj:
        return "generate_content"
    if "prompt" in obj or "completion" in obj:
        return "prompt_completion"
    return None


class _Line:
    """Parsing context for one line: where problems go, and whether the model takes images."""

    def __init__(self, report: Report, line: int, text_only_model: str | None = None, image_error: str | None = None):
        self.report = report
        self.line = line
        self.failed = False
        self.text_only_model = text_only_model
        self.image_error = image_error  # why this kind of dataset takes no images (preference tuning)
        self.tools: tuple[dict, ...] = ()  # the functions a chat line offers (its "tools")

    def image_allowed(self, path: str) -> bool:
        if self.image_error:
            self.error(self.image_error, path)
            return False
        if self.text_only_model:
            self.error(
                f"image input, but {self.text_only_model} accepts text only; images are supported only by "
                f"{IMAGE_MODEL}",
                path,
            )
            return False
        return True

    def error(self, message: str, path: str | None = None) -> None:
        self.failed = True
        self.report.error(message, self.line, path)

    def warning(self, message: str, path: str | None = None) -> None:
        self.report.warning(message, self.line, path)

    def string(self, value: Any, path: str, *, what: str = "a string", empty_fix: str | None = None) -> str | None:
        if not isinstance(value, str):
            fix = f'; write "{value}"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            self.error(f"expected {what}, got {json_type(value)}{fix}", path)
            return None
        if not value.strip() and empty_fix:
            self.error(f"empty string; {empty_fix}", path)
            return None
        return value


# --- images -----------------------------------------------------------------------------------------------------


def _check_data_url(ctx: _Line, url: str, path: str) -> str | None:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        ctx.error("data URL must look like data:image/png;base64,<base64 bytes>", path)
        return None
    mime = header[len("data:") : -len(";base64")]
    if mime not in IMAGE_MIME_TYPES:
        ctx.error(f'"{mime}" is not supported; use {", ".join(IMAGE_MIME_TYPES[:-1])} or {IMAGE_MIME_TYPES[-1]}', path)
        return None
    alphabet = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    bad = next((i for i, ch in enumerate(payload.encode()) if ch not in alphabet), None)
    try:
        if bad is not None:
            raise binascii.Error
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        pos = f" (bad character at position {bad})" if bad is not None else ""
        ctx.error(f"payload is not valid base64{pos}", path)
        return None
    if sniff(data) != mime:
        short = mime.split("/")[1].upper().replace("JPEG", "JPEG")
        ctx.error(f"data URL declares {mime} but the decoded bytes are not a {short} image; re-encode the file", path)
        return None
    return mime


def _image_url_part(ctx: _Line, spec: Any, path: str) -> ImagePart | None:
    if not isinstance(spec, dict):
        ctx.error(f'expected an object like {{"url": "gs://…"}}, got {json_type(spec)}', path)
        return None
    detail = spec.get("detail", "auto")
    if detail not in IMAGE_DETAILS:
        ctx.error(f'"{detail}" is not one of {", ".join(IMAGE_DETAILS)}', f"{path}.detail")
    url = spec.get("url")
    if url is None:
        ctx.error("required (gs://… or data:image/…;base64,…)", f"{path}.url")
        return None
    if ctx.string(url, f"{path}.url") is None:
        return None
    mime = None
    if url.startswith("data:"):
        mime = _check_data_url(ctx, url, f"{path}.url")
        if mime is None:
            return None
    elif not url.startswith("gs://"):
        ctx.error("image URL must be gs://bucket/path or data:image/…;base64,…", f"{path}.url")
        return None
    else:
        guessed = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
        mime = guessed.get(url.rsplit(".", 1)[-1].lower())
        if mime is None:
            ctx.error("image must be a .jpeg/.jpg, .png or .webp file", f"{path}.url")
            return None
    return ImagePart(uri=url, mime_type=mime, detail=detail if detail in IMAGE_DETAILS else "auto", path=f"{path}.url")


def _file_data_part(ctx: _Line, spec: Any, path: str) -> ImagePart | None:
    if not isinstance(spec, dict):
        ctx.error(
            f'expected an object like {{"mime_type": "image/png", "file_uri": "gs://…"}}, got {json_type(spec)}', path
        )
        return None
    mime = spec.get("mime_type", spec.get("mimeType"))
    uri = spec.get("file_uri", spec.get("fileUri"))
    ok = True
    if mime not in IMAGE_MIME_TYPES:
        ctx.error(f'"{mime}" is not supported; use image/jpeg, image/png or image/webp', f"{path}.mime_type")
        ok = False
    if not isinstance(uri, str) or not uri.startswith("gs://"):
        ctx.error("required: a gs://bucket/path URI of the image", f"{path}.file_uri")
        ok = False
    return ImagePart(uri=uri, mime_type=mime, path=f"{path}.file_uri") if ok and isinstance(uri, str) else None


def _inline_data_part(ctx: _Line, spec: Any, path: str) -> ImagePart | None:
    """``inline_data {mime_type, data}`` (base64 bytes): kept as the equivalent data: URL."""
    if not isinstance(spec, dict):
        ctx.error(
            f'expected an object like {{"mime_type": "image/png", "data": "<base64>"}}, got {json_type(spec)}', path
        )
        return None
    mime = spec.get("mime_type", spec.get("mimeType"))
    data = spec.get("data")
    if mime not in IMAGE_MIME_TYPES:
        ctx.error(f'"{mime}" is not supported; use image/jpeg, image/png or image/webp', f"{path}.mime_type")
        return None
    if not isinstance(data, str) or not data:
        ctx.error("required: the image's bytes in base64", f"{path}.data")
        return None
    # proto-JSON bytes may be URL-safe base64 and unpadded (google-genai sends them so): made standard here
    data = data.replace("-", "+").replace("_", "/")
    url = f"data:{mime};base64,{data}{'=' * (-len(data) % 4)}"
    if _check_data_url(ctx, url, f"{path}.data") is None:
        return None
    return ImagePart(uri=url, mime_type=mime, path=f"{path}.data")


# --- per-format parsers ------------------------------------------------------------------------------------------


def _parse_prompt_completion(ctx: _Line, obj: dict) -> list[tuple[Message, str]] | None:
    missing = [k for k in ("prompt", "completion") if k not in obj]
    for key in missing:
        fix = "add the expected output text" if key == "completion" else "add the input text"
        ctx.error(f'prompt/completion example is missing "{key}"; {fix}')
    if missing:
        return None
    prompt = ctx.string(obj["prompt"], "prompt", empty_fix="give the input text or drop the line")
    completion = ctx.string(
        obj["completion"],
        "completion",
        empty_fix="the example has nothing to learn; give the expected text or drop the line",
    )
    for key in obj.keys() - {"prompt", "completion"}:
        ctx.warning(f'unknown key "{key}" is ignored (prompt/completion lines have "prompt" and "completion")', key)
    if prompt is None or completion is None:
        return None
    return [
        (Message("user", (TextPart(prompt),)), "prompt"),
        (Message("assistant", (TextPart(completion),)), "completion"),
    ]


def _chat_content(ctx: _Line, content: Any, path: str) -> tuple[Part, ...] | None:
    if isinstance(content, str):
        return (TextPart(content),)
    if not isinstance(content, list):
        fix = f'; write "{content}"' if isinstance(content, (int, float)) and not isinstance(content, bool) else ""
        ctx.error(f"expected a string or a list of parts, got {json_type(content)}{fix}", path)
        return None
    parts: list[Part] = []
    for j, part in enumerate(content):
        ppath = f"{path}[{j}]"
        if not isinstance(part, dict):
            ctx.error(f'expected a part like {{"type": "text", "text": "..."}}, got {json_type(part)}', ppath)
            continue
        kind = part.get("type")
        if kind == "text":
            text = ctx.string(part.get("text"), f"{ppath}.text")
            if text is not None:
                parts.append(TextPart(text))
        elif kind == "image_url":
            image = ctx.image_allowed(ppath) and _image_url_part(ctx, part.get("image_url"), f"{ppath}.image_url")
            if image:
                parts.append(image)
        else:
            ctx.error(f'part type {kind!r} is not supported; use "text" or "image_url"', f"{ppath}.type")
    return tuple(parts)


def _message_objects(ctx: _Line, messages: Any, key: str, like: str) -> list[tuple[str, dict]] | None:
    """(path, object) for each object in a message list; a non-list (None) or a non-object item is reported."""
    if not isinstance(messages, list):
        ctx.error(f"expected a list like [{like}], got {json_type(messages)}", key)
        return None
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, dict):
            out.append((f"{key}[{i}]", m))
        else:
            ctx.error(f"expected an object like {like}, got {json_type(m)}", f"{key}[{i}]")
    return out


def _bad_role(ctx: _Line, role: Any, allowed: str, path: str) -> None:
    shown = "missing" if role is None else f'"{role}" is not a valid role'
    ctx.error(f"{shown}; use {allowed}", f"{path}.role")


def _parse_chat(ctx: _Line, obj: dict, key: str = "messages") -> list[tuple[Message, str]] | None:
    """``obj["messages"]`` as messages; ``key`` is their JSON path in the line (``input.messages`` in a DPO line).
    Tool use (data/tools.py): the line's ``tools`` go to ``ctx.tools``, assistant ``tool_calls`` and ``tool``
    messages become the messages' calls and results."""
    items = _message_objects(ctx, obj["messages"], key, '{"role": "user", "content": "..."}')
    if items is None:
        return None
    ctx.tools = tools.parse_tools(ctx, obj)
    out: list[tuple[Message, str]] = []
    for index, (path, m) in enumerate(items):
        if "author" in m and "role" not in m:
            ctx.error('chat messages use "role" (system, user or assistant), not "author"; rename the key', path)
            continue
        message = _chat_message(ctx, m, path, index)
        if message is not None:
            out.append((message, path))
    return out


def _chat_message(ctx: _Line, m: dict, path: str, index: int) -> Message | None:
    role = m.get("role")
    if role not in ("system", "user", "assistant", "tool", "function"):
        _bad_role(ctx, role, "one of system, user, assistant", path)
        return None
    calls: tuple[ToolCall, ...] = ()
    if "tool_calls" in m or "function_call" in m:
        if role != "assistant":
            field = "tool_calls" if "tool_calls" in m else "function_call"
            ctx.error(f"only assistant messages make tool calls; remove {field}", f"{path}.{field}")
            return None
        parsed = tools.parse_calls(ctx, m, path, index)
        if parsed is None:
            return None
        calls = parsed
    parts: tuple[Part, ...] | None = ()
    if m.get("content") is not None or not calls:  # a message of calls alone may have no content
        if "content" not in m:
            ctx.error("missing; give the message text", f"{path}.content")
            return None
        parts = _chat_content(ctx, m["content"], f"{path}.content")
    trained = _weight(ctx, m, role, path)
    if parts is None or trained is None:
        return None
    if role in ("tool", "function"):
        if any(isinstance(p, ImagePart) for p in parts):
            ctx.error("a tool's result is text; remove the image parts", f"{path}.content")
            return None
        return tools.tool_message(ctx, m, path, "".join(p.text for p in parts if isinstance(p, TextPart)))
    return Message(role, parts, trained, tool_calls=calls)


def _weight(ctx: _Line, message: dict, role: str, path: str) -> bool | None:
    """OpenAI's per-message ``weight``: 1 (the default) trains an assistant message, 0 keeps it as context only."""
    if "weight" not in message:
        return True
    weight = message["weight"]
    if isinstance(weight, bool) or weight not in (0, 1):
        ctx.error(f"weight must be 0 or 1 (got {json.dumps(weight)}); 0 leaves the message untrained", f"{path}.weight")
        return None
    if role != "assistant":
        ctx.error("weight applies to assistant messages only; remove it", f"{path}.weight")
        return None
    return weight == 1


def _gc_parts(ctx: _Line, parts: Any, path: str) -> tuple[Part, ...] | None:
    if not isinstance(parts, list):
        ctx.error(f'expected a list like [{{"text": "..."}}], got {json_type(parts)}', path)
        return None
    out: list[Part] = []
    for j, part in enumerate(parts):
        ppath = f"{path}[{j}]"
        if not isinstance(part, dict):
            ctx.error(f'expected a part like {{"text": "..."}}, got {json_type(part)}', ppath)
        elif "text" in part:
            text = ctx.string(part["text"], f"{ppath}.text")
            if text is not None:
                out.append(TextPart(text))
        elif "file_data" in part or "fileData" in part:
            key = "file_data" if "file_data" in part else "fileData"
            image = ctx.image_allowed(ppath) and _file_data_part(ctx, part[key], f"{ppath}.{key}")
            if image:
                out.append(image)
        elif "inline_data" in part or "inlineData" in part:
            key = "inline_data" if "inline_data" in part else "inlineData"
            image = ctx.image_allowed(ppath) and _inline_data_part(ctx, part[key], f"{ppath}.{key}")
            if image:
                out.append(image)
        else:
            keys = ", ".join(part) or "none"
            ctx.error(f'part has no "text", "file_data" or "inline_data" (keys: {keys})', ppath)
    return tuple(out)


def _parse_generate_content(ctx: _Line, obj: dict) -> list[tuple[Message, str]] | None:
    out: list[tuple[Message, str]] = []
    sys_key = "systemInstruction" if "systemInstruction" in obj else "system_instruction"
    if sys_key in obj:
        si = obj[sys_key]
        if not isinstance(si, dict) or "parts" not in si:
            ctx.error('expected {"parts": [{"text": "..."}]}', sys_key)
        else:
            parts = _gc_parts(ctx, si["parts"], f"{sys_key}.parts")
            if parts is not None:
                if any(isinstance(p, ImagePart) for p in parts):
                    ctx.error("system instructions hold text only", f"{sys_key}.parts")
                out.append((Message("system", parts), sys_key))
    items = _message_objects(ctx, obj["contents"], "contents", '{"role": "user", "parts": [...]}')
    if items is None:
        return None
    for path, c in items:
        raw_role = c.get("role")
        role = _GC_ROLES.get(raw_role.lower()) if isinstance(raw_role, str) else None
        if isinstance(raw_role, str) and raw_role.lower() == "system":
            ctx.error('"system" is not allowed in contents; put system text in systemInstruction.parts', f"{path}.role")
            continue
        if role is None:
            _bad_role(ctx, raw_role, "user or model (assistant)", path)
            continue
        if "parts" not in c:
            ctx.error('missing; give [{"text": "..."}]', f"{path}.parts")
            continue
        parts = _gc_parts(ctx, c["parts"], f"{path}.parts")
        if parts is not None:
            out.append((Message(role, parts), path))  # type: ignore[arg-type]
    return out


def text_pair_fields(
    ctx: _Line, obj: dict, *, require_output: bool = True, what: str = "code generation"
) -> tuple[str, str | None] | None:
    """(input_text, output_text or None) of a code-generation or distillation line."""
    if "input_text" not in obj:
        ctx.error(
            f'{what} example is missing "input_text" (the prompt); every line needs input_text'
            + (" and output_text" if require_output else "")
        )
        return None
    text = ctx.string(obj["input_text"], "input_text", empty_fix="give the prompt or drop the line")
    output = None
    if "output_text" in obj:
        fix = (
            "omit the field for an unlabeled example (the teacher will label it) or give the label"
            if not require_output
            else "the example has nothing to learn; give the expected output or drop the line"
        )
        output = ctx.string(obj["output_text"], "output_text", empty_fix=fix)
    elif require_output:
        ctx.error(f'{what} example is missing "output_text" (the expected output); add it')
    for key in obj.keys() - {"input_text", "output_text"}:
        ctx.warning(f'unknown key "{key}" is ignored (lines have "input_text" and "output_text")', key)
    return None if text is None or ctx.failed else (text, output)


def _parse_text_pair(ctx: _Line, obj: dict) -> list[tuple[Message, str]] | None:
    fields = text_pair_fields(ctx, obj)
    if fields is None:
        return None
    return [
        (Message("user", (TextPart(fields[0]),)), "input_text"),
        (Message("assistant", (TextPart(fields[1] or ""),)), "output_text"),
    ]


def _parse_codechat(ctx: _Line, obj: dict) -> list[tuple[Message, str]] | None:
    out: list[tuple[Message, str]] = []
    if "context" in obj:
        context = ctx.string(obj["context"], "context")
        if context is not None and context.strip():
            out.append((Message("system", (TextPart(context),)), "context"))
    items = _message_objects(ctx, obj["messages"], "messages", '{"author": "user", "content": "..."}')
    if items is None:
        return None
    for path, m in items:
        if "role" in m and "author" not in m:
            ctx.error('code chat messages use "author" (user or assistant), not "role"; rename the key', path)
            continue
        author = m.get("author")
        if author not in ("user", "assistant"):
            shown = "missing" if author is None else f'"{author}" is not valid'
            ctx.error(f'{shown}; use user or assistant, and put instructions in "context"', f"{path}.author")
            continue
        content = ctx.string(m.get("content"), f"{path}.content") if "content" in m else None
        if "content" not in m:
            ctx.error("missing; give the message text", f"{path}.content")
        if content is not None:
            out.append((Message(author, (TextPart(content),)), path))
    for key in obj.keys() - {"context", "messages"}:
        ctx.warning(f'unknown key "{key}" is ignored (code chat lines have "context" and "messages")', key)
    return out


_PARSERS = {
    "prompt_completion": _parse_prompt_completion,
    "chat": _parse_chat,
    "generate_content": _parse_generate_content,
    "text_pair": _parse_text_pair,
    "codechat": _parse_codechat,
}


def alternates(ctx: _Line, turns: list[tuple[Message, str]], reply: str = "assistant") -> bool:
    """The first turn is the user's and turns alternate (``reply``: what the message calls the other side); tool
    results stand on the user's side, several in a row answering one turn's calls. A broken rule is reported and
    False returned."""
    if turns[0][0].role != "user":
        ctx.error("the first turn must be from the user; add the user's message before it", turns[0][1])
        return False
    for (prev, _), (m, path) in itertools.pairwise(turns):
        if m.role == prev.role == "tool" or (m.role == "assistant") != (prev.role == "assistant"):
            continue
        if m.role == prev.role:
            ctx.error(f"two {m.role} turns in a row; turns must alternate user and {reply} (merge them)", path)
        else:
            ctx.error(f"a {m.role} message right after a {prev.role} message; the {reply} replies in between", path)
        return False
    return True


def _check_turns(ctx: _Line, items: list[tuple[Message, str]], key: str) -> list[Message] | None:
    """Conversation-level rules (SPEC §8 D4): one leading system turn, alternating turns, an assistant target."""
    for i, (m, path) in enumerate(items):
        if m.role == "system" and i > 0:
            ctx.error(f"a system message is allowed only as the first message; move it to {key}[0]", path)
        if m.images and m.role != "user":
            ctx.error(
                f"images go in user turns; this {m.role} turn has {len(m.images)}: move them to a user turn", path
            )
    if ctx.failed:
        return None
    turns = [(m, path) for m, path in items if m.role != "system"]
    if not any(m.role == "assistant" for m, _ in turns):
        ctx.error("no assistant message, so there is no target to train on; add the expected assistant reply", key)
        return None
    if not tools.check_tool_turns(ctx, turns, ctx.tools) or not alternates(ctx, turns):
        return None
    for m, path in turns:
        if m.role == "assistant" and not m.text.strip() and not m.images and not m.tool_calls:
            ctx.error(
                "empty assistant message; the example has nothing to learn; give the reply or drop the line", path
            )
            return None
    messages = [m for m, _ in items]
    if turns[-1][0].role != "assistant":
        ctx.warning(f"the last {turns[-1][0].role} message has no assistant reply and is not trained on", turns[-1][1])
        while messages[-1].role != "assistant":
            messages.pop()
    return messages


def _unreadable(exc: ValueError | RecursionError) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]


def json_objects(
    lines: Iterable[str], report: Report, text_only_model: str | None = None, image_error: str | None = None
):
    """(line context, object) for each line holding one JSON object; blank lines, bad JSON and other values are
    reported, every dataset format alike."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            report.warning("blank line skipped", number)
            continue
        ctx = _Line(report, number, text_only_model, image_error)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            path, message = _json_problem(text, exc)
            ctx.error(message, path)
            continue
        except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting Python cannot read
            ctx.error(f"the line cannot be read ({_unreadable(exc)}); write examples as the documented formats do")
            continue
        problem = hostile_value(obj)
        if problem:
            ctx.error(f"{problem} (the line is not read)")
            continue
        if not isinstance(obj, dict):
            ctx.error(f"expected one JSON object per line, got {json_type(obj)}; put each example on its own line")
            continue
        yield ctx, obj


def parse_lines(
    lines: Iterable[str],
    report: Report,
    text_only_model: str | None = None,
    *,
    expected: str | None = None,
    default_system: str | None = None,
) -> list[Conversation]:
    """Parse a JSONL file's lines; every problem goes into ``report``. Returns the lines that parsed cleanly.

    ``text_only_model``: the id of the model being tuned when it takes no images (images are then errors).
    ``expected``: the one format the caller takes (pipelines: ``text_pair`` or ``codechat``); every line is read as
    that format, so a line in another format gets that format's own error (e.g. "use author, not role").
    ``default_system``: the system prompt of conversations that bring none (code chat's ``default_context``).
    """
    conversations: list[Conversation] = []
    file_format: tuple[str, int] | None = None
    for ctx, obj in json_objects(lines, report, text_only_model):
        number = ctx.line
        if "completions" in obj and expected is None:
            ctx.error(
                'a preference tuning line (it has "completions"): supervised tuning trains on contents ending with a '
                "model turn; tune this file with preference tuning (preferenceOptimizationSpec, method "
                "PREFERENCE_TUNING), or write the preferred completion as the last model turn of contents"
            )
            continue
        fmt = expected or detect_format(obj)
        if fmt is None:
            keys = ", ".join(obj) or "none"
            ctx.error(
                f'no supported format matches the keys [{keys}]; use {{"prompt","completion"}}, '
                '{"messages":[...]}, {"contents":[...]} or {"input_text","output_text"} (SPEC §2.7, §3.2)'
            )
            continue
        if file_format is None:
            file_format = (fmt, number)
        elif fmt != file_format[0]:
            ctx.error(
                f"{FORMAT_NAMES[fmt]} format, but line {file_format[1]} set this file's format to "
                f"{FORMAT_NAMES[file_format[0]]}; use one format per file"
            )
            continue
        items = _PARSERS[fmt](ctx, obj)
        if items is None or ctx.failed:
            continue
        messages = _check_turns(ctx, items, "contents" if fmt == "generate_content" else "messages")
        if messages is None:
            continue
        if default_system and messages[0].role != "system":
            messages = [Message("system", (TextPart(default_system),)), *messages]
        conversations.append(Conversation(messages, line=number, tools=ctx.tools))
    if file_format is not None:
        report.info["format"] = file_format[0]
    return conversations


def parse_request(obj: dict, fmt: str, text_only_model: str | None = None) -> Conversation:
    """A serving request's conversation (chat ``messages`` or generateContent ``contents``), parsed by the same code
    as training lines so the chat template sees the same messages. Raises InvalidArgument naming each bad field.

    Lenient where the documents are (SPEC §8 S3): ``parts`` may be one object instead of a list, roles in any case.
    """
    if fmt == "generate_content":
        obj = dict(obj)
        contents = obj.get("contents")
        if isinstance(contents, dict):
            contents = [contents]
        if isinstance(contents, list):
            obj["contents"] = [
                {**c, "parts": [c["parts"]]} if isinstance(c, dict) and isinstance(c.get("parts"), dict) else c
                for c in contents
            ]
        for key in ("systemInstruction", "system_instruction"):
            si = obj.get(key)
            if isinstance(si, dict) and isinstance(si.get("parts"), dict):
                obj[key] = {**si, "parts": [si["parts"]]}
            elif isinstance(si, str):
                obj[key] = {"parts": [{"text": si}]}
    key = "contents" if fmt == "generate_content" else "messages"
    report = Report()
    ctx = _Line(report, 0, text_only_model)
    items = _PARSERS[fmt](ctx, obj) if key in obj else None
    if key not in obj:
        ctx.error(f"missing; give the conversation as {key}", key)
    elif not ctx.failed and not [m for m, _ in items or [] if m.role != "system"]:
        ctx.error("empty; give at least one user message", key)
    if not ctx.failed and items is not None:
        for i, (m, path) in enumerate(items):
            if m.role == "system" and i > 0:
                ctx.error(f"a system message is allowed only first; move it to {key}[0]", path)
        turns = [(m, path) for m, path in items if m.role != "system"]
        rules_kept = turns and tools.check_tool_turns(ctx, turns, ctx.tools) and alternates(ctx, turns)
        if rules_kept and turns[-1][0].role == "assistant":
            last = turns[-1][1]
            ctx.error("the last turn must be from the user, or a tool's result (the message to answer)", last)
    if ctx.failed:
        problems = [f"{p.path}: {p.message}" if p.path else p.message for p in report.errors]
        raise InvalidArgument("; ".join(problems))
    return Conversation([m for m, _ in items or []], tools=ctx.tools)
