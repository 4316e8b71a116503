"""``/v1/responses``: OpenAI's Responses API over the same door, admission, Orchestrator, request
log and metrics as ``/v1/chat/completions`` (``orchestration/calls.py``).

A response is translated to the internal chat request (``wire``), generated whole or streamed as
the Responses API's events (``generation``), and stored unless ``store: false``. A background
response is stored queued and run by an RQ worker (``background``); its events can be streamed
from any server process, from the start or after ``starting_after``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from django.http import HttpRequest, HttpResponseBase

from orchestration.access.admission import Caller
from orchestration.access.keys import REFUSALS
from orchestration.access.revocation import access_watch
from orchestration.calls import (
    Call,
    answer_spent,
    answered,
    call_admitted,
    caller_of,
    json_body,
    served_headers,
    stream_opened,
    stream_response,
    v1_view,
)
from orchestration.database import database_call
from orchestration.errors import InvalidRequest, ServiceError
from orchestration.http import json_response
from orchestration.orchestrator import ReplyStream, get_orchestrator
from orchestration.redisclients import STREAMS, redis_async
from orchestration.responses import eventlog, selectors, services
from orchestration.responses.events import Event, ResponseEventWriter, replayed_events
from orchestration.responses.generation import response_events
from orchestration.responses.models import StoredResponse
from orchestration.responses.objects import ResponseDraft
from orchestration.responses.wire import (
    ResponseInput,
    chat_request,
    response_id_new,
    response_input_from,
    starting_after_from,
)
from orchestration.sse import PING, EventStreamResponse, sse_event
from orchestration.types import ChatRequest, Chunk, Usage
from orchestration.validation import prompt_chars

ENDPOINT = "responses"
P = ParamSpec("P")
T = TypeVar("T")
DEFAULT_PAGE = 20


def _sse(events: list[Event]) -> bytes:
    return b"".join(sse_event(event, event=event["type"]) for event in events)


# --- POST /v1/responses ------------------------------------------------------------------------


@v1_view("POST")
async def responses_create(request: HttpRequest) -> HttpResponseBase:
    """Create a response: whole, streamed (``stream: true``) or in the background."""
    caller = await caller_of(request)
    payload = response_input_from(json_body(request), response_id_new())
    if any(item["type"] == "item_reference" for item in payload.items):
        payload.items = await _in_database(selectors.items_resolved)(user_id=caller.user_id, items=payload.items)
    history: list[dict[str, Any]] = []
    if payload.previous_response_id:
        history = await _in_database(selectors.conversation_items)(
            user_id=caller.user_id, previous_response_id=payload.previous_response_id
        )
    chat = chat_request(payload.model, payload.settings, [*history, *payload.items])
    call = await call_admitted(
        request, caller, chat.model, ENDPOINT, chars=prompt_chars(chat), max_tokens=chat.max_tokens
    )
    draft = _draft(payload)
    if payload.background:
        # Admitted at the door like an agent task: the request and its tokens count against the
        # key's rate limits now; the worker reserves the budget when it runs (``background``).
        await call.settle(Usage(input_tokens=call.admission.verdict.token_cost), Decimal(0))
        return await _background_created(draft, caller, stream=payload.stream, headers=call.headers())
    if payload.stream:
        return await _streamed(call, chat, draft, caller)
    return await _completed(call, chat, draft, caller)


def _draft(payload: ResponseInput) -> ResponseDraft:
    return ResponseDraft(
        id=payload.response_id,
        model=payload.model,
        settings=payload.settings,
        input_items=payload.items,
        background=payload.background,
        store=payload.store,
        previous_response_id=payload.previous_response_id,
        status="queued" if payload.background else "in_progress",
    )


def _in_database(function: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    # Spread over the default pool, the connection given back when the call returns: a thread that
    # kept its pooled PostgreSQL connection held it past its event loop, and every new loop (each
    # async test's) took another, until the pool ran dry.
    return database_call(function)


async def _save(draft: ResponseDraft, caller: Caller) -> None:
    """Store a response made in its request, once it has ended."""
    if draft.store:
        await _in_database(services.response_create)(draft=draft, owner_id=caller.user_id, api_key_id=caller.api_key_id)


async def _completed(call: Call, chat: ChatRequest, draft: ResponseDraft, caller: Caller) -> HttpResponseBase:
    try:
        response, served = await answered(call, get_orchestrator().complete(chat, call.ctx), answer_spent)
    except ServiceError as error:  # refused or failed: stored as failed, answered with the error
        draft.fail(error.code, error.message)
        await _save(draft, caller)
        raise
    except asyncio.CancelledError:  # the client hung up: nothing more is generated
        draft.status = StoredResponse.Status.CANCELLED
        await _save(draft, caller)
        raise
    draft.take_output(response)
    await _save(draft, caller)
    return json_response(draft.body(), {**call.headers(), **served_headers(served)})


async def _streamed(call: Call, chat: ChatRequest, draft: ResponseDraft, caller: Caller) -> HttpResponseBase:
    stream = get_orchestrator().stream(chat, call.ctx)
    try:
        first = await stream_opened(call, stream)
    except ServiceError as error:  # before the 200: stored as failed, answered with the error
        draft.fail(error.code, error.message)
        await _save(draft, caller)
        raise
    return stream_response(call, stream, _streamed_body(call, stream, aiter(stream), first, draft, caller))


async def _streamed_body(
    call: Call,
    stream: ReplyStream,
    chunks: AsyncIterator[Chunk],
    first: Chunk | None,
    draft: ResponseDraft,
    caller: Caller,
) -> AsyncGenerator[bytes, None]:
    try:
        async for batch in response_events(ResponseEventWriter(draft), stream, chunks, first):
            yield _sse(batch)
    finally:
        await stream.aclose()
        await call.settle(stream.served.usage, stream.served.cost_usd)
        if not draft.finished:  # the client went away before the end: nothing more is generated
            draft.status = StoredResponse.Status.CANCELLED
        await _save(draft, caller)


async def _background_created(
    draft: ResponseDraft, caller: Caller, *, stream: bool, headers: dict[str, str]
) -> HttpResponseBase:
    await _in_database(services.response_create)(draft=draft, owner_id=caller.user_id, api_key_id=caller.api_key_id)
    if not stream:
        return json_response(draft.body(), headers)
    response = EventStreamResponse(_followed(draft, caller, starting_after=None))
    for name, value in headers.items():
        response[name] = value
    return response


# --- GET / DELETE /v1/responses/{id} -------------------------------------------------------------


@v1_view("GET", "DELETE")
async def response_detail(request: HttpRequest, response_id: str) -> HttpResponseBase:
    """Retrieve a stored response (``?stream=true``: its events), or delete it."""
    caller = await caller_of(request)
    if request.method == "DELETE":
        await _in_database(services.response_delete)(user_id=caller.user_id, response_id=response_id)
        return json_response({"id": response_id, "object": "response", "deleted": True})
    row = await _in_database(selectors.response_get_owned)(user_id=caller.user_id, response_id=response_id)
    draft = selectors.draft_of(row)
    if request.GET.get("stream", "").lower() != "true":
        return json_response(draft.body())
    starting_after = starting_after_from(request.GET.get("starting_after"))
    return EventStreamResponse(_followed(draft, caller, starting_after=starting_after))


async def _followed(draft: ResponseDraft, caller: Caller, *, starting_after: int | None) -> AsyncGenerator[bytes, None]:
    """A stored response's events after ``starting_after``: live from the event log while it
    runs (or while the log is kept), else written again from the stored response. A key revoked
    meanwhile ends the stream within a second, with an ``error`` event saying so."""
    client = redis_async(STREAMS)
    if draft.finished and not await eventlog.exists(client, draft.id):
        yield _sse([event for event in replayed_events(draft) if _after(event, starting_after)])
        return
    lost = asyncio.Event()
    watch = access_watch(user_id=caller.user_id, api_key_id=caller.api_key_id, on_lost=lambda code: lost.set())
    gone = asyncio.ensure_future(lost.wait())
    events = eventlog.follow(client, draft.id, starting_after=starting_after)
    last = starting_after if starting_after is not None else -1
    step: asyncio.Future[Any] | None = None
    finished = draft.finished
    try:
        while True:
            step = asyncio.ensure_future(anext(events, _END))
            await asyncio.wait({step, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                code = watch.lost or "key_revoked"
                yield _sse([_error_event(last + 1, code, REFUSALS.get(code, "This API key may no longer be used."))])
                return
            event = step.result()
            if event is _END:
                return
            if event is None:
                # A log whose end entry never came (Redis was out of reach when the run ended or was
                # cancelled) ends once the response has finished and one more wait brought nothing.
                if finished:
                    return
                finished = await database_call(_response_finished)(draft.id)
                yield PING
                continue
            last = event["sequence_number"]
            yield _sse([event])
    except eventlog.RunRestarted:
        message = (
            "The worker running this response stopped and another one started it again; stream it again from the start."
        )
        yield _sse([_error_event(last + 1, "response_restarted", message)])
    finally:
        gone.cancel()
        watch.close()
        await _step_settled(step)  # a generator being stepped cannot be closed
        await events.aclose()


def _response_finished(response_id: str) -> bool:
    return not StoredResponse.objects.filter(pk=response_id, status__in=StoredResponse.UNFINISHED).exists()


async def _step_settled(step: asyncio.Future[Any] | None) -> None:
    if step is None or step.done():
        return
    step.cancel()
    await asyncio.wait({step})  # its outcome is not wanted; only that it has stopped


_END: Any = object()


def _error_event(sequence_number: int, code: str, message: str) -> Event:
    return {"type": "error", "sequence_number": sequence_number, "code": code, "message": message, "param": None}


def _after(event: Event, starting_after: int | None) -> bool:
    return starting_after is None or event["sequence_number"] > starting_after


# --- POST /v1/responses/{id}/cancel ------------------------------------------------------------------


@v1_view("POST")
async def response_cancel(request: HttpRequest, response_id: str) -> HttpResponseBase:
    """Cancel a background response that is queued or in progress."""
    caller = await caller_of(request)
    draft = await _in_database(services.response_cancel)(user_id=caller.user_id, response_id=response_id)
    return json_response(draft.body())


# --- GET /v1/responses/{id}/input_items --------------------------------------------------------------


@v1_view("GET")
async def response_input_items(request: HttpRequest, response_id: str) -> HttpResponseBase:
    """The input items of a stored response, OpenAI's cursor-paginated list."""
    caller = await caller_of(request)
    limit = _limit(request.GET.get("limit"))
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(
            "invalid_value", f"Invalid value for 'order': expected 'asc' or 'desc', got {order!r}.", param="order"
        )
    row = await _in_database(selectors.response_get_owned)(user_id=caller.user_id, response_id=response_id)
    page = selectors.input_items_page(row, after=request.GET.get("after"), limit=limit, order=order)
    body = {
        "object": "list",
        "data": page.items,
        "first_id": page.items[0]["id"] if page.items else None,
        "last_id": page.items[-1]["id"] if page.items else None,
        "has_more": page.has_more,
    }
    return json_response(body)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    # ASCII digits only ("²".isdigit() is true, yet int("²") raises), and no more of them than the
    # largest page has (int() refuses more than 4300 digits): both were a 500.
    fits = raw.isascii() and raw.isdigit() and len(raw.lstrip("0")) <= len(str(selectors.MAX_PAGE))
    if not fits or not 1 <= int(raw) <= selectors.MAX_PAGE:
        message = f"'limit' must be a whole number from 1 to {selectors.MAX_PAGE}."
        raise InvalidRequest("invalid_value", message, param="limit")
    return int(raw)
