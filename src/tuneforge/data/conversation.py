"""The canonical conversation: every dataset format parses into this, and nothing downstream sees the format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image, by reference (``gs://…``) or inline (``data:image/png;base64,…``)."""

    uri: str
    mime_type: str | None = None
    detail: str = "auto"


Part = Union[TextPart, ImagePart]


@dataclass(frozen=True)
class Message:
    role: Role
    parts: tuple[Part, ...]

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

    @property
    def has_image(self) -> bool:
        return any(m.images for m in self.messages)

    def template_messages(self) -> list[dict]:
        """The shape chat templates take: ``[{"role": ..., "content": ...}]``."""
        return [{"role": m.role, "content": m.text} for m in self.messages]

    @classmethod
    def from_pairs(cls, *pairs: tuple[str, str], line: int = 0) -> "Conversation":
        return cls([Message(role, (TextPart(text),)) for role, text in pairs], line=line)  # type: ignore[arg-type]
