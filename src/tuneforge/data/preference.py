"""Preference tuning datasets: parse, check and encode prompt + (preferred, dispreferred) completion pairs.

One line (Vertex's preference tuning format)::

    {"system_instruction"?: {"parts": [{"text"}]},
     "contents": [... GenerateContent turns, ending with a user turn],
     "completions": [{"score": 1, "completion": {"role": "model", "parts": [{"text"}]}},
                     {"score": 0, "completion": {"role": "model", "parts": [{"text"}]}}]}

or OpenAI's DPO format (its fine-tuning API's ``method.type = "dpo"``)::

    {"input": {"messages": [... chat messages, ending with a user message]},
     "preferred_output": [{"role": "assistant", "content": "..."}],
     "non_preferred_output": [{"role": "assistant", "content": "..."}]}

Text only. Exactly two completions, one preferred (score 1) and one dispreferred (score 0). Each completion is
encoded after the prompt as the conversation's last model turn, trained as SFT trains a reply (through its
end-of-turn token); the prompt, earlier model turns included, is never trained. Every problem goes into a
:class:`Report` with its line, JSON path and fix, as for supervised datasets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tuneforge.data import tools
from tuneforge.data.conversation import Conversation, Message, TextPart
from tuneforge.data.formats import _gc_parts, _Line, _parse_chat, _parse_generate_content, alternates, json_objects
from tuneforge.data.report import Report
from tuneforge.data.tokenize import IGNORE_INDEX, ChatEncoder, Encoded, ExampleRefused
from tuneforge.data.validate import Limits, read_lines
from tuneforge.errors import InvalidArgument
from tuneforge.settings import Settings

NO_IMAGES = "preference tuning takes text only; remove the file_data part (images are not supported here)"
LINE_SHAPE = (
    '{"contents": [{"role": "user", "parts": [{"text": "..."}]}], "completions": [{"score": 1, "completion": '
    '{"role": "model", "parts": [{"text": "preferred"}]}}, {"score": 0, "completion": {"role": "model", "parts": '
    '[{"text": "dispreferred"}]}}]}'
)
_KEYS = {"contents", "completions", "system_instruction", "systemInstruction"}


@dataclass
class PreferencePair:
    """A prompt (system + turns ending with the user's) and its preferred and dispreferred completions."""

    prompt: Conversation
    chosen: str
    rejected: str
    line: int = 0

    def conversation(self, completion: str) -> Conversation:
        reply = Message("assistant", (TextPart(completion),))
        return Conversation([*self.prompt.messages, reply], line=self.line, tools=self.prompt.tools)


@dataclass
class EncodedPair:
    chosen: Encoded
    rejected: Encoded
    line: int = 0
    index: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Tokens before the completion (the template may put untrained tokens after it, such as a newline)."""
        return next(i for i, label in enumerate(self.chosen.labels) if label != IGNORE_INDEX)

    def __len__(self) -> int:  # both sequences, as packed
        return len(self.chosen) + len(self.rejected)


@dataclass
class PreparedPreferences:
    source: str
    pairs: list[PreferencePair]
    examples: list[EncodedPair]
    report: Report
    dropped: list[str] = field(default_factory=list)


# --- parsing -----------------------------------------------------------------------------------------------------


def _score(ctx: _Line, value: Any, path: str) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (0, 1):
        ctx.error(f"score must be 1 (preferred) or 0 (dispreferred), got {value!r}", path)
        return None
    return int(value)


def _completion_text(ctx: _Line, value: Any, path: str) -> str | None:
    if not isinstance(value, dict):
        ctx.error('expected {"role": "model", "parts": [{"text": "..."}]}', path)
        return None
    role = value.get("role", "model")
    if not isinstance(role, str) or role.lower() not in ("model", "assistant"):
        ctx.error(f'a completion is one model turn; role must be "model" (got {role!r})', f"{path}.role")
        return None
    if "parts" not in value:
        ctx.error('missing; give [{"text": "..."}]', f"{path}.parts")
        return None
    parts = _gc_parts(ctx, value["parts"], f"{path}.parts")
    if parts is None or ctx.failed:
        return None
    text = "".join(p.text for p in parts if isinstance(p, TextPart))
    if not text.strip():
        ctx.error("empty completion; give the response text", f"{path}.parts")
        return None
    return text


def _completions(ctx: _Line, value: Any) -> tuple[str, str] | None:
    """(preferred, dispreferred) text of a line's ``completions``."""
    if not isinstance(value, list):
        ctx.error("expected a list of two completions, one with score 1 and one with score 0", "completions")
        return None
    if len(value) != 2:
        ctx.error(
            f"has {len(value)} completion(s); give exactly two: one with score 1 (preferred) and one with score 0 "
            "(dispreferred)",
            "completions",
        )
        return None
    scored: list[tuple[int, str]] = []
    for i, item in enumerate(value):
        path = f"completions[{i}]"
        if not isinstance(item, dict) or "completion" not in item or "score" not in item:
            ctx.error('expected {"score": 1 or 0, "completion": {"role": "model", "parts": [...]}}', path)
            continue
        score = _score(ctx, item["score"], f"{path}.score")
        text = _completion_text(ctx, item["completion"], f"{path}.completion")
        if score is not None and text is not None:
            scored.append((score, text))
    if ctx.failed:
        return None
    if sorted(s for s, _ in scored) != [0, 1]:
        scores = " and ".join(str(s) for s, _ in scored)
        ctx.error(
            f"scores are {scores}; one completion must have score 1 (preferred) and the other score 0 (dispreferred)",
            "completions",
        )
        return None
    texts = dict(scored)
    if texts[1] == texts[0]:
        ctx.error(
            "the two completions are the same text, so there is nothing to prefer; make them differ", "completions"
        )
        return None
    return texts[1], texts[0]


def _prompt(ctx: _Line, obj: dict) -> list[Message] | None:
    """The prompt's messages: an optional system instruction and turns that alternate and end with the user's."""
    items = _parse_generate_content(ctx, obj)
    if items is None or ctx.failed:
        return None
    fix = "contents must end with a user turn (the message the completions answer); move the last model turn into "
    empty = "empty; give the prompt as at least one user turn"
    return _prompt_turns(ctx, items, "contents", "model", empty, fix + "completions or drop it")


def _prompt_turns(
    ctx: _Line, items: list[tuple[Message, str]], key: str, reply: str, empty: str, not_user: str
) -> list[Message] | None:
    """A prompt's rules, whichever format gave it: at least one turn besides the system's (``empty``: the message
    when there is none), turns that alternate (``reply`` names the other side), a user turn last (``not_user``)."""
    turns = [(m, path) for m, path in items if m.role != "system"]
    if not turns:
        ctx.error(empty, key)
        return None
    if not tools.check_tool_turns(ctx, turns, ctx.tools) or not alternates(ctx, turns, reply=reply):
        return None
    if turns[-1][0].role not in ("user", "tool"):  # the completions answer the user, or a tool's result
        ctx.error(not_user, turns[-1][1])
        return None
    return [m for m, _ in items]


def _openai_output(ctx: _Line, value: Any, key: str) -> str | None:
    """The text of a DPO line's ``preferred_output`` / ``non_preferred_output``: one assistant message."""
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        ctx.error('expected one assistant message: [{"role": "assistant", "content": "..."}]', key)
        return None
    message = value[0]
    if message.get("role") != "assistant":
        ctx.error(
            f'the output is the assistant\'s reply; role must be "assistant" (got {message.get("role")!r})',
            f"{key}[0].role",
        )
        return None
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        ctx.error("expected the reply's text (a non-empty string)", f"{key}[0].content")
        return None
    return content


def _openai_pair(ctx: _Line, obj: dict) -> PreferencePair | None:
    """A line of OpenAI's DPO format."""
    source = obj["input"]
    if not isinstance(source, dict) or "messages" not in source:
        ctx.error('expected {"messages": [{"role": "user", "content": "..."}]}', "input")
        return None
    items = _parse_chat(ctx, source, "input.messages")
    chosen = _openai_output(ctx, obj.get("preferred_output"), "preferred_output")
    rejected = _openai_output(ctx, obj.get("non_preferred_output"), "non_preferred_output")
    if items is None or chosen is None or rejected is None or ctx.failed:
        return None
    fix = "input.messages must end with a user message (the one the outputs answer)"
    messages = _prompt_turns(ctx, items, "input.messages", "assistant", "empty; give at least one user message", fix)
    if messages is None:
        return None
    if chosen == rejected:
        ctx.error(
            "the two outputs are the same text, so there is nothing to prefer; make them differ", "preferred_output"
        )
        return None
    return PreferencePair(Conversation(messages, line=ctx.line, tools=ctx.tools), chosen, rejected, line=ctx.line)


def parse_preference_lines(lines: Iterable[str], report: Report) -> list[PreferencePair]:
    """Parse a preference dataset's lines; every problem goes into ``report``. Returns the lines that parsed."""
    pairs: list[PreferencePair] = []
    for ctx, obj in json_objects(lines, report, image_error=NO_IMAGES):
        if "input" in obj and ("preferred_output" in obj or "non_preferred_output" in obj):
            pair = _openai_pair(ctx, obj)
            if pair is not None:
                pairs.append(pair)
            continue
        if "completions" not in obj:
            looks_sft = any(k in obj for k in ("messages", "prompt", "input_text")) or "contents" in obj
            hint = " (this looks like a supervised tuning line)" if looks_sft else ""
            ctx.error(f'missing "completions"{hint}; preference tuning lines look like {LINE_SHAPE}', "completions")
            continue
        if "contents" not in obj:
            ctx.error('missing; give the prompt as [{"role": "user", "parts": [{"text": "..."}]}]', "contents")
            continue
        for key in sorted(obj.keys() - _KEYS):
            ctx.warning(f'unknown key "{key}" is ignored (lines have system_instruction, contents, completions)', key)
        messages = _prompt(ctx, obj)
        texts = _completions(ctx, obj["completions"])
        if messages is None or texts is None or ctx.failed:
            continue
        pairs.append(PreferencePair(Conversation(messages, line=ctx.line), texts[0], texts[1], line=ctx.line))
    return pairs


# --- encoding ----------------------------------------------------------------------------------------------------


def encode_pair(encoder: ChatEncoder, pair: PreferencePair, index: int = 0) -> EncodedPair:
    """Both completions after the prompt; only the completion (through its end-of-turn token) is trained."""
    chosen, rejected = (
        encoder.encode(pair.conversation(text), index=index, last_turn_only=True)
        for text in (pair.chosen, pair.rejected)
    )
    return EncodedPair(chosen, rejected, line=pair.line, index=index)


def _encode_all(pairs: list[PreferencePair], limits: Limits, encoder: ChatEncoder, report: Report) -> list[EncodedPair]:
    out: list[EncodedPair] = []
    for pair in pairs:
        try:
            encoded = encode_pair(encoder, pair, index=len(out))
        except ExampleRefused as exc:
            report.error(str(exc), pair.line)
            continue
        longest = max(len(encoded.chosen), len(encoded.rejected))
        if limits.max_seq_len and longest > limits.max_seq_len:
            roomier = {m: v for m, v in limits.other_modes.items() if v >= longest}
            alt = f", or use {next(iter(roomier))} mode ({roomier[next(iter(roomier))]} tokens)" if roomier else ""
            report.error(
                f"prompt + the longer completion is {longest:,} tokens, over the {limits.max_seq_len}-token limit of "
                f"{limits.model_id} in {limits.mode} mode (a pair is never truncated: the two completions would no "
                f"longer compare); shorten the prompt or the completions{alt}",
                pair.line,
            )
            continue
        out.append(encoded)
    return out


def prepare_preferences(
    uri: str, limits: Limits, encoder: ChatEncoder | None, *, settings: Settings | None = None
) -> PreparedPreferences:
    """Parse and (with ``encoder``) tokenise a preference dataset. Never raises for bad data: problems go to the
    report."""
    report = Report(source=uri)
    lines = read_lines(uri, report, settings)
    if lines is None:
        return PreparedPreferences(uri, [], [], report)
    pairs = parse_preference_lines(lines, report)
    report.info.update(lines=len(lines), examples=len(pairs), format="preference")
    if not lines or (not pairs and report.ok):
        report.error(f"the dataset has no examples; give one JSON object per line, like {LINE_SHAPE}")
    examples: list[EncodedPair] = []
    if encoder is not None and report.ok:
        try:
            examples = _encode_all(pairs, limits, encoder, report)
        except InvalidArgument as exc:  # a template problem: the same for every line, so say it once
            report.error(str(exc))
        if examples:
            report.info.update(
                tokens=sum(len(e.chosen) + len(e.rejected) for e in examples),
                max_tokens=max(max(len(e.chosen), len(e.rejected)) for e in examples),
            )
    report.info["limits"] = {"max_seq_len": limits.max_seq_len, "mode": limits.mode, "model": limits.model_id}
    return PreparedPreferences(uri, pairs, examples, report)
