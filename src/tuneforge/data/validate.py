"""Read, parse, check and encode a dataset file, collecting every problem into one report.

A tuning run calls :func:`prepare_dataset` before it loads any weights and refuses a dataset with errors, listing
all of them at once. ``tuneforge validate`` prints the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tuneforge import storage
from tuneforge.data.conversation import Conversation
from tuneforge.data.formats import parse_lines
from tuneforge.data.images import ImageError, open_image
from tuneforge.data.report import Report
from tuneforge.data.tokenize import ChatEncoder, Encoded, ExampleRefused
from tuneforge.errors import InvalidArgument, PermissionDenied
from tuneforge.settings import Settings


@dataclass
class Limits:
    """What the catalog says about the model being tuned."""

    model_id: str
    mode: str
    max_seq_len: int
    other_modes: dict[str, int] = field(default_factory=dict)  # mode -> max_seq_len, for the fix hint
    text_only: bool = True
    strict: bool = False  # over-long examples are errors instead of truncation warnings (SPEC §8 M4)


@dataclass
class PreparedDataset:
    source: str
    conversations: list[Conversation]
    examples: list[Encoded]
    report: Report
    dropped: list[str] = field(default_factory=list)  # reasons, one per dropped example


def read_lines(uri: str, report: Report, settings: Settings | None = None) -> list[str] | None:
    try:
        raw = storage.fetch(uri, settings).read_bytes()
    except (storage.StorageError, IsADirectoryError, PermissionError) as exc:
        report.error(str(exc))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        report.error(f"not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8", line)
        return None
    if text.startswith("\ufeff"):
        report.warning("file starts with a byte-order mark; it was ignored", 1)
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    return [line.removesuffix("\r") for line in lines]


def _drop_text_only(conversations: list[Conversation], report: Report) -> tuple[list[Conversation], list[str]]:
    """SPEC §8 D5: once any example has an image, text-only examples are filtered out (with a warning), each
    listed; a file left with none fails."""
    if not any(c.has_image for c in conversations):
        return conversations, []
    text_only = [c for c in conversations if not c.has_image]
    if not text_only:
        return conversations, []
    kept = [c for c in conversations if c.has_image]
    lines = ", ".join(str(c.line) for c in text_only)
    msg = (
        f"lines {lines}: text-only examples were dropped because the dataset contains images (mixed datasets "
        f"are filtered); {len(text_only)} of {len(conversations)} examples removed"
    )
    report.warning(msg)
    return kept, [f"line {c.line}: text-only example in a dataset with images (dropped)" for c in text_only]


def _check_images(
    conversations: list[Conversation], report: Report, settings: Settings | None, access: storage.Access | None
) -> None:
    """Every image of every example opened and checked, each problem reported at its line and JSON path. Nothing is
    kept: encoding opens them again one example at a time, so memory never holds a dataset's images."""
    for conv in conversations:
        for part in conv.images:
            try:
                open_image(part, settings, access)
            except (ImageError, PermissionDenied) as exc:
                report.error(str(exc), conv.line, part.path or None)


def prepare_dataset(
    uri: str,
    limits: Limits,
    encoder: ChatEncoder | None,
    *,
    settings: Settings | None = None,
    report: Report | None = None,
    expected: str | None = None,
    default_system: str | None = None,
    access: storage.Access | None = None,
) -> PreparedDataset:
    """Parse and (when ``encoder`` is given) tokenise ``uri``; its images must be readable with ``access``. Never
    raises for bad data: problems go to the report."""
    report = report or Report(source=uri)
    lines = read_lines(uri, report, settings)
    if lines is None:
        return PreparedDataset(uri, [], [], report)
    text_only = limits.model_id if limits.text_only else None
    conversations = parse_lines(
        lines, report, text_only_model=text_only, expected=expected, default_system=default_system
    )
    conversations, dropped = _drop_text_only(conversations, report)
    report.info.update(lines=len(lines), examples=len(conversations))
    if not lines or (not conversations and report.ok):
        report.error("the dataset has no examples; give one JSON object per line")
    if any(c.has_image for c in conversations):
        _check_images(conversations, report, settings, access)
        report.info["images"] = sum(len(c.images) for c in conversations)
    examples: list[Encoded] = []
    if encoder is not None and report.ok:
        try:
            examples, cut = _encode_all(conversations, limits, encoder, report)
            dropped += cut
        except InvalidArgument as exc:  # a template problem: the same for every line, so say it once
            report.error(str(exc))
        if not examples and report.ok:
            report.error(
                f"no example is left to train on ({len(dropped)} dropped: see the warnings); fix the lines listed"
            )
        if dropped:
            report.info["dropped"] = len(dropped)
        if examples:
            lengths = [e.meta["full_length"] for e in examples]
            report.info.update(
                tokens=sum(lengths),
                max_tokens=max(lengths),
                truncated=sum(e.truncated for e in examples),
                target_tokens=sum(e.num_target_tokens for e in examples),
            )
    report.info["limits"] = {"max_seq_len": limits.max_seq_len, "mode": limits.mode, "model": limits.model_id}
    return PreparedDataset(uri, conversations, examples, report, dropped)


def _encode_all(conversations, limits: Limits, encoder: ChatEncoder, report: Report):
    examples: list[Encoded] = []
    dropped: list[str] = []
    for conv in conversations:
        try:
            enc = encoder.encode(conv, max_length=limits.max_seq_len, index=len(examples))
        except ExampleRefused as exc:
            report.error(str(exc), conv.line)
            continue
        if enc.meta.get("images_cut"):
            n = enc.meta["full_length"]
            msg = (
                f"example is {n:,} tokens ({enc.meta['image_tokens']:,} of them its images'), over the "
                f"{limits.max_seq_len}-token limit of {limits.model_id}, and truncating it would cut an image; "
                "use fewer or smaller images, or shorten the text"
            )
            if limits.strict:
                report.error(msg, conv.line)
            else:
                report.warning(msg + "; the example is skipped", conv.line)
                dropped.append(f"line {conv.line}: its images do not fit in {limits.max_seq_len} tokens (skipped)")
            continue
        if enc.truncated:
            n = enc.meta["full_length"]
            roomier = {m: v for m, v in limits.other_modes.items() if v > limits.max_seq_len}
            alt = f" ({', '.join(f'{v} in {m}' for m, v in roomier.items())})" if roomier else ""
            fix = "shorten it" + (f", or use {max(roomier, key=lambda m: roomier[m])}" if roomier else "")
            msg = (
                f"example is {n:,} tokens, over the {limits.max_seq_len}-token limit of {limits.model_id} in "
                f"{limits.mode} mode{alt}; {fix}"
            )
            if limits.strict:
                report.error(msg, conv.line)
                continue
            report.warning(msg + f"; it will be truncated to {limits.max_seq_len} tokens", conv.line)
        if enc.num_target_tokens == 0:
            reason = f"line {conv.line}: no assistant tokens left after truncation to {limits.max_seq_len} tokens"
            report.warning(reason + "; the example is dropped", conv.line)
            dropped.append(reason)
            continue
        examples.append(enc)
    return examples, dropped
