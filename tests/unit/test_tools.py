"""Tool use in chat lines (OpenAI's format): parsed into the canonical conversation, every mistake reported at its
line and JSON path, rendered through the model's own template (calls trained, results never), refused by a
template that cannot render it."""

from __future__ import annotations

import json

import pytest

from tuneforge.data import IGNORE_INDEX, ChatEncoder, Report, parse_lines
from tuneforge.data.formats import parse_request
from tuneforge.data.preference import parse_preference_lines
from tuneforge.data.tokenize import ExampleRefused
from tuneforge.errors import InvalidArgument

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Today's weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def call(call_id: str, city: str) -> dict:
    arguments = json.dumps({"city": city})
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


LINE = {
    "tools": TOOLS,
    "parallel_tool_calls": True,
    "messages": [
        {"role": "system", "content": "You answer with the weather."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1", "Paris"), call("c2", "Rome")]},
        {"role": "tool", "tool_call_id": "c1", "content": "22C, sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "25C, cloudy"},
        {"role": "assistant", "content": "Paris: 22C and sunny. Rome: 25C and cloudy."},
    ],
}


def parse(*objs) -> tuple[list, Report]:
    report = Report(source="t.jsonl")
    lines = [o if isinstance(o, str) else json.dumps(o) for o in objs]
    return parse_lines(lines, report), report


def with_messages(*messages, tools=TOOLS) -> dict:
    return {"tools": tools, "messages": [{"role": "user", "content": "Weather in Paris?"}, *messages]}


def test_a_tool_line_parses_into_calls_and_results():
    [conv], report = parse(LINE)
    assert report.ok and not report.warnings, [str(p) for p in report.problems]
    assert [t["function"]["name"] for t in conv.tools] == ["get_weather"]
    calling, first, second, answer = conv.messages[2:]
    assert [c.arguments for c in calling.tool_calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert calling.text == "" and calling.trained
    assert (first.role, first.tool_call_id, first.text) == ("tool", "c1", "22C, sunny")
    assert second.tool_call_id == "c2" and answer.text.startswith("Paris")
    rendered = conv.template_messages()[2]
    assert rendered["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}


def test_openais_legacy_functions_read_as_tools():
    legacy = {
        "functions": [TOOLS[0]["function"]],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"role": "function", "name": "get_weather", "content": "22C"},
            {"role": "assistant", "content": "22C."},
        ],
    }
    [conv], report = parse(legacy)
    assert report.ok, [str(p) for p in report.problems]
    assert conv.tools == tuple(TOOLS)
    assert conv.messages[1].tool_calls[0].id == "call_1" and conv.messages[2].name == "get_weather"


BAD = [
    (
        with_messages({"role": "assistant", "tool_calls": [call("c1", "Paris")]}, {"role": "tool", "content": "22C"}),
        "line 1, messages[2].tool_call_id: missing; give the id of the tool call this message answers",
    ),
    (
        with_messages(
            {"role": "assistant", "tool_calls": [call("c1", "Paris")]},
            {"role": "tool", "tool_call_id": "c9", "content": "22C"},
        ),
        "line 1, messages[2].tool_call_id: tool_call_id 'c9' answers no open call of messages[1] (open: c1)",
    ),
    (
        with_messages(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{city: 1}"}}
                ],
            }
        ),
        "line 1, messages[1].tool_calls[0].function.arguments: not valid JSON (Expecting property name enclosed in "
        "double quotes at column 2); write the arguments as a JSON object in a string",
    ),
    (
        with_messages(
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "3"}}],
            }
        ),
        "line 1, messages[1].tool_calls[0].function.arguments: the arguments must be a JSON object (got a number); "
        'use "{}" for none',
    ),
    (
        with_messages({"role": "assistant", "tool_calls": [call("c1", "Paris") | {"function": {"name": "get wx"}}]}),
        'line 1, messages[1].tool_calls[0].function.name: a function name is 1 to 64 letters, digits, _ or - (got "get wx")',
    ),
    (
        with_messages(
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
            }
        ),
        "line 1, messages[1].tool_calls[0].function.name: calls 'get_time', which is not in tools (get_weather); fix "
        "the name or add the tool",
    ),
    (
        with_messages(
            {"role": "assistant", "tool_calls": [call("c1", "Paris"), call("c2", "Rome")]},
            {"role": "tool", "tool_call_id": "c1", "content": "22C"},
            {"role": "assistant", "content": "22C."},
        ),
        "line 1, messages[3]: the calls c2 of messages[1] have no tool message answering them; add one for each",
    ),
    (
        with_messages(
            {"role": "tool", "tool_call_id": "c1", "content": "22C"}, {"role": "assistant", "content": "22C"}
        ),
        "line 1, messages[1]: a tool message must answer a call: put it right after the assistant's tool_calls",
    ),
    (
        with_messages({"role": "user", "content": "hi", "tool_calls": [call("c1", "Paris")]}),
        "line 1, messages[1].tool_calls: only assistant messages make tool calls; remove tool_calls",
    ),
    (
        with_messages({"role": "assistant", "tool_calls": []}),
        "line 1, messages[1].tool_calls: expected a non-empty list of tool calls like [",
    ),
    (
        {"tools": [{"type": "retrieval"}], "messages": LINE["messages"][1:]},
        'line 1, tools[0]: expected {"type": "function", "function": {"name": …}}: only function tools are tuned',
    ),
    (
        with_messages(
            {"role": "assistant", "tool_calls": [call("c1", "Paris")]},
            {"role": "tool", "tool_call_id": "c1", "content": "22C"},
            {"role": "user", "content": "and?"},
            {"role": "assistant", "content": "22C."},
        ),
        "line 1, messages[3]: a user message right after a tool message; the assistant replies in between",
    ),
]


@pytest.mark.parametrize("line,expected", BAD, ids=[str(i) for i in range(len(BAD))])
def test_tool_mistakes_are_reported_at_their_path(line, expected):
    convs, report = parse(line)
    errors = [str(p) for p in report.errors]
    assert not convs and errors and errors[0].startswith(expected), errors


def test_a_trailing_tool_result_is_trimmed_with_a_warning():
    line = with_messages(
        {"role": "assistant", "tool_calls": [call("c1", "Paris")]},
        {"role": "tool", "tool_call_id": "c1", "content": "22C"},
    )
    [conv], report = parse(line)
    assert [str(w) for w in report.warnings] == [
        "line 1, messages[2]: the last tool message has no assistant reply and is not trained on"
    ]
    assert conv.messages[-1].tool_calls  # the call is the example's target


def trained_text(tokenizer, enc) -> list[str]:
    runs, current = [], []
    for tok, lab in zip(enc.input_ids, enc.labels, strict=True):
        if lab != IGNORE_INDEX:
            current.append(tok)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs + ([tokenizer.decode(current)] if current else [])


@pytest.mark.parametrize(
    "family,end,call_text",
    [
        ("tiny-llama", "<|eot_id|>", '{"name": "get_weather", "parameters": {"city": "Paris"}}'),
        (
            "tiny-qwen3",
            "<|im_end|>",
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        ),
    ],
)
def test_calls_are_trained_and_tool_results_are_not(tokenizer_of, family, end, call_text):
    tok = tokenizer_of(family)
    [conv], _ = parse(LINE)
    enc = ChatEncoder(tok, end_of_turn=end).encode(conv)
    calls, answer = trained_text(tok, enc)
    assert calls.startswith(call_text) and calls.endswith(end) and "Rome" in calls
    assert answer == "Paris: 22C and sunny. Rome: 25C and cloudy." + end
    prompt = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab == IGNORE_INDEX])
    assert "get_weather" in prompt and "22C, sunny" in prompt and "25C, cloudy" in prompt  # offered and shown
    # Without tools, a conversation renders as it did before the templates learned tools.
    [plain], _ = parse({"messages": [*LINE["messages"][:2], {"role": "assistant", "content": "Sunny."}]})
    text = ChatEncoder(tok, end_of_turn=end).render_conversation(plain)
    assert "Tools" not in text and "tool" not in text


def test_a_template_without_tools_refuses_the_line_by_number(tokenizer_of):
    from tuneforge.data.validate import Limits, _encode_all

    tok = tokenizer_of("tiny-gemma3")
    plain = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    convs, _ = parse(plain, LINE)
    report = Report(source="t.jsonl")
    examples, _ = _encode_all(convs, Limits("tiny-gemma3", "PEFT_ADAPTER", 512), ChatEncoder(tok), report)
    assert len(examples) == 1  # the plain line still trains
    [problem] = report.errors
    assert problem.line == 2 and "this model's chat template does not render tool use" in problem.message
    assert "Llama 3.1 and later, Qwen 3" in problem.message
    with pytest.raises(ExampleRefused):
        ChatEncoder(tok).encode_prompt(convs[1])  # serving refuses it too, rather than dropping the tools


def test_a_dpo_prompt_may_carry_tools_and_results():
    line = {
        "input": {"tools": TOOLS, "messages": LINE["messages"][:5]},
        "preferred_output": [{"role": "assistant", "content": "Paris 22C, Rome 25C."}],
        "non_preferred_output": [{"role": "assistant", "content": "I do not know."}],
    }
    report = Report()
    [pair] = parse_preference_lines([json.dumps(line)], report)
    assert report.ok, [str(p) for p in report.problems]
    assert pair.conversation(pair.chosen).tools == pair.prompt.tools and pair.prompt.messages[-1].role == "tool"


def test_a_chat_request_with_tool_results_ends_on_them():
    request = {"tools": TOOLS, "messages": LINE["messages"][:5]}
    conv = parse_request(request, "chat")
    assert conv.tools and conv.messages[-1].role == "tool"
    with pytest.raises(InvalidArgument, match="messages\\[3\\].tool_call_id: tool_call_id 'c9' answers no open call"):
        broken = json.loads(json.dumps(request))
        broken["messages"][3]["tool_call_id"] = "c9"
        parse_request(broken, "chat")


def test_calls_are_read_back_from_replies_in_both_families_shapes():
    from tuneforge.infer.tool_calls import split_tool_calls
    from tuneforge.serve.apis import offered_tools

    offered = offered_tools(TOOLS, None)
    assert offered == {"get_weather"} and offered_tools(TOOLS, "none") == set()
    qwen = 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    content, calls = split_tool_calls(qwen, offered)
    assert content == "Checking." and calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    llama = '{"name": "get_weather", "parameters": {"city": "Paris"}}\n{"name": "get_weather", "parameters": {"city": "Rome"}}'
    content, calls = split_tool_calls(llama, offered)
    assert content is None and [json.loads(c["function"]["arguments"])["city"] for c in calls] == ["Paris", "Rome"]
    for text in (
        '{"name": "get_time", "parameters": {}}',  # not offered
        '<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>',  # arguments not an object
        "<tool_call>{not json}</tool_call>",
        "It is sunny.",
    ):
        assert split_tool_calls(text, offered) == (text, []), text  # nothing the model wrote is lost
    assert split_tool_calls(llama, set()) == (llama, [])  # no tools offered: plain text
    with pytest.raises(InvalidArgument, match="a call cannot be forced"):
        offered_tools(TOOLS, "required")
