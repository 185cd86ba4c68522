"""Every documented format parses into the canonical conversation; bad lines get the reports of invalid_examples.md."""

import json

import pytest

from tuneforge.data import Report, parse_lines
from tuneforge.data.conversation import ImagePart

TEXT_FILES = {
    "prompt_completion.jsonl": "prompt_completion",
    "chat_messages.jsonl": "chat",
    "generate_content.jsonl": "generate_content",
    "generate_content_gemini_roles.jsonl": "generate_content",
    "code_generation.jsonl": "text_pair",
    "code_generation_eval.jsonl": "text_pair",
    "codechat.jsonl": "codechat",
    "distill_labeled.jsonl": "text_pair",
    "distill_eval.jsonl": "text_pair",
}


def parse(*lines, text_only_model=None):
    report = Report(source="t.jsonl")
    convs = parse_lines(list(lines), report, text_only_model=text_only_model)
    return convs, report


def messages(report):
    return [str(p) for p in report.problems]


@pytest.mark.parametrize("name,fmt", sorted(TEXT_FILES.items()))
def test_example_files_parse_cleanly(examples, name, fmt):
    lines = (examples / name).read_text().splitlines()
    convs, report = parse(*lines)
    assert report.problems == []
    assert report.info["format"] == fmt
    assert len(convs) == len(lines)
    for conv in convs:
        assert conv.messages[-1].role == "assistant"
        assert all(m.role in ("system", "user", "assistant") for m in conv.messages)


@pytest.mark.parametrize("name", ["multimodal_chat.jsonl", "multimodal_generate_content.jsonl"])
def test_multimodal_example_files_parse_into_image_parts(examples, name):
    lines = (examples / name).read_text().splitlines()
    convs, report = parse(*lines)
    assert report.errors == []
    assert all(conv.has_image for conv in convs)
    images = [p for c in convs for m in c.messages for p in m.parts if isinstance(p, ImagePart)]
    assert {i.mime_type for i in images} == {"image/png", "image/jpeg", "image/webp"}


def test_same_conversation_from_every_format():
    pc = '{"prompt": "Hi", "completion": "Hello"}'
    chat = '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}'
    gc = '{"contents": [{"role": "USER", "parts": [{"text": "Hi"}]}, {"role": "model", "parts": [{"text": "Hello"}]}]}'
    results = [parse(line)[0][0].template_messages() for line in (pc, chat, gc)]
    assert (
        results[0]
        == results[1]
        == results[2]
        == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    )
    sys_gc = (
        '{"systemInstruction": {"parts": [{"text": "Be brief."}]}, "contents": [{"role": "user", "parts": '
        '[{"text": "Hi"}]}, {"role": "assistant", "parts": [{"text": "Yo"}]}]}'
    )
    assert parse(sys_gc)[0][0].template_messages()[0] == {"role": "system", "content": "Be brief."}


# (case number in invalid_examples.md, line, expected report lines)
CASES = [
    (
        1,
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},]}',
        ["line 1, column 93: invalid JSON (expecting a value after ','); remove the trailing comma before ']'"],
    ),
    (
        2,
        '{"messages": [',
        [
            "line 1: invalid JSON (object not closed at end of line); each example must be a single JSON object on ONE line; join the example's lines"
        ],
    ),
    (
        3,
        "{'prompt': 'Name a fruit.', 'completion': 'Apple.'}",
        [
            'line 1, column 2: invalid JSON (property names and strings need double quotes); write {"prompt": "...", "completion": "..."}'
        ],
    ),
    (
        4,
        '[{"prompt": "Name a fruit.", "completion": "Apple."}]',
        ["line 1: expected one JSON object per line, got an array; put each example on its own line"],
    ),
    (
        5,
        '{"question": "What is 2 + 2?", "answer": "4"}',
        [
            'line 1: no supported format matches the keys [question, answer]; use {"prompt","completion"}, {"messages":[...]}, {"contents":[...]} or {"input_text","output_text"} (SPEC §2.7, §3.2)'
        ],
    ),
    (
        7,
        '{"prompt": "Translate to German: good morning"}',
        ['line 1: prompt/completion example is missing "completion"; add the expected output text'],
    ),
    (
        8,
        '{"prompt": "Name a colour.", "completion": ""}',
        ["line 1, completion: empty string; the example has nothing to learn; give the expected text or drop the line"],
    ),
    (
        9,
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"}]}',
        ['line 1, messages[1].role: "bot" is not a valid role; use one of system, user, assistant'],
    ),
    (
        10,
        '{"messages": [{"role": "user", "content": "How many legs does a spider have?"}, {"role": "assistant", "content": 8}]}',
        ['line 1, messages[1].content: expected a string or a list of parts, got a number; write "8"'],
    ),
    (
        11,
        '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}',
        ["line 1, messages: no assistant message, so there is no target to train on; add the expected assistant reply"],
    ),
    (
        12,
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hello."}]}',
        ["line 1, messages[1]: a system message is allowed only as the first message; move it to messages[0]"],
    ),
    (
        13,
        '{"contents": [{"role": "system", "parts": [{"text": "Be brief."}]}, {"role": "user", "parts": "Hello"}, {"role": "model", "parts": [{"text": "Hi!"}]}]}',
        [
            'line 1, contents[0].role: "system" is not allowed in contents; put system text in systemInstruction.parts',
            'line 1, contents[1].parts: expected a list like [{"text": "..."}], got a string',
        ],
    ),
    (
        16,
        '{"contents": [{"role": "user", "parts": [{"text": "Describe this."}, {"file_data": {"mime_type": "image/gif", "file_uri": "gs://my-bucket/cat.gif"}}]}, {"role": "assistant", "parts": [{"text": "A cat."}]}]}',
        [
            'line 1, contents[0].parts[1].file_data.mime_type: "image/gif" is not supported; use image/jpeg, image/png or image/webp'
        ],
    ),
    (
        17,
        '{"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,SGVsbG8=", "detail": "low"}}]}, {"role": "assistant", "content": [{"type": "text", "text": "A square."}]}]}',
        [
            "line 1, messages[0].content[1].image_url.url: data URL declares image/png but the decoded bytes are not a PNG image; re-encode the file"
        ],
    ),
    (
        18,
        '{"messages": [{"role": "user", "content": [{"type": "text", "text": "Describe it."}, {"type": "image_url", "image_url": {"detail": "medium"}}]}, {"role": "assistant", "content": [{"type": "text", "text": "A square."}]}]}',
        [
            'line 1, messages[0].content[1].image_url.detail: "medium" is not one of low, high, auto',
            "line 1, messages[0].content[1].image_url.url: required (gs://… or data:image/…;base64,…)",
        ],
    ),
]


@pytest.mark.parametrize("case,line,expected", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_invalid_example_reports(case, line, expected):
    convs, report = parse(line)
    assert convs == []
    assert sorted(messages(report)) == sorted(expected)
    assert all(p.severity == "error" for p in report.problems)


def test_case15_image_for_a_text_only_model():
    line = (
        '{"messages": [{"role": "user", "content": [{"type": "text", "text": "What colour is this?"}, {"type": '
        '"image_url", "image_url": {"url": "gs://tuneforge-examples/images/red_square.png", "detail": "low"}}]}, '
        '{"role": "assistant", "content": [{"type": "text", "text": "Red."}]}]}'
    )
    _, report = parse(line, text_only_model="meta/llama3_1@llama-3.1-8b-instruct")
    assert messages(report) == [
        "line 1, messages[0].content[1]: image input, but meta/llama3_1@llama-3.1-8b-instruct accepts text only; "
        "images are supported only by meta/llama4@llama-4-scout-17b-16e-instruct"
    ]


def test_invalid_base64_names_the_position():
    line = (
        '{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": '
        '"data:image/png;base64,iVBOR*w0"}}]}, {"role": "assistant", "content": "x"}]}'
    )
    _, report = parse(line)
    assert messages(report) == [
        "line 1, messages[0].content[0].image_url.url: payload is not valid base64 (bad character at position 5)"
    ]


def test_case6_two_formats_in_one_file_and_every_problem_reported():
    lines = [
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}',
        '{"prompt": "Name a fruit.", "completion": "Apple."}',
        "",
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"}]}',
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yes"}]}',
    ]
    convs, report = parse(*lines)
    assert [c.line for c in convs] == [1, 5]
    assert messages(report) == [
        "line 2: prompt/completion format, but line 1 set this file's format to chat messages; use one format per file",
        "line 3: blank line skipped",
        'line 4, messages[1].role: "bot" is not a valid role; use one of system, user, assistant',
    ]
    assert [p.severity for p in report.problems] == ["error", "warning", "error"]


def test_turn_rules():
    _, r = parse('{"messages": [{"role": "assistant", "content": "Hi"}]}')
    assert "the first turn must be from the user" in messages(r)[0]
    _, r = parse(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}'
    )
    assert messages(r) == [
        "line 1, messages[1]: two user turns in a row; turns must alternate user and assistant (merge them)"
    ]
    convs, r = parse(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}'
    )
    assert len(convs[0].messages) == 2 and r.warnings and not r.errors
    convs, r = parse(
        json.dumps({"messages": [{"author": "user", "content": "a"}, {"author": "assistant", "content": "b"}]})
    )
    assert r.info["format"] == "codechat" and len(convs[0].messages) == 2  # author-keyed lines are code chat


# --- code models (SPEC §3.2; invalid_examples.md section D) -----------------------------------------------------------


def test_code_formats_parse_into_the_same_conversation():
    pair = parse('{"input_text": "Reverse a list?", "output_text": "xs[::-1]"}')[0][0]
    chat = parse(
        '{"context": "Be brief.", "messages": [{"author": "user", "content": "Reverse a list?"}, '
        '{"author": "assistant", "content": "xs[::-1]"}]}'
    )[0][0]
    assert (
        pair.template_messages()
        == chat.template_messages()[1:]
        == [{"role": "user", "content": "Reverse a list?"}, {"role": "assistant", "content": "xs[::-1]"}]
    )
    assert chat.template_messages()[0] == {"role": "system", "content": "Be brief."}


def test_default_context_applies_only_where_a_line_has_none():
    lines = [
        '{"messages": [{"author": "user", "content": "a"}, {"author": "assistant", "content": "b"}]}',
        '{"context": "Mine.", "messages": [{"author": "user", "content": "a"}, {"author": "assistant", "content": "b"}]}',
    ]
    report = Report()
    convs = parse_lines(lines, report, expected="codechat", default_system="Default.")
    assert [c.messages[0].text for c in convs] == ["Default.", "Mine."]


@pytest.mark.parametrize(
    "expected_format,line,reports",
    [
        (
            "text_pair",
            '{"output_text": "print(\'hello\')"}',  # case 20
            [
                'line 1: code generation example is missing "input_text" (the prompt); every line needs input_text and output_text'
            ],
        ),
        (
            "codechat",
            '{"messages": [{"role": "user", "content": "Reverse a list in Python?"}, {"role": "assistant", "content": "xs[::-1]"}]}',  # case 21
            [
                'line 1, messages[0]: code chat messages use "author" (user or assistant), not "role"; rename the key',
                'line 1, messages[1]: code chat messages use "author" (user or assistant), not "role"; rename the key',
            ],
        ),
        (
            "codechat",
            '{"context": ["Be brief."], "messages": [{"author": "system", "content": "Be brief."}, {"author": "user", "content": "Reverse a list?"}, {"author": "assistant", "content": "xs[::-1]"}]}',  # case 22
            [
                "line 1, context: expected a string, got an array",
                'line 1, messages[0].author: "system" is not valid; use user or assistant, and put instructions in "context"',
            ],
        ),
        (
            "text_pair",
            '{"prompt": "a", "completion": "b"}',
            [
                'line 1: code generation example is missing "input_text" (the prompt); every line needs input_text and output_text'
            ],
        ),
    ],
)
def test_code_format_reports(expected_format, line, reports):
    report = Report()
    assert parse_lines([line], report, expected=expected_format) == []
    assert sorted(messages(report)) == sorted(reports)
