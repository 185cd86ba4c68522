"""The three serving APIs over one engine: Vertex ``predict``, ``generateContent`` (and its stream), OpenAI chat.

Each API turns its request into prompts (token ids rendered through the deployed model's own chat template, the
one training used) plus validated SamplingParams, runs them on the engine and shapes the answer. Text APIs that send
a bare prompt (``predict``) are rendered as one user turn, as prompt/completion training examples are.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tuneforge import storage
from tuneforge.data import formats
from tuneforge.data.conversation import Conversation
from tuneforge.errors import InvalidArgument
from tuneforge.infer.engine import Deployment, GenRequest
from tuneforge.infer.prompts import check_length, conversation_prompt, prompt_ids
from tuneforge.infer.sampling import SamplingParams, build_params
from tuneforge.infer.tool_calls import split_tool_calls
from tuneforge.wire.base import dump
from tuneforge.wire.openai import ChatCompletion, ChatCompletionRequest, Choice, ResponseMessage, Usage
from tuneforge.wire.serving import GenerateContentRequest, GenerateContentResponse, GenerationConfig, PredictRequest

SAFETY = {"blocked": False, "categories": [], "scores": []}
FINISH_GEMINI = {"stop": "STOP", "length": "MAX_TOKENS", "cancelled": "OTHER", "error": "OTHER"}


@dataclass
class Prompt:
    ids: list[int]
    params: SamplingParams
    text: str = ""  # what the user sent, for predict's "Prompt:/Output:" framing
    images: dict | None = None  # image-text models: the prompt's image tensors


# -- running -----------------------------------------------------------------------------------------------------


class Run:
    """Requests on the engine whose events arrive on an asyncio queue as (candidate, event)."""

    def __init__(self, dep: Deployment, prompts: list[Prompt]):
        loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.requests: list[GenRequest] = []
        for p in prompts:
            for c in range(p.params.n):

                def on_event(event, index=len(self.requests)):
                    loop.call_soon_threadsafe(self.queue.put_nowait, (index, event))

                self.requests.append(GenRequest(p.ids, p.params, on_event, candidate=c, images=p.images))
        for r in self.requests:
            dep.submit(r)
        self.pending = len(self.requests)

    def cancel(self) -> None:
        for r in self.requests:
            r.cancelled.set()

    async def events(self) -> AsyncIterator[tuple[int, dict]]:
        try:
            while self.pending:
                index, event = await self.queue.get()
                if event["type"] == "done":
                    self.pending -= 1
                yield index, event
        finally:
            self.cancel()  # the client went away (or we are done): free the engine's slots

    async def results(self, disconnected=None) -> list[dict]:
        """Every request's final event, in order. ``disconnected``: async () -> bool, polled to free abandoned slots."""
        done: dict[int, dict] = {}
        watcher = asyncio.create_task(self._watch(disconnected)) if disconnected else None
        try:
            async for index, event in self.events():
                if event["type"] == "done":
                    done[index] = event
        finally:
            if watcher:
                watcher.cancel()
        errors = [e for e in done.values() if e["finish_reason"] == "error"]
        if errors:
            raise RuntimeError(errors[0].get("error", "generation failed"))
        return [done[i] for i in range(len(self.requests))]

    async def _watch(self, disconnected) -> None:
        while True:
            await asyncio.sleep(0.25)
            if await disconnected():
                self.cancel()
                return


# -- predict -----------------------------------------------------------------------------------------------------

_OPEN_NAMES = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "top_k": "top_k"}


def _legacy_params(dep: Deployment, parameters: dict, path: str) -> SamplingParams:
    max_tokens = parameters.get("maxOutputTokens", parameters.get("maxDecodeSteps"))
    return build_params(
        defaults=dep.defaults,
        max_tokens=max_tokens,
        temperature=parameters.get("temperature"),
        top_p=parameters.get("topP"),
        top_k=parameters.get("topK"),
        stop=parameters.get("stopSequences"),
        n=parameters.get("candidateCount"),
        seed=parameters.get("seed"),
        names={
            k: f"{path}.{v}"
            for k, v in {
                "max_tokens": "maxOutputTokens",
                "temperature": "temperature",
                "top_p": "topP",
                "top_k": "topK",
                "stop": "stopSequences",
                "n": "candidateCount",
                "seed": "seed",
            }.items()
        },
    )


def predict_prompts(
    dep: Deployment, req: PredictRequest, access: storage.Access | None
) -> tuple[list[Prompt], list[str]]:
    """Prompts for each instance and how to shape each answer: "open" (string), "text", "chat"."""
    parameters = req.parameters or {}
    prompts, kinds = [], []
    for i, inst in enumerate(req.instances):
        path = f"instances[{i}]"
        images = None
        if "prompt" in inst:
            text = inst["prompt"]
            if not isinstance(text, str) or not text.strip():
                raise InvalidArgument(f"{path}.prompt must be a non-empty string")
            raw = inst.get("raw_response", False)
            if not isinstance(raw, bool):
                raise InvalidArgument(f"{path}.raw_response must be true or false")
            merged = {**parameters, **inst}
            params = build_params(
                defaults=dep.defaults,
                max_tokens=merged.get("max_tokens"),
                temperature=merged.get("temperature"),
                top_p=merged.get("top_p"),
                top_k=merged.get("top_k"),
                stop=merged.get("stop"),
                seed=merged.get("seed"),
                names={k: f"{path}.{v}" for k, v in {**_OPEN_NAMES, "stop": "stop", "seed": "seed"}.items()},
            )
            ids = prompt_ids(dep, text)
            kinds.append("raw" if raw else "open")
        elif "content" in inst or "prefix" in inst:  # TextGenerationModel / CodeGenerationModel
            key = "content" if "content" in inst else "prefix"
            text = inst[key]
            if not isinstance(text, str) or not text.strip():
                raise InvalidArgument(f"{path}.{key} must be a non-empty string")
            params = _legacy_params(dep, parameters, "parameters")
            ids = prompt_ids(dep, text)
            kinds.append("text")
        elif "messages" in inst and _role_messages(inst["messages"]):
            # chat-completions messages (Model Garden's open models): text and image_url parts; the answer is its text
            try:
                conversation = formats.parse_request({"messages": inst["messages"]}, "chat")
            except InvalidArgument as exc:
                raise InvalidArgument(f"{path}: {exc}") from None
            params = _legacy_params(dep, parameters, "parameters")
            ids, images = conversation_prompt(dep, conversation, access)
            text = ""
            kinds.append("raw")
        elif "messages" in inst:  # ChatModel / CodeChatModel: author/content messages, optional context
            conversation = _legacy_chat(inst, path)
            params = _legacy_params(dep, parameters, "parameters")
            ids, images = conversation_prompt(dep, conversation, access)
            text = ""
            kinds.append("chat")
        else:
            raise InvalidArgument(
                f'{path} has none of "prompt", "content", "prefix" or "messages"; send {{"prompt": "..."}}'
            )
        check_length(dep, ids, f"{path} prompt")
        prompts.append(Prompt(ids, params, text, images))
    return prompts, kinds


def _role_messages(messages) -> bool:
    return isinstance(messages, list) and bool(messages) and all(isinstance(m, dict) and "role" in m for m in messages)


def _legacy_chat(inst: dict, path: str) -> Conversation:
    messages = inst["messages"]
    if not isinstance(messages, list):
        raise InvalidArgument(f"{path}.messages must be a list of {{author, content}}")
    converted = []
    context = inst.get("context")
    if context is not None:
        if not isinstance(context, str):
            raise InvalidArgument(f"{path}.context must be a string")
        converted.append({"role": "system", "content": context})
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise InvalidArgument(f"{path}.messages[{j}] must be an object with a string content")
        author = str(m.get("author", "user")).lower()
        converted.append({"role": "user" if author == "user" else "assistant", "content": m["content"]})
    try:
        return formats.parse_request({"messages": converted}, "chat")
    except InvalidArgument as exc:
        raise InvalidArgument(f"{path}: {exc}") from None


def predict_answer(kind: str, prompt: Prompt, results: list[dict]):
    first = results[0]
    if kind == "raw":
        return first["text"]
    if kind == "open":
        return f"Prompt:\n{prompt.text}\nOutput:\n{first['text']}"
    if kind == "text":
        return {"content": first["text"], "safetyAttributes": SAFETY, "citationMetadata": {"citations": []}}
    return {
        "candidates": [{"author": "1", "content": r["text"]} for r in results],
        "safetyAttributes": [SAFETY for _ in results],
    }


# -- generateContent ---------------------------------------------------------------------------------------------


def generate_content_prompt(dep: Deployment, req: GenerateContentRequest, access: storage.Access | None) -> Prompt:
    conversation = formats.parse_request(dump(req), "generate_content")
    config = req.generation_config or GenerationConfig()
    params = build_params(
        defaults=dep.defaults,
        max_tokens=config.max_output_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        stop=config.stop_sequences,
        seed=config.seed,
        n=config.candidate_count,
        names={
            "max_tokens": "generationConfig.maxOutputTokens",
            "temperature": "generationConfig.temperature",
            "top_p": "generationConfig.topP",
            "top_k": "generationConfig.topK",
            "stop": "generationConfig.stopSequences",
            "seed": "generationConfig.seed",
            "n": "generationConfig.candidateCount",
        },
    )
    _plain_text_only(config)
    ids, images = conversation_prompt(dep, conversation, access)
    check_length(dep, ids, "contents")
    return Prompt(ids, params, images=images)


def _plain_text_only(config: GenerationConfig) -> None:
    """Structured output is not generated here: asking for it is a clear 400, not an answer that ignores it."""
    if config.response_mime_type not in (None, "text/plain"):
        raise InvalidArgument(
            f"generationConfig.responseMimeType {config.response_mime_type[:64]!r} is not supported: tuneforge answers "
            "text/plain (leave it out, or ask for JSON in the prompt)"
        )
    for given, field in (
        (config.response_schema, "responseSchema"),
        (config.response_json_schema, "responseJsonSchema"),
    ):
        if given is not None:
            raise InvalidArgument(f"generationConfig.{field} (structured output) is not supported; leave it out")


def gemini_response(
    results: list[dict], model_version: str, response_id: str, *, texts: list[str] | None = None, final: bool = True
) -> GenerateContentResponse:
    """A GenerateContentResponse; ``texts`` overrides each candidate's text (stream chunks carry only new text)."""
    candidates = []
    for i, r in enumerate(results):
        cand: dict = {
            "content": {"role": "model", "parts": [{"text": texts[i] if texts else r.get("text", "")}]},
            "index": i,
        }
        if final:
            cand["finishReason"] = FINISH_GEMINI[r["finish_reason"]]
        candidates.append(cand)
    out: dict = {
        "candidates": candidates,
        "modelVersion": model_version,
        "responseId": response_id,
        "createTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if final:
        prompt_tokens = results[0]["prompt_tokens"] if results else 0
        completion = sum(r["completion_tokens"] for r in results)
        out["usageMetadata"] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": completion,
            "totalTokenCount": prompt_tokens + completion,
        }
    return GenerateContentResponse.model_validate(out)


async def gemini_stream(run: Run, model_version: str, sse: bool) -> AsyncIterator[bytes]:
    """streamGenerateContent: one JSON array streamed element by element (the SDK's REST transport), or SSE."""
    response_id = uuid.uuid4().hex
    n = len(run.requests)
    final: dict[int, dict] = {}
    first = True
    if not sse:
        yield b"["
    async for index, event in run.events():
        if event["type"] == "delta":
            chunk = {
                "candidates": [{"content": {"role": "model", "parts": [{"text": event["text"]}]}, "index": index}],
                "modelVersion": model_version,
                "responseId": response_id,
            }
        else:
            final[index] = event
            if len(final) < n:
                continue
            results = [final[i] for i in range(n)]
            chunk = dump(gemini_response(results, model_version, response_id, texts=[""] * n))
        data = json.dumps(chunk)
        if sse:
            yield f"data: {data}\r\n\r\n".encode()
        else:
            yield (data if first else "," + data).encode()
        first = False
    if not sse:
        yield b"]"


# -- OpenAI chat completions -------------------------------------------------------------------------------------


def offered_tools(tools: list[dict[str, Any]] | None, tool_choice: str | dict[str, Any] | None) -> set[str]:
    """The function names whose calls are parsed from a reply (none for ``tool_choice="none"``)."""
    if tool_choice not in (None, "auto", "none"):
        raise InvalidArgument(
            f'tool_choice {json.dumps(tool_choice)} is not supported: a call cannot be forced; use "auto" (the model '
            'decides) or "none"',
            param="tool_choice",
        )
    if not tools or tool_choice == "none":
        return set()
    return {
        str(t["function"]["name"])
        for t in tools
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    }


def openai_prompt(dep: Deployment, req: ChatCompletionRequest, access: storage.Access | None) -> Prompt:
    # OpenAI's newer "developer" role is the system role
    messages = [
        {**m.model_dump(exclude_none=True), **({"role": "system"} if m.role == "developer" else {})}
        for m in req.messages
    ]
    conversation = formats.parse_request({"messages": messages, **({"tools": req.tools} if req.tools else {})}, "chat")
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    params = build_params(
        defaults=dep.defaults,
        max_tokens=max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=req.stop,
        seed=req.seed,
        n=req.n,
    )
    kind = (req.response_format or {}).get("type", "text")
    if kind != "text":
        raise InvalidArgument(
            f"response_format type {str(kind)[:64]!r} is not supported: tuneforge answers text (leave response_format "
            'out, or send {"type": "text"})',
            param="response_format",
        )
    ids, images = conversation_prompt(dep, conversation, access)
    check_length(dep, ids, "messages")
    return Prompt(ids, params, images=images)


FINISH_OPENAI = {"stop": "stop", "length": "length", "cancelled": "stop", "error": "stop"}


def _reply(result: dict, offered: set[str]) -> tuple[str | None, list[dict], str]:
    """(text, tool calls, finish reason) of one generated reply; calls only of the functions the request offered."""
    content, calls = split_tool_calls(result["text"], offered)
    return content, calls, "tool_calls" if calls else FINISH_OPENAI[result["finish_reason"]]


def openai_response(
    results: list[dict], model: str, completion_id: str, offered: set[str] | None = None
) -> ChatCompletion:
    prompt_tokens = results[0]["prompt_tokens"]
    completion = sum(r["completion_tokens"] for r in results)
    choices = []
    for i, r in enumerate(results):
        content, calls, finish = _reply(r, offered or set())
        message = ResponseMessage.model_validate({"content": content, "tool_calls": calls or None})
        choices.append(Choice(index=i, message=message, finish_reason=finish))
    return ChatCompletion(
        id=completion_id,
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion),
    )


async def openai_stream(
    run: Run, model: str, completion_id: str, include_usage: bool, offered: set[str] | None = None
) -> AsyncIterator[bytes]:
    """Server-sent chunks. When the request offers tools, a reply is held until it ends (a call is known only when
    it is whole), then sent as its text and its calls."""
    created = int(time.time())

    def chunk(choices: list[dict], usage: dict | None = None) -> bytes:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk(
        [
            {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            for i in range(len(run.requests))
        ]
    )
    final: dict[int, dict] = {}
    async for index, event in run.events():
        if event["type"] == "delta":
            if not offered:
                yield chunk([{"index": index, "delta": {"content": event["text"]}, "finish_reason": None}])
            continue
        final[index] = event
        finish = FINISH_OPENAI[event["finish_reason"]]
        if offered:
            content, calls, finish = _reply(event, offered)
            if content:
                yield chunk([{"index": index, "delta": {"content": content}, "finish_reason": None}])
            if calls:
                deltas = [{"index": k, **call} for k, call in enumerate(calls)]
                yield chunk([{"index": index, "delta": {"tool_calls": deltas}, "finish_reason": None}])
        yield chunk([{"index": index, "delta": {}, "finish_reason": finish}])
    if include_usage and final:
        prompt_tokens = final[0]["prompt_tokens"]
        completion = sum(e["completion_tokens"] for e in final.values())
        yield chunk(
            [],
            {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            },
        )
    yield b"data: [DONE]\n\n"
