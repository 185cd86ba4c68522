"""The canonical conversation: every dataset format parses into this, and nothing downstream sees the format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image, by reference (``gs://…``) or inline (``data:image/png;base64,…``)."""

    uri: str
    mime_type: str | None = None
    detail: str = "auto"
    path: str = field(default="", compare=False)  # its JSON path in the line or request, for reports


Part = Union[TextPart, ImagePart]


@dataclass(frozen=True)
class ToolCall:
    """A function call the assistant makes: its id (which the tool message answering it names), the function's name
    and its arguments (a JSON object)."""

    id: str
    name: str
    arguments: dict
    path: str = field(default="", compare=False)  # its JSON path in the line, for reports

    def template(self) -> dict:
        """The shape chat templates take (Hugging Face's): arguments as an object, not OpenAI's JSON string."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Message:
    role: Role
    parts: tuple[Part, ...]
    trained: bool = True  # an assistant turn's loss counts (OpenAI's per-message "weight": 0 makes it context)
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn's function calls (trained as its reply is)
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None  # a tool message: the function that answered

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.parts if isinstance(p, ImagePart)]


@dataclass
class Conversation:
    messages: list[Message]
    line: int = 0  # 1-based line of the source file, for reports
    meta: dict = field(default_factory=dict)
    tools: tuple[dict, ...] = ()  # the functions the assistant may call: {"type": "function", "function": {...}}

    @property
    def uses_tools(self) -> bool:
        return bool(self.tools) or any(m.tool_calls or m.role == "tool" for m in self.messages)

    @property
    def has_image(self) -> bool:
        return any(m.images for m in self.messages)

    @property
    def images(self) -> list[ImagePart]:
        """Every image, in the order its tokens appear in the rendered conversation."""
        return [image for m in self.messages for image in m.images]

    def template_messages(self) -> list[dict]:
        """The shape chat templates take: ``[{"role": ..., "content": ...}]``; a message with images has a list of
        parts (``{"type": "image"}`` where each image goes, as image-text templates take them); an assistant turn's
        calls are its ``tool_calls``, a tool message names the call it answers (``tool_call_id``) and the function."""
        return [_template_message(m) for m in self.messages]

    @classmethod
    def from_pairs(cls, *pairs: tuple[str, str], line: int = 0) -> Conversation:
        return cls([Message(role, (TextPart(text),)) for role, text in pairs], line=line)  # type: ignore[arg-type]


def _template_message(m: Message) -> dict:
    content: str | list[dict] = m.text
    if m.images:
        content = [{"type": "image"} if isinstance(p, ImagePart) else {"type": "text", "text": p.text} for p in m.parts]
    out: dict = {"role": m.role, "content": content}
    if m.tool_calls:
        out["tool_calls"] = [call.template() for call in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


def apply_prompt_rules(conversation: Conversation, rules: dict | None) -> Conversation:
    """Shape a request the way the model's training data looked (``serving`` in its tuneforge_config.json): the
    default system prompt when the request brings none (code chat's ``default_context``), and the task prefix on
    user turns that carry none (a step-by-step distilled student answers ``predict: …`` with the label only)."""
    if not rules:
        return conversation
    messages = list(conversation.messages)
    prefix, known = rules.get("input_prefix"), tuple(rules.get("task_prefixes") or ())
    if prefix:
        messages = [
            Message(m.role, (TextPart(prefix + m.text),))
            if m.role == "user" and not m.images and not m.text.startswith(known or (prefix,))
            else m
            for m in messages
        ]
    if rules.get("default_system") and (not messages or messages[0].role != "system"):
        messages.insert(0, Message("system", (TextPart(rules["default_system"]),)))
    return Conversation(messages, line=conversation.line, meta=conversation.meta, tools=conversation.tools)
