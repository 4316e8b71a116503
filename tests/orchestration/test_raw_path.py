"""``POST /v1/chat/completions`` through the edge's raw path (project/edge/raw.py) answers exactly as
the lean handler does: the same request to both, the same status, error, headers and events."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.http import HttpResponse

from orchestration.access.keys import api_key_find, api_key_revoke
from orchestration.models import LanguageModel
from orchestration.registry import snapshot_invalidate
from orchestration.sse import DONE, EventStreamResponse
from project.asgi import application
from project.edge.handler import LeanHandler
from project.edge.raw import RawHandler, RawRequest
from project.edge.router import _edge_of
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    bearer,
    chat_body,
    in_thread,
    make_key,
    sim_models,
    sse_events,
)
from tests.project.test_lean_handler import WaitingView

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/chat/completions"
APP = "https://app.example.com"
# Headers whose values differ from call to call, whichever path serves it.
_VOLATILE = {"x-request-id", "openai-processing-ms", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"}


def raw() -> httpx.AsyncClient:
    """The application as ``serve`` runs it: the edge sends this route down the raw path."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1")


def lean() -> httpx.AsyncClient:
    """The same route through the lean handler, as the edge served it before the raw path."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=LeanHandler()), base_url="http://127.0.0.1")


def _same_answer(one: httpx.Response, other: httpx.Response) -> dict[str, Any]:
    """Assert that two answers to the same request match; the first one's body."""
    assert one.status_code == other.status_code, (one.content, other.content)
    headers = {name: value for name, value in one.headers.items() if name not in _VOLATILE}
    other_headers = {name: value for name, value in other.headers.items() if name not in _VOLATILE}
    if one.headers.get("content-type", "").startswith("text/event-stream"):
        assert set(headers) == set(other_headers)
        events, other_events = sse_events(one.content), sse_events(other.content)
        assert len(events) == len(other_events) and events[-1] == other_events[-1] == "[DONE]"
        return {"events": events}
    headers.pop("content-length", None), other_headers.pop("content-length", None)  # ids differ in length
    if one.status_code == 200:
        assert set(headers) == set(other_headers)
    else:
        assert headers == other_headers
    body, other_body = one.json(), other.json()
    if "error" in body:
        assert body["error"]["request_id"] == one.headers["x-request-id"]
        body["error"].pop("request_id"), other_body["error"].pop("request_id")
        assert body == other_body
    else:
        assert set(body) == set(other_body)
    return dict(body)


async def _both(method: str, secrets: tuple[str | None, str | None], **request: Any) -> dict[str, Any]:
    """The same request down the raw path (with the first secret) and the lean path (the second)."""
    answers = []
    for make_client, secret in zip((raw, lean), secrets, strict=True):
        headers = {**(bearer(secret) if secret else {}), **request.pop("headers", {})}
        async with make_client() as client:
            answers.append(await client.request(method, URL, headers=headers, **request))
        request["headers"] = {name: value for name, value in headers.items() if name != "Authorization"}
    return _same_answer(*answers)


async def _keys(make_key: Any, **limits: Any) -> tuple[str, str]:
    return await in_thread(make_key, **limits), await in_thread(make_key, **limits)


def test_chat_completions_is_a_raw_route_and_the_other_v1_routes_are_not() -> None:
    assert _edge_of(URL)[2] is not None
    assert _edge_of("/v1/models")[2] is None and _edge_of("/v1/embeddings")[2] is None


async def test_a_call_and_a_stream_answer_alike(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secrets = await _keys(make_key, rpm=100, tpm=100_000)
    body = await _both("POST", secrets, json=chat_body(max_tokens=5))
    assert body["object"] == "chat.completion"
    streamed = await _both("POST", secrets, json=chat_body(max_tokens=5, stream=True))
    assert streamed["events"][0]["object"] == "chat.completion.chunk"


async def test_the_request_id_is_echoed_and_otherwise_made(sim_models) -> None:  # type: ignore[no-untyped-def]
    async with raw() as client:
        echoed = await client.post(URL, json=chat_body(), headers={"X-Request-ID": "req-raw-1"})
        made = await client.post(URL, json=chat_body(), headers={"X-Request-ID": "not sane!"})
    assert echoed.headers["x-request-id"] == "req-raw-1" == echoed.json()["error"]["request_id"]
    assert made.headers["x-request-id"].startswith("req_")


async def test_authentication_errors_answer_alike(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    assert (await _both("POST", (None, None), json=chat_body()))["error"]["code"] == "missing_api_key"
    wrong = ("sy-not-a-real-key", "sy-not-a-real-key")
    assert (await _both("POST", wrong, json=chat_body()))["error"]["code"] == "invalid_api_key"
    secrets = await _keys(make_key)
    for secret in secrets:
        await in_thread(api_key_revoke, key=await in_thread(api_key_find, secret))
    assert (await _both("POST", secrets, json=chat_body(stream=True)))["error"]["type"] == "authentication_error"


async def test_bodies_it_cannot_read_answer_alike(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secrets = await _keys(make_key)
    json_type = {"Content-Type": "application/json"}
    malformed = await _both("POST", secrets, content=b'{"model": "gpt-sim", ', headers=json_type)
    assert malformed["error"]["code"] == "invalid_json"
    not_an_object = await _both("POST", secrets, content=b"[1, 2]", headers=json_type)
    assert not_an_object["error"]["type"] == "invalid_request_error"
    oversized = b'{"pad": "' + b"x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}'
    too_large = await _both("POST", secrets, content=oversized, headers=json_type)
    assert too_large["error"]["code"] == "request_too_large"


async def test_methods_hosts_and_models_answer_alike(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secrets = await _keys(make_key)
    assert (await _both("GET", secrets))["error"]["code"] == "method_not_allowed"
    assert "error" in await _both("POST", secrets, json=chat_body(), headers={"Host": "evil.example"})
    unknown = await _both("POST", secrets, json=chat_body(model="no-such-model"))
    assert unknown["error"]["code"] == "model_not_found"


async def test_limits_and_budgets_answer_alike(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secrets = await _keys(make_key, rpm=1, tpm=100_000)
    await _both("POST", secrets, json=chat_body(max_tokens=5))
    streamed = chat_body(max_tokens=5, stream=True)
    assert (await _both("POST", secrets, json=streamed))["error"]["code"] == "rate_limit_exceeded"
    secrets = await _keys(make_key, rpm=100, tpm=300)
    over_a_minute = await _both("POST", secrets, json=chat_body(max_tokens=400))
    assert over_a_minute["error"]["code"] == "tokens_per_minute_exceeded"
    await LanguageModel.objects.filter(name="gpt-sim").aupdate(output_per_mtok=Decimal("100"))
    snapshot_invalidate()
    secrets = await _keys(make_key, monthly_budget_usd=Decimal("0.0010"))
    assert (await _both("POST", secrets, json=chat_body(max_tokens=30)))["error"]["code"] == "budget_exceeded"


async def test_cors_answers_alike(sim_models, make_key, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SWITCHYARD = {**settings.SWITCHYARD, "CORS_ORIGINS": [APP]}
    preflight = {
        "Origin": APP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with raw() as raw_client, lean() as lean_client:
        answers = [await client.options(URL, headers=preflight) for client in (raw_client, lean_client)]
    kept = [{name: value for name, value in one.headers.items() if name not in _VOLATILE} for one in answers]
    assert answers[0].status_code == answers[1].status_code == 204 and kept[0] == kept[1]
    assert kept[0]["access-control-allow-origin"] == APP
    secrets = await _keys(make_key)
    await _both("POST", secrets, json=chat_body(), headers={"Origin": APP})


# --- the handler itself ----------------------------------------------------------------------------


class Client:
    """The ASGI side of a client: the messages the test puts in, and what it was sent."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in messages:
            self.inbox.put_nowait(message)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def test_a_client_that_goes_away_cancels_the_view_and_the_request_ends_quietly() -> None:
    view, client = WaitingView(), Client({"type": "http.request", "body": b"{}"})
    handling = asyncio.create_task(RawHandler(LeanHandler())(view, scope(), client.receive, client.send))
    await asyncio.wait_for(view.started.wait(), 5)
    client.inbox.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(handling, 5)
    assert view.cancelled and client.sent == [] and not handling.cancelled()


async def test_a_body_in_parts_reaches_the_view_whole_with_its_headers_in_any_case() -> None:
    view = WaitingView()
    parts = [{"type": "http.request", "body": part, "more_body": True} for part in (b'{"a"', b": ")]
    client = Client(*parts, {"type": "http.request", "body": b"1}"})
    headers = ((b"x-api-key", b"one"), (b"X-Thing", b"a"), (b"x-thing", b"b"))
    handling = asyncio.create_task(RawHandler(LeanHandler())(view, scope(*headers), client.receive, client.send))
    await asyncio.wait_for(view.started.wait(), 5)
    handling.cancel()
    request = view.request
    assert json.loads(request.body) == {"a": 1}
    assert request.headers["X-API-Key"] == "one" and request.headers.get("X-Thing") == "a,b"
    assert "HOST" in request.headers and "Cookie" not in request.headers


async def test_a_streamed_answer_does_not_keep_the_body_its_view_read() -> None:
    read: list[bytes] = []
    requests: list[RawRequest] = []
    first_sent, going_on = asyncio.Event(), asyncio.Event()

    async def events() -> Any:
        yield b"data: 1\n\n"
        first_sent.set()  # asked for the next event: the first one is out
        await going_on.wait()
        yield DONE

    async def view(request: RawRequest) -> EventStreamResponse:
        read.append(request.body)
        requests.append(request)
        return EventStreamResponse(events())

    client = Client({"type": "http.request", "body": b'{"messages": "a long conversation"}'})
    handling = asyncio.create_task(RawHandler(LeanHandler())(view, scope(), client.receive, client.send))
    await asyncio.wait_for(first_sent.wait(), 5)  # the stream goes on
    assert read == [b'{"messages": "a long conversation"}'] and requests[0].body == b""
    going_on.set()
    await asyncio.wait_for(handling, 5)
    assert client.sent[-1]["body"] == b"data: [DONE]\n\n" and not client.sent[-1].get("more_body")


async def test_a_body_that_grows_past_the_limit_goes_to_the_lean_handler_whole(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    answers = []
    for serve in ("raw", "lean"):
        view = WaitingView()
        parts = [{"type": "http.request", "body": b"x" * 600, "more_body": True} for _ in range(3)]
        client = Client(*parts, {"type": "http.request", "body": b""})
        if serve == "raw":
            await asyncio.wait_for(RawHandler(LeanHandler())(view, scope(), client.receive, client.send), 5)
            assert view.request is None  # never reached: the lean handler answered, with the view of the route
        else:
            await asyncio.wait_for(LeanHandler()(scope(), client.receive, client.send), 5)
        body = json.loads(b"".join(message.get("body", b"") for message in client.sent[1:]))
        answers.append((client.sent[0]["status"], body["error"]["code"]))
    assert answers[0] == answers[1] == (401, "missing_api_key")


async def test_a_view_that_fails_unexpectedly_is_a_500_in_the_one_shape() -> None:
    async def failing(request: RawRequest) -> HttpResponse:
        raise RuntimeError("a bug")

    client = Client({"type": "http.request", "body": b"{}"})
    await asyncio.wait_for(RawHandler(LeanHandler())(failing, scope(), client.receive, client.send), 5)
    start, body = client.sent[0], b"".join(message.get("body", b"") for message in client.sent[1:])
    error = json.loads(body)["error"]
    assert start["status"] == 500 and error["code"] == "internal_error"
    assert (b"X-Request-ID", error["request_id"].encode()) in start["headers"]
