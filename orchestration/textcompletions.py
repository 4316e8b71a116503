"""``POST /v1/completions``: OpenAI's legacy completions, served by chat models.

LlamaIndex's ``OpenAILike`` and older code speak this shape. Each prompt becomes one user message
to the model's chat endpoint, through the same admission and Orchestrator as
``/v1/chat/completions`` (``orchestration/calls.py``); the answers come back as ``text_completion``
choices, one per prompt in the order sent, with their usage summed. A list of prompts is one
admitted call; its prompts run concurrently, and streamed they follow one another, each choice
carrying its ``index``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from orchestration.access.admission import route_of
from orchestration.apis import texts_of
from orchestration.calls import (
    Call,
    answered,
    answers_spent,
    call_admitted,
    caller_of,
    complete_all,
    json_body,
    served_headers,
    served_total,
    stream_failure_event,
    stream_opened,
    stream_response,
    usage_body,
    usage_total,
    v1_view,
)
from orchestration.http import json_response
from orchestration.orchestrator import ReplyStream, get_orchestrator
from orchestration.registry import asnapshot
from orchestration.sse import DONE, Final, sse_event
from orchestration.types import ChatRequest, ChatResponse, Served, Usage
from orchestration.validation import prompt_chars, text_completion_input_from


@v1_view("POST")
async def completions(request: HttpRequest) -> HttpResponseBase:
    """Complete one prompt or a list of prompts, streamed (``stream: true``) or whole."""
    caller = await caller_of(request)
    payload = text_completion_input_from(json_body(request))
    route = route_of(caller, payload.model, await asnapshot())
    chats = payload.requests(await texts_of(payload.prompts, route, "prompt"))
    first = chats[0]
    chars = sum(prompt_chars(chat) for chat in chats)
    call = await call_admitted(request, caller, first.model, "completion", chars=chars, max_tokens=first.max_tokens)
    if payload.stream:
        return await _streamed(call, chats, payload.include_usage)
    return await _whole(call, chats)


def text_completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


# --- whole -----------------------------------------------------------------------------------


async def _whole(call: Call, chats: list[ChatRequest]) -> HttpResponseBase:
    answers: list[tuple[ChatResponse, Served]] = await answered(
        call, complete_all(get_orchestrator(), chats, call.ctx), answers_spent
    )
    _, cost = answers_spent(answers)
    served = answers[0][1]
    headers = {**call.headers(), **served_headers(served), "X-Cost-USD": f"{cost:f}"}
    # The answers' own usage: a cached answer reports what it took, though it is not charged again.
    return json_response(_body(answers, usage_total(response.usage for response, _ in answers)), headers)


def _body(answers: list[tuple[ChatResponse, Served]], usage: Usage) -> dict[str, Any]:
    choices = [
        {"text": response.content or "", "index": index, "logprobs": None, "finish_reason": response.finish_reason}
        for index, (response, _) in enumerate(answers)
    ]
    first, served = answers[0]
    return {
        "id": text_completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": served.model or first.model,
        "choices": choices,
        "usage": usage_body(usage),
        "system_fingerprint": None,
    }


# --- streamed --------------------------------------------------------------------------------


async def _streamed(call: Call, chats: list[ChatRequest], include_usage: bool) -> HttpResponseBase:
    """The first prompt's stream is opened before the 200, so a refusal or an upstream failure
    before any text is an HTTP error, as on ``/v1/chat/completions``."""
    stream = get_orchestrator().stream(chats[0], call.ctx)
    first = await stream_opened(call, stream)
    writer = _TextChunks(model=stream.served.model or chats[0].model)
    return stream_response(call, stream, _events(call, chats, include_usage, writer, stream, first))


async def _events(
    call: Call, chats: list[ChatRequest], include_usage: bool, writer: _TextChunks, stream: ReplyStream, first: Any
) -> AsyncGenerator[bytes, None]:
    """Each prompt's text in turn; a failure once the 200 is out ends with an error event, then ``[DONE]``."""
    served: list[Served] = []
    reported: list[Usage] = []  # each answer's usage as it reports it (a cached one's own: ReplyStream.usage)
    try:
        if first is not None and first.delta:
            yield writer.text(0, first.delta)
        async for frames in _prompt_events(writer, 0, stream, first, started=True):
            yield frames
        served.append(stream.served)
        reported.append(stream.usage)
        for index, chat in enumerate(chats[1:], start=1):
            following = get_orchestrator().stream(chat, call.ctx)
            # Settled however it ends: a stream cut off (by its provider, or the client leaving) is
            # charged what it relayed, and its ``served`` says so once it is closed.
            served.append(following.served)
            async for frames in _prompt_events(writer, index, following, None, started=False):
                yield frames
            reported.append(following.usage)
        ending = writer.usage(usage_total(reported)) if include_usage else b""
    except Exception as error:
        ending = stream_failure_event(call, error)
    finally:
        await stream.aclose()
        if stream.served not in served:
            served.append(stream.served)
        await call.settle(*served_total(served))
    # The usage goes out with ``[DONE]`` once the call is settled: one write, not two.
    yield Final(ending + DONE)


async def _prompt_events(
    writer: _TextChunks, index: int, stream: ReplyStream, first: Any, *, started: bool
) -> AsyncGenerator[bytes, None]:
    """One prompt's text deltas, then its finish. ``started``: ``first`` came already (and was sent);
    a stream that ended there has nothing more to read."""
    finish = first.finish_reason if first is not None else None
    if not (started and (first is None or finish is not None)):
        try:
            async for chunk in stream:
                if chunk.delta:
                    yield writer.text(index, chunk.delta)
                finish = chunk.finish_reason or finish
        finally:
            await stream.aclose()
    yield writer.finish(index, finish or "stop")


class _TextChunks:
    """``text_completion`` stream objects, as SSE bytes."""

    def __init__(self, *, model: str) -> None:
        self.id = text_completion_id()
        self.created = int(time.time())
        self.model = model

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def text(self, index: int, text: str) -> bytes:
        return sse_event(self._chunk([{"text": text, "index": index, "logprobs": None, "finish_reason": None}]))

    def finish(self, index: int, reason: str) -> bytes:
        return sse_event(self._chunk([{"text": "", "index": index, "logprobs": None, "finish_reason": reason}]))

    def usage(self, usage: Usage) -> bytes:
        body = self._chunk([])
        body["usage"] = usage_body(usage)
        return sse_event(body)
