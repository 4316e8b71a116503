"""Fixtures for the adapter tests: adapters pointed at the running simulator, and a canned
upstream (a real local HTTP server replaying fixed bytes) for wire shapes the simulator never
sends, such as the loose variants of OpenAI-compatible servers."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from orchestration.providers import ProviderConfig, provider_class
from orchestration.providers.base import CallTimeout
from orchestration.providers.transport import HttpProvider
from orchestration.types import ChatRequest, Message
from tests.conftest import Simulator

MODEL = "sim-model"
QUESTION = "What is the capital of France?"
# The three wire formats; "openai-compatible" and "simulator" speak OpenAI's.
WIRE_KINDS = ["openai", "anthropic", "gemini"]
OPENAI_FORMAT = {"openai", "openai-compatible", "simulator"}
ROOMY = CallTimeout(total=10.0)

AdapterFactory = Callable[..., HttpProvider]


def ask(text: str = QUESTION, **options: Any) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=[Message("user", text)], **options)


def base_url(url: str, kind: str) -> str:
    return f"{url}/v1" if kind in OPENAI_FORMAT else url


@pytest.fixture
def make_adapter(simulator: Simulator) -> Iterator[AdapterFactory]:
    """Build adapters of any kind against the simulator (or ``url``). Their pooled clients
    close with the test's event loop, which is what this relies on instead of ``aclose``."""

    def make(kind: str, *, url: str | None = None, **config: Any) -> HttpProvider:
        settings = {"name": f"test-{kind}", "kind": kind, "api_key": "test-key", **config}
        adapter = provider_class(kind)(ProviderConfig(base_url=base_url(url or simulator.url, kind), **settings))
        assert isinstance(adapter, HttpProvider)
        return adapter

    yield make


@pytest.fixture(params=WIRE_KINDS)
def adapter(request: pytest.FixtureRequest, make_adapter: AdapterFactory) -> HttpProvider:
    return make_adapter(request.param)


@dataclass
class CannedUpstream:
    """A local HTTP server that answers every request with the reply set last, and keeps the
    JSON bodies it received."""

    url: str = ""
    received: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    peers: set[Any] = field(default_factory=set)  # the client addresses (one per connection)
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    end_delay_s: float = 0.0  # a pause between the body and its end, as a busy server may leave
    gzipped: bool = False  # the body sent with ``Content-Encoding: gzip``

    def reply(self, payload: Any, *, status: int = 200) -> None:
        self.status, self.body, self.content_type = status, json.dumps(payload).encode(), "application/json"

    def stream(self, frames: list[bytes]) -> None:
        self.status, self.body, self.content_type = 200, b"".join(frames), "text/event-stream"


@pytest.fixture
async def canned() -> AsyncIterator[CannedUpstream]:
    upstream = CannedUpstream()

    async def answer(request: web.Request) -> web.StreamResponse:
        upstream.received.append(json.loads(await request.read() or b"null"))
        upstream.headers.append({key.lower(): value for key, value in request.headers.items()})
        upstream.paths.append(request.path_qs)
        upstream.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        if upstream.gzipped:
            headers = {"Content-Encoding": "gzip"}
            body = gzip.compress(upstream.body)
            return web.Response(body=body, status=upstream.status, content_type=upstream.content_type, headers=headers)
        if not upstream.end_delay_s:
            return web.Response(body=upstream.body, status=upstream.status, content_type=upstream.content_type)
        response = web.StreamResponse(status=upstream.status, headers={"Content-Type": upstream.content_type})
        await response.prepare(request)
        await response.write(upstream.body)
        await asyncio.sleep(upstream.end_delay_s)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield upstream
    await runner.cleanup()


def sse(payload: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n".encode() if event else b""
    return prefix + b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"
