"""The lean handler (project/edge/handler.py): the view runs in the request's own task; the client's
disconnect cancels it (told by daphne itself, or read from the queue), and nothing else is taken for
a disconnect."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from orchestration.sse import DONE, EventStreamResponse
from project.edge.daphne import DISCONNECT_CALLBACK, daphne_harden
from project.edge.handler import LEAN_VIEW, LeanHandler


class Client:
    """The ASGI side of a client: its request (no body), then the messages the test puts in."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "http.request", "body": b""})
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def request_for(view: Any) -> dict[str, Any]:
    """A GET of a lean route, served by ``view`` (as the router does for a fast-path view)."""
    host = next(name for name in settings.ALLOWED_HOSTS if not name.startswith((".", "*", "[")))
    return {
        "type": "http",
        "method": "GET",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        LEAN_VIEW: view,
    }


class WaitingView:
    """A view that waits until it is cancelled, and says so."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False
        self.request: Any = None

    async def __call__(self, request: Any) -> HttpResponse:
        self.request = request
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return HttpResponse()


async def test_a_client_that_goes_away_cancels_the_view_and_the_request_ends_quietly() -> None:
    view, client = WaitingView(), Client()
    handling = asyncio.create_task(LeanHandler()(request_for(view), client.receive, client.send))
    await asyncio.wait_for(view.started.wait(), 5)

    client.inbox.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(handling, 5)

    assert view.cancelled and client.sent == []
    assert not handling.cancelled()


async def test_a_cancellation_from_the_server_is_not_taken_for_a_disconnect() -> None:
    view, client = WaitingView(), Client()
    handling = asyncio.create_task(LeanHandler()(request_for(view), client.receive, client.send))
    await asyncio.wait_for(view.started.wait(), 5)

    handling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(handling, 5)

    assert view.cancelled


async def test_an_answered_request_leaves_no_task_waiting_for_its_disconnect() -> None:
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(b"ok")

    client = Client()
    before = asyncio.all_tasks()
    await LeanHandler()(request_for(view), client.receive, client.send)
    await asyncio.sleep(0)  # the watch's cancellation is delivered on the next turn

    assert [message["type"] for message in client.sent] == ["http.response.start", "http.response.body"]
    assert client.sent[1]["body"] == b"ok"
    assert asyncio.all_tasks() <= before


async def test_an_event_streams_final_item_ends_the_body_with_it_and_closes_the_stream() -> None:
    closed = []

    async def events() -> Any:
        try:
            yield b"data: 1\n\n"
            yield DONE
            yield b"never sent"
        finally:
            closed.append(True)

    async def view(request: HttpRequest) -> EventStreamResponse:
        return EventStreamResponse(events())

    client = Client()
    await LeanHandler()(request_for(view), client.receive, client.send)

    bodies = [(message["body"], message.get("more_body", False)) for message in client.sent[1:]]
    assert bodies == [(b"data: 1\n\n", True), (b"data: [DONE]\n\n", False)]
    assert closed == [True]


async def test_an_event_stream_without_a_final_item_ends_with_an_empty_body() -> None:
    async def events() -> Any:
        yield b"data: 1\n\n"

    async def view(request: HttpRequest) -> EventStreamResponse:
        return EventStreamResponse(events())

    client = Client()
    await LeanHandler()(request_for(view), client.receive, client.send)

    bodies = [(message.get("body", b""), message.get("more_body", False)) for message in client.sent[1:]]
    assert bodies == [(b"data: 1\n\n", True), (b"", False)]


def daphne_connection(application: Any) -> tuple[Any, Any]:
    """Daphne's server object (not started) around ``application``, and one HTTP connection of its,
    on a test transport: requests written to it are read as daphne reads them, with what the edge
    changes in daphne's process (project/edge/daphne.py)."""
    from daphne.http_protocol import HTTPFactory
    from daphne.server import Server
    from twisted.internet.testing import StringTransport

    daphne_harden()
    server = Server(application=application, endpoints=["tcp:port=0"])
    server.connections = {}  # what its run() starts with
    channel = HTTPFactory(server).buildProtocol(None)
    channel.makeConnection(StringTransport())
    return server, channel


def served_by(view: Any, queues: list[Any] | None = None) -> Any:
    """The lean handler as an ASGI application that serves every request with ``view`` (and
    notes each request's input queue in ``queues``)."""
    handler = LeanHandler()

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if queues is not None:
            queues.append(receive.__self__)
        await handler({**scope, LEAN_VIEW: view}, receive, send)

    return application


def get_line() -> bytes:
    host = next(name for name in settings.ALLOWED_HOSTS if not name.startswith((".", "*", "[")))
    return f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def test_daphne_tells_the_handler_its_client_left_with_no_task_waiting_for_it() -> None:
    view = WaitingView()
    server, channel = daphne_connection(served_by(view))
    channel.dataReceived(get_line())
    await asyncio.wait_for(view.started.wait(), 5)
    (connection,) = server.connections.values()
    serving = connection["application_instance"]
    assert asyncio.all_tasks() == {asyncio.current_task(), serving}  # nothing waits on the queue

    channel.connectionLost(Failure(ConnectionDone()))
    await asyncio.wait_for(serving, 5)

    assert view.cancelled and not serving.cancelled()


async def test_a_request_answered_on_daphne_leaves_nothing_to_call_when_the_connection_closes() -> None:
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(b"ok")

    queues: list[Any] = []
    server, channel = daphne_connection(served_by(view, queues))
    channel.dataReceived(get_line())
    (connection,) = server.connections.values()
    await asyncio.wait_for(connection["application_instance"], 5)

    assert channel._channel.transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    (queue,) = queues
    assert DISCONNECT_CALLBACK in vars(queue) and getattr(queue, DISCONNECT_CALLBACK) is None
    channel.connectionLost(Failure(ConnectionDone()))  # a later close calls nothing


async def test_a_queue_without_daphnes_callback_is_watched_by_a_task_as_django_does() -> None:
    view = WaitingView()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": b""})
    handling = asyncio.create_task(LeanHandler()(request_for(view), inbox.get, Client().send))
    await asyncio.wait_for(view.started.wait(), 5)
    assert len(asyncio.all_tasks()) == 3  # the test, the request and its watch

    inbox.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(handling, 5)

    assert view.cancelled and not handling.cancelled()


async def test_a_client_gone_before_the_view_ran_is_seen_through_the_queue() -> None:
    """Daphne's queue holds the disconnect already (the client left while the request waited to
    run): nothing would call the watch any more, so a task reads the message, as Django's does."""
    view = WaitingView()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    setattr(inbox, DISCONNECT_CALLBACK, None)
    inbox.put_nowait({"type": "http.request", "body": b""})
    inbox.put_nowait({"type": "http.disconnect"})
    handling = asyncio.create_task(LeanHandler()(request_for(view), inbox.get, Client().send))
    await asyncio.wait_for(handling, 5)

    assert view.cancelled and not handling.cancelled()
    assert getattr(inbox, DISCONNECT_CALLBACK) is None
