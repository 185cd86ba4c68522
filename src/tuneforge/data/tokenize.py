"""Conversation -> token ids and labels, through the model's chat template, with loss masks correct by construction.

The rule (DESIGN.md rule 4): every assistant turn is trained, each through its end-of-turn token (the EOS the model
must learn to emit); system and user text and the template's own markers are never trained.

How: the template renders the conversation to text. For assistant turn *i*, rendering the messages before it with
the generation prompt gives the text up to where the reply starts; rendering through it gives the text up to where
it ends. The trained span is the reply plus the end-of-turn token. The text is cut at span boundaries and each piece
is tokenised on its own, so a prompt is tokenised exactly as it will be at inference, and no token straddles a
trained and an untrained piece.

Tools: a conversation's ``tools`` go to the template, and its calls and tool messages are rendered by it (an
assistant turn of calls is trained as any reply is; tool results, like user turns, never are). A template that leaves
them out is refused for that example rather than trained on a conversation it cannot show the model.

Images: an image-text model's template renders each image as its placeholder (Llama 4's ``<|image|>``); the
processor expands each one into that image's tokens (tile and patch markers), inserted where the placeholder was.
Image tokens are prompt tokens, never trained, and truncation never cuts through them: an example whose images do
not fit is marked (``images_cut``) for the caller to skip or refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jinja2 import TemplateError

from tuneforge.data.conversation import Conversation, ImagePart
from tuneforge.errors import InvalidArgument

IGNORE_INDEX = -100
TOOL_TEMPLATES = "Llama 3.1 and later, Qwen 3"  # families whose own templates render tool use


class ExampleRefused(InvalidArgument):
    """The chat template cannot render this one example as it is (its tool use, or the template's own check):
    reported at the example's line, while the other examples go on being checked."""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where not trained; same length as input_ids (the model shifts)
    truncated: bool = False
    index: int = 0  # position in the dataset (0-based), for stats and reports
    line: int = 0
    num_messages: int = 0
    chars: int = 0
    meta: dict = field(default_factory=dict)
    task: int = 0  # 0: the answer (every run); 1: a rationale (distillation step-by-step's second task)
    images: tuple[ImagePart, ...] = ()  # in the order of their tokens; their pixels are made when batched

    @property
    def num_target_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


class ChatEncoder:
    """Encodes conversations for one tokenizer + chat template; the same object serves training and inference."""

    def __init__(
        self,
        tokenizer,
        end_of_turn: str | None = None,
        chat_template: str | None = None,
        *,
        processor=None,
        load_images: Callable[[Sequence[ImagePart]], list] | None = None,
    ):
        self.tokenizer = tokenizer
        self.processor = processor  # image-text models: turns images into tokens and pixels
        self.load_images = load_images  # ImageParts -> opened images (data.images.open_images with settings)
        self.chat_template = chat_template or tokenizer.chat_template
        if not self.chat_template:
            raise InvalidArgument("the tokenizer has no chat template and the catalog family names none")
        self.end_of_turn = end_of_turn or tokenizer.eos_token
        if self.end_of_turn is None:
            raise InvalidArgument("the tokenizer has no EOS token; set end_of_turn for the model family")

    def render(self, messages: list[dict], add_generation_prompt: bool = False, tools: Sequence[dict] = ()) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages,
                tools=list(tools) or None,
                chat_template=self.chat_template,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
            )
        except TemplateError as exc:  # the template's own raise_exception (e.g. "roles must alternate")
            raise ExampleRefused(f"the model's chat template refused this conversation: {exc}") from None

    def render_conversation(self, conversation: Conversation, add_generation_prompt: bool = False) -> str:
        """The whole conversation as the template renders it, its tool use checked to be there."""
        text = self.render(conversation.template_messages(), add_generation_prompt, conversation.tools)
        if conversation.uses_tools:
            _check_tools_rendered(conversation, text)
        return text

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    # -- images -------------------------------------------------------------------------------------------------
    @property
    def takes_images(self) -> bool:
        return self.processor is not None

    @property
    def image_placeholder(self) -> str:
        return getattr(self.processor, "fake_image_token", None) or self.processor.image_token

    def _opened(self, parts: Sequence[ImagePart], images: list | None) -> list:
        if images is not None:
            return images
        if self.load_images is None:
            raise InvalidArgument("this encoder cannot read images (no image loader)")
        return self.load_images(parts)

    def image_ids(self, image) -> list[int]:
        """The tokens one image becomes (the processor's expansion of its placeholder)."""
        out = self.processor(text=self.image_placeholder, images=[image], add_special_tokens=False)
        return list(out["input_ids"][0])

    def image_inputs(self, parts: Sequence[ImagePart], images: list | None = None) -> dict:
        """The model's image tensors (``pixel_values``, and what else the processor makes) for ``parts``, in order."""
        opened = self._opened(parts, images)
        out = self.processor(
            text=[self.image_placeholder * len(opened)], images=opened, return_tensors="pt", add_special_tokens=False
        )
        return {k: v for k, v in out.items() if k not in ("input_ids", "attention_mask", "token_type_ids")}

    def _text_ids(self, text: str, images: list, spans: list[tuple[int, int]], offset: int) -> list[int]:
        """Token ids of untrained text, each image placeholder replaced by its image's tokens (spans recorded)."""
        if not self.takes_images:
            return self._ids(text)
        chunks = text.split(self.image_placeholder)
        ids = self._ids(chunks[0])
        for chunk in chunks[1:]:
            if len(spans) >= len(images):
                raise InvalidArgument("the chat template rendered more image placeholders than the example has images")
            image = self.image_ids(images[len(spans)])
            spans.append((offset + len(ids), offset + len(ids) + len(image)))
            ids.extend(image)
            ids.extend(self._ids(chunk))
        return ids

    def pieces(self, conversation: Conversation, *, last_turn_only: bool = False) -> list[tuple[str, bool]]:
        """The rendered conversation cut into (text, trained) pieces; ``last_turn_only``: only the final assistant
        turn is trained (a preference pair's completion; earlier model turns are context)."""
        messages, tools = conversation.template_messages(), conversation.tools
        full = self.render_conversation(conversation)
        pieces: list[tuple[str, bool]] = []
        cursor = 0
        for i, m in enumerate(messages):
            if m["role"] != "assistant" or (last_turn_only and i < len(messages) - 1):
                continue
            if not conversation.messages[i].trained:  # weight 0: a reply shown as context, not learned
                continue
            before = self.render(messages[:i], add_generation_prompt=True, tools=tools)
            through = self.render(messages[: i + 1], tools=tools)
            if not (through.startswith(before) and full.startswith(through)):
                raise InvalidArgument(
                    "the chat template does not render conversations incrementally (a prefix of the conversation "
                    "renders differently inside the whole), so assistant turns cannot be masked exactly; use a "
                    "template without history rewriting"
                )
            reply = through[len(before) :]
            end = reply.find(self.end_of_turn)
            if end < 0:
                raise InvalidArgument(
                    f"the chat template does not end assistant turns with {self.end_of_turn!r}; the model would "
                    "never learn to stop. Fix the template or the family's end_of_turn in the catalog"
                )
            start, stop = len(before), len(before) + end + len(self.end_of_turn)
            pieces.append((full[cursor:start], False))
            pieces.append((full[start:stop], True))
            cursor = stop
        pieces.append((full[cursor:], False))
        return [(text, trained) for text, trained in pieces if text]

    def encode(
        self,
        conversation: Conversation,
        max_length: int | None = None,
        index: int = 0,
        *,
        last_turn_only: bool = False,
        images: list | None = None,
    ) -> Encoded:
        """``images``: the conversation's images already opened (else the encoder's loader opens them)."""
        parts = conversation.images
        if parts and not self.takes_images:
            raise InvalidArgument("the model takes text only; remove the image parts")
        opened = self._opened(parts, images) if parts else []
        input_ids: list[int] = []
        labels: list[int] = []
        spans: list[tuple[int, int]] = []
        for text, trained in self.pieces(conversation, last_turn_only=last_turn_only):
            ids = self._ids(text) if trained else self._text_ids(text, opened, spans, len(input_ids))
            input_ids.extend(ids)
            labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))
        if len(spans) != len(parts):
            raise InvalidArgument(
                f"the chat template placed {len(spans)} of the example's {len(parts)} images; use a template that "
                "renders image parts"
            )
        truncated = max_length is not None and len(input_ids) > max_length
        full_length = len(input_ids)
        images_cut = truncated and bool(spans) and spans[-1][1] > max_length  # type: ignore[operator]
        if truncated:  # from the right (SPEC §8 M4)
            input_ids, labels = input_ids[:max_length], labels[:max_length]
        return Encoded(
            input_ids=input_ids,
            labels=labels,
            truncated=truncated,
            index=index,
            line=conversation.line,
            num_messages=len(conversation.messages),
            chars=sum(len(m.text) for m in conversation.messages),
            meta={"full_length": full_length, "images_cut": images_cut, "image_tokens": sum(b - a for a, b in spans)},
            images=tuple(parts),
        )

    def encode_prompt(self, conversation: Conversation, images: list | None = None) -> list[int]:
        """Token ids for generation: the conversation so far plus the generation prompt (as at training)."""
        text = self.render_conversation(conversation, add_generation_prompt=True)
        parts = conversation.images
        if not parts:
            return self._ids(text)
        if not self.takes_images:
            raise InvalidArgument("the model takes text only; remove the image parts")
        return self._text_ids(text, self._opened(parts, images), [], 0)


def _check_tools_rendered(conversation: Conversation, text: str) -> None:
    """Every tool, call and tool result of ``conversation`` shows in ``text``, or the template does not render tool
    use (Gemma 3's has no tools): training on it would teach calls the model never saw offered."""
    missing = [f"the tool {t['function']['name']!r}" for t in conversation.tools if t["function"]["name"] not in text]
    for m in conversation.messages:
        missing += [f"the call of {c.name!r}" for c in m.tool_calls if c.name not in text]
        if m.role == "tool" and m.text not in text:
            missing.append("a tool message's result")
    if missing:
        raise ExampleRefused(
            f"this model's chat template does not render tool use ({missing[0]} is missing from the rendered "
            f"conversation); tune tool use on a model whose template renders tools, tool_calls and tool messages "
            f"({TOOL_TEMPLATES}), or remove them from the data"
        )
