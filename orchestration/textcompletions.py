"""``POST /v1/completions``: OpenAI's legacy completions, served by chat models.

LlamaIndex's ``OpenAILike`` and older code speak this shape. Each prompt becomes one user message
to the model's chat endpoint, through the same admission and Orchestrator as
``/v1/chat/completions`` (``orchestration.apis``); the answers come back as ``text_completion``
choices, one per prompt in the order sent, with their usage summed. A list of prompts is one
admitted call; its prompts run concurrently, and streamed they follow one another, each choice
carrying its ``index``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from orchestration.access.admission import route_of
from orchestration.apis import (
    Call,
    _admitted,
    _caller,
    _context,
    _json_body,
    _served_headers,
    _with_limit_headers,
    _within_deadline,
    texts_of,
    v1_view,
)
from orchestration.errors import ServiceError, error_body, error_body_of
from orchestration.http import json_response, request_id_of
from orchestration.orchestrator import ReplyStream, get_orchestrator
from orchestration.registry import asnapshot
from orchestration.sse import DONE, EventStreamResponse, sse_event
from orchestration.types import ChatRequest, ChatResponse, Served, Usage
from orchestration.validation import prompt_chars, text_completion_input_from

logger = logging.getLogger("switchyard.api")


@v1_view("POST")
async def completions(request: HttpRequest) -> HttpResponseBase:
    """Complete one prompt or a list of prompts, streamed (``stream: true``) or whole."""
    caller = await _caller(request)
    payload = text_completion_input_from(_json_body(request))
    route = route_of(caller, payload.model, await asnapshot())
    chats = payload.requests(await texts_of(payload.prompts, route, "prompt"))
    first = chats[0]
    chars = sum(prompt_chars(chat) for chat in chats)
    admission = await _admitted(caller, first.model, "completion", chars=chars, max_tokens=first.max_tokens)
    call = Call(request, admission, _context(request, caller, "completion"), first.max_tokens)
    if payload.stream:
        return await _streamed(call, chats, payload.include_usage)
    return await _whole(call, chats)


def text_completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


def _usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _summed(served: list[Served]) -> tuple[Usage, Decimal]:
    usage = Usage(
        input_tokens=sum(one.usage.input_tokens for one in served),
        output_tokens=sum(one.usage.output_tokens for one in served),
    )
    return usage, sum((one.cost_usd for one in served), Decimal(0))


# --- whole -----------------------------------------------------------------------------------


async def _whole(call: Call, chats: list[ChatRequest]) -> HttpResponseBase:
    orchestrator = get_orchestrator()
    usage, cost = None, Decimal(0)
    try:
        answers: list[tuple[ChatResponse, Served]] = await _within_deadline(
            call, asyncio.gather(*(orchestrator.complete(chat, call.ctx) for chat in chats))
        )
        usage, cost = _summed([served for _, served in answers])
    except ServiceError as error:
        raise _with_limit_headers(error, call) from None
    finally:
        await call.settle(usage, cost)
    served = answers[0][1]
    headers = {**call.headers(), **_served_headers(served), "X-Cost-USD": f"{cost:f}"}
    return json_response(_body(answers, usage or Usage()), headers)


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
        "usage": _usage_body(usage),
        "system_fingerprint": None,
    }


# --- streamed --------------------------------------------------------------------------------


async def _streamed(call: Call, chats: list[ChatRequest], include_usage: bool) -> HttpResponseBase:
    """The first prompt's stream is opened before the 200, so a refusal or an upstream failure
    before any text is an HTTP error, as on ``/v1/chat/completions``."""
    stream = get_orchestrator().stream(chats[0], call.ctx)
    try:
        first = await _within_deadline(call, anext(aiter(stream), None))
    except BaseException as error:
        await stream.aclose()
        await call.settle(None, Decimal(0))
        if isinstance(error, ServiceError):
            raise _with_limit_headers(error, call) from None
        raise
    writer = _TextChunks(model=stream.served.model or chats[0].model)
    body = _events(call, chats, include_usage, writer, stream, first)
    response = EventStreamResponse(body)
    for name, value in {**call.headers(), **_served_headers(stream.served, with_cost=False)}.items():
        response[name] = value
    return response


async def _events(
    call: Call, chats: list[ChatRequest], include_usage: bool, writer: _TextChunks, stream: ReplyStream, first: Any
) -> AsyncGenerator[bytes, None]:
    """Each prompt's text in turn; a failure once the 200 is out ends with an error event, then ``[DONE]``."""
    served: list[Served] = []
    try:
        if first is not None and first.delta:
            yield writer.text(0, first.delta)
        async for frames in _prompt_events(writer, 0, stream, first, started=True):
            yield frames
        served.append(stream.served)
        for index, chat in enumerate(chats[1:], start=1):
            following = get_orchestrator().stream(chat, call.ctx)
            async for frames in _prompt_events(writer, index, following, None, started=False):
                yield frames
            served.append(following.served)
        if include_usage:
            yield writer.usage(_summed(served)[0])
    except ServiceError as error:
        yield sse_event(error_body_of(error, request_id_of(call.request)))
    except Exception:
        logger.exception("A completion stream failed after it began (request %s)", request_id_of(call.request))
        yield sse_event(error_body(502, "stream_failed", "The stream failed.", request_id_of(call.request)))
    finally:
        await stream.aclose()
        if stream.served not in served:
            served.append(stream.served)
        await call.settle(*_summed(served))
    yield DONE


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
        body["usage"] = _usage_body(usage)
        return sse_event(body)
