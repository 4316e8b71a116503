"""A provider request leaves in the step that makes it (``orchestration/providers/eager.py``), and
the eager start behaves as a task: its result, its errors, its cancellation and its context."""

from __future__ import annotations

import asyncio
import contextvars
import socketserver
import threading
from collections.abc import Iterator

import pytest

from orchestration.providers.eager import start_request_writes_eagerly, started_eagerly
from tests.orchestration.providers.conftest import ROOMY, AdapterFactory

_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class _Counting(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies = 0
        self.arrived = threading.Condition()

    def body_arrived(self) -> None:
        with self.arrived:
            self.bodies += 1
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout_s: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: self.bodies >= count, timeout_s)


class _Handler(socketserver.BaseRequestHandler):
    """Reads each request (head and ``Content-Length`` body) off a kept-alive connection, counts
    it once its body is whole, and answers ``{}``."""

    def handle(self) -> None:
        server: _Counting = self.server  # type: ignore[assignment]
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = self.request.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lengths = [
                line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ]
            length = int(lengths[0]) if lengths else 0
            while len(buffer) < length:
                data = self.request.recv(65536)
                if not data:
                    return
                buffer += data
            buffer = buffer[length:]
            server.body_arrived()
            self.request.sendall(_REPLY)


@pytest.fixture
def counting_server() -> Iterator[_Counting]:
    server = _Counting()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_requests_made_in_one_turn_leave_before_it_ends(
    make_adapter: AdapterFactory, counting_server: _Counting
) -> None:
    """Three calls started in one turn of the loop, on pooled connections: by the end of that turn
    the server holds all three requests, bodies included. On Python 3.11 without the eager start,
    aiohttp wrote each body (and the head it holds back for it) in a task of the next turn."""
    host, port = counting_server.server_address[:2]
    adapter = make_adapter("openai", url=f"http://{host}:{port}")
    url = f"http://{host}:{port}/v1/chat/completions"
    # Three pooled connections, kept alive.
    await asyncio.gather(*(adapter.post_json(url, {"warm": n}, ROOMY) for n in range(3)))
    assert counting_server.wait_for(3, 5.0)

    seen_in_turn: list[bool] = []

    def at_the_end_of_the_turn() -> None:
        # Blocks the loop on purpose: nothing of the loop's can write meanwhile, so only what the
        # calls' own steps wrote can arrive.
        seen_in_turn.append(counting_server.wait_for(6, 5.0))

    calls = [asyncio.ensure_future(adapter.post_json(url, {"call": n}, ROOMY)) for n in range(3)]
    asyncio.get_running_loop().call_soon(at_the_end_of_the_turn)
    assert await asyncio.gather(*calls) == [{}, {}, {}]
    assert seen_in_turn == [True]


_where = contextvars.ContextVar[str]("where", default="caller")


async def test_the_first_step_runs_at_once_in_the_tasks_context() -> None:
    loop = asyncio.get_running_loop()
    steps: list[str] = []
    release = loop.create_future()

    async def writer() -> str:
        steps.append("started")
        _where.set("task")
        await release
        steps.append(f"resumed in {_where.get()}")
        return "written"

    task = started_eagerly(loop, writer())
    assert steps == ["started"]
    assert _where.get() == "caller"  # the task's context is its own copy
    release.set_result(None)
    assert await task == "written"
    assert steps == ["started", "resumed in task"]


async def test_a_coroutine_done_in_its_first_step_is_a_done_future() -> None:
    async def nothing_to_write() -> int:
        return 7

    async def refused() -> None:
        raise ValueError("refused")

    loop = asyncio.get_running_loop()
    done = started_eagerly(loop, nothing_to_write())
    assert done.done() and done.result() == 7
    failed = started_eagerly(loop, refused())
    assert failed.done()
    with pytest.raises(ValueError, match="refused"):
        failed.result()


async def test_cancelling_reaches_the_waiting_coroutine() -> None:
    loop = asyncio.get_running_loop()
    cleaned: list[str] = []

    async def writer() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise

    task = started_eagerly(loop, writer())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancelled"]
    assert task.cancelled()


async def test_an_error_after_a_wait_reaches_whoever_awaits() -> None:
    loop = asyncio.get_running_loop()

    async def writer() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        raise ConnectionResetError("the peer left")

    task = started_eagerly(loop, writer())
    with pytest.raises(ConnectionResetError, match="the peer left"):
        await task


async def test_an_error_thrown_in_can_be_handled_by_the_coroutine() -> None:
    """What the task throws in (a cancellation) is the coroutine's to handle, as with ``yield from``."""
    loop = asyncio.get_running_loop()

    async def writer() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            return "wrote the rest anyway"
        return "not cancelled"

    task = started_eagerly(loop, writer())
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "wrote the rest anyway"


def test_only_aiohttps_body_writer_is_started_eagerly() -> None:
    """Every other task keeps asyncio's order: created now, first run in a later turn."""
    loop = asyncio.new_event_loop()
    try:
        start_request_writes_eagerly(loop)
        factory = loop.get_task_factory()
        assert factory is None or getattr(factory, "starts_writes_eagerly", False)
        start_request_writes_eagerly(loop)
        assert loop.get_task_factory() is factory  # idempotent: one factory, not two stacked
        ran: list[str] = []

        async def other() -> None:
            ran.append("ran")

        task = loop.create_task(other())
        assert ran == []
        loop.run_until_complete(task)
        assert ran == ["ran"]
    finally:
        loop.close()
