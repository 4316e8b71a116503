"""Hostile and careless clients against a live daphne: huge bodies, readers that never read,
bodies built to break parsers, an upstream that echoes its key. Memory stays flat, refusals come
early and in the one error shape, and nothing internal or secret reaches a client or a log."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel, Provider, RequestLog
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from tests.project.hostile import (
    LatencyProbe,
    LeavingClients,
    StalledReaders,
    oversized_chunked_upload,
    oversized_upload,
    rss_mb,
)
from tests.support import ManagedProcess, start_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

MODEL = "hostile-sim"
CAP = 100_000


@pytest.fixture
def hostile_model(transactional_db: None, simulator: Any) -> Iterator[LanguageModel]:
    """A model that may write 100,000 tokens, and a simulator that writes them as fast as it can."""
    provider = Provider.objects.create(
        name="sim", kind=Provider.Kind.SIMULATOR, base_url=simulator.url + "/v1", max_retries=0
    )
    model = LanguageModel.objects.create(
        name=MODEL, provider=provider, upstream=MODEL, max_output_tokens=CAP, cache_exact_enabled=False
    )
    simulator.configure(MODEL, max_tokens_default=CAP)
    snapshot_invalidate()
    yield model
    snapshot_invalidate()


@pytest.fixture
def secret(alice: Any, hostile_model: Any) -> str:
    return api_key_create(user=alice)[1]


@pytest.fixture
def server(transactional_db: None, simulator: Any) -> Iterator[ManagedProcess]:
    process = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, SWITCHYARD_SEND_STALL_S="3")
    yield process
    process.stop()


# --- bodies -----------------------------------------------------------------------------------------


def test_a_200_mb_body_is_refused_before_it_is_read_with_or_without_a_key(server: ManagedProcess, secret: str) -> None:
    before = rss_mb(server.pid)
    for presented in (None, secret):
        took, status, body = oversized_upload(server.url, secret=presented, declared=200 * 2**20)
        assert status == 413 and body["error"]["code"] == "request_too_large", body
        assert took < 2.0, took  # answered at once: none of the declared body was ever sent
    status, body = oversized_chunked_upload(server.url, secret=None, total=200 * 2**20)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert rss_mb(server.pid) - before < 5


HOSTILE_BODIES: dict[str, tuple[bytes, int, str]] = {
    "nested 900 deep": (
        json.dumps(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            }
        )
        .replace('"parameters": {}', '"parameters": ' + '{"a": ' * 900 + "1" + "}" * 900)
        .encode(),
        400,
        "invalid_json",
    ),
    "lone surrogate": (
        b'{"model": "hostile-sim", "messages": [{"role": "user", "content": "\\ud800"}]}',
        400,
        "invalid_unicode",
    ),
    "NaN": (
        b'{"model": "hostile-sim", "temperature": NaN, "messages": [{"role": "user", "content": "hi"}]}',
        400,
        "invalid_json",
    ),
    "huge array": (
        json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stop": ["x"] * 50_000}).encode(),
        400,
        "invalid_value",
    ),
    "10,000 messages": (
        json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}] * 10_000}).encode(),
        400,
        "array_too_long",
    ),
    "over the body limit": (
        b'{"model": "x", "messages": [], "pad": "' + b"x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}',
        413,
        "request_too_large",
    ),
    "max_tokens above the model's cap": (
        json.dumps({"model": MODEL, "max_tokens": CAP + 1, "messages": [{"role": "user", "content": "hi"}]}).encode(),
        400,
        "invalid_value",
    ),
}


@pytest.mark.parametrize("name", HOSTILE_BODIES)
def test_a_hostile_body_is_a_json_400_with_one_log_line_and_no_traceback(
    name: str, server: ManagedProcess, secret: str
) -> None:
    body, status, code = HOSTILE_BODIES[name]
    logged_before = server.log_text()
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["request_id"] == response.headers["X-Request-ID"]
    if name == "max_tokens above the model's cap":
        assert str(CAP) in error["message"] and error["param"] == "max_tokens"
    time.sleep(0.3)
    logged = server.log_text()[len(logged_before) :]
    assert "Traceback" not in logged and "Error" not in logged.replace("Bad Request", ""), logged
    assert len([line for line in logged.splitlines() if line.strip()]) <= 2, logged  # its warning, its access line


def warm_up(server: ManagedProcess, secret: str) -> None:
    """One ordinary stream first: what a first call loads (code, pools, the registry) is not growth."""
    body = {"model": MODEL, "stream": True, "max_tokens": 2000, "messages": [{"role": "user", "content": "Hi"}]}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http:
        for _ in range(3):
            assert http.post("/v1/chat/completions", json=body).status_code == 200
            assert http.get("/v1/models").status_code == 200


# --- readers that never read --------------------------------------------------------------------------


def test_ten_clients_that_never_read_leave_memory_flat_and_their_upstream_calls_closed(
    server: ManagedProcess, secret: str, simulator: Any
) -> None:
    warm_up(server, secret)
    before = rss_mb(server.pid)
    peak = [before]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(server.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    probe = LatencyProbe(server.url, secret)
    readers = StalledReaders(server.url, secret, MODEL, count=10, max_tokens=CAP)
    try:
        readers.start()
        probe.start()
        deadline = time.monotonic() + 30
        while simulator.stats(MODEL)["disconnects"] < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        probe.stop()
    finally:
        stop.set()
        watcher.join()
        readers.close()
    assert simulator.stats(MODEL)["disconnects"] == 10  # the server gave up on them, and closed the upstream calls
    assert peak[0] - before < 20, (before, peak[0])
    # Other clients are served as usual meanwhile: the median, not a tail that a busy machine's
    # scheduler sets (speed under load is the benchmarks' to measure, tests/bench/hostile.py).
    assert probe.errors == 0 and probe.p50_ms() < 100, (probe.p50_ms(), probe.p99_ms())


def test_clients_that_leave_in_a_burst_stop_their_upstream_calls_within_a_second(
    server: ManagedProcess, secret: str, simulator: Any
) -> None:
    """300 clients post a 4,000-token stream (80 s at 50 tokens/s) and reset the connection, half at
    once and half after its first 100 bytes. Each disconnect cancels its call; a few of those
    cancellations arrived as a Redis command of the call finished and were lost (Python 3.11's
    ``asyncio.wait_for``, orchestration/cancellation.py), and their calls streamed to nobody until
    daphne killed them 10 s later."""
    warm_up(server, secret)
    assert len(_statuses_logged(since=0, at_least=3)) == 3  # the warm-up's own rows
    since = RequestLog.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    simulator.reset()  # its counts start from the burst
    simulator.configure(MODEL, tokens_per_s=50, max_tokens_default=4000)
    LeavingClients(server.url, secret, MODEL, count=300, read_bytes=100).run()
    left = time.monotonic()
    deadline = left + 15
    while simulator.stats(MODEL)["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped_s = time.monotonic() - left
    upstream = simulator.stats(MODEL)
    assert upstream["requests"] > 0 and upstream["completed"] == 0, upstream
    assert stopped_s < 1.5, (stopped_s, upstream)
    # Every call is logged as cancelled, those that never reached the provider too.
    statuses = _statuses_logged(since=since, at_least=upstream["requests"])
    assert len(statuses) >= upstream["requests"] and set(statuses) == {"cancelled"}, (upstream, statuses)
    assert "took too long to shut down" not in server.log_text()


def _statuses_logged(*, since: int, at_least: int, within: float = 10.0) -> list[str]:
    """The statuses of the request log's rows after ``since`` (a pk), once there are ``at_least``
    of them or ``within`` seconds passed (the web process writes them in batches)."""
    deadline = time.monotonic() + within
    while True:
        statuses = list(RequestLog.objects.filter(pk__gt=since).values_list("status", flat=True))
        if len(statuses) >= at_least or time.monotonic() > deadline:
            return statuses
        time.sleep(0.05)


def test_a_websocket_client_that_sends_without_reading_leaves_memory_flat(server: ManagedProcess, secret: str) -> None:
    """Frames sent faster than the session takes them (it waits on a client that reads none of its
    answers) wait in the client's buffers, not the server's: 150 MB of them grew the process by
    about as much, and a few seconds more would have used up the machine's memory."""
    warm_up(server, secret)
    before = rss_mb(server.pid)
    peak, sent_mb = asyncio.run(_frames_without_reading(server, secret, megabytes=150))
    assert peak - before < 30, (before, peak)
    assert sent_mb < 150  # the server stopped reading them


async def _frames_without_reading(server: ManagedProcess, secret: str, *, megabytes: int) -> tuple[float, float]:
    """Send pings, then 60 KB frames, reading nothing: (the server's peak RSS in MB, MB sent)."""
    url = server.url.replace("http://", "ws://") + "/ws/agents/"
    headers = {"Authorization": f"Bearer {secret}"}
    frame = json.dumps({"type": "ping", "pad": "x" * 60_000})
    peak, sent = rss_mb(server.pid), 0
    options: dict[str, Any] = {"max_queue": 1, "ping_interval": None, "open_timeout": 10, "close_timeout": 1}
    async with connect(url, additional_headers=headers, **options) as ws:
        ws.transport.pause_reading()  # not one answer is read
        try:
            for _ in range(30_000):  # answers enough to fill every buffer between the session and this client
                await ws.send('{"type": "ping"}')
            while sent * len(frame) < megabytes * 10**6:
                await asyncio.wait_for(ws.send(frame), timeout=10)
                sent += 1
                if sent % 20 == 0:
                    peak = max(peak, rss_mb(server.pid))
        except (ConnectionClosed, TimeoutError):
            pass  # the server disconnected a client that read nothing (SWITCHYARD_SEND_STALL_S)
    return max(peak, rss_mb(server.pid)), sent * len(frame) / 10**6


# --- what reaches clients and logs ----------------------------------------------------------------------


def test_an_upstream_that_echoes_its_key_reaches_neither_the_client_nor_the_log(
    transactional_db: None, simulator: Any, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider_key = "sk-test-4f9a8b7c6d5e1b2c"
    provider = Provider.objects.create(
        name="echoing", kind=Provider.Kind.OPENAI_COMPATIBLE, base_url=simulator.url + "/v1",
        api_key_env="ECHO_PROVIDER_API_KEY", max_retries=0,
    )  # fmt: skip
    LanguageModel.objects.create(name="echo-sim", provider=provider, upstream="echo-sim", cache_exact_enabled=False)
    simulator.configure("echo-sim", error_status=401, error_echoes_key=True)
    secret = api_key_create(user=alice)[1]
    process = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, ECHO_PROVIDER_API_KEY=provider_key)
    try:
        body = {"model": "echo-sim", "messages": [{"role": "user", "content": "hi"}]}
        answered = httpx.post(
            f"{process.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30
        )
        streamed = httpx.post(
            f"{process.url}/v1/chat/completions",
            json={**body, "stream": True},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
        time.sleep(1.0)  # the request log is written in batches
        logged = process.log_text()
    finally:
        process.stop()
    requestlog_flush()
    details = " ".join(RequestLog.objects.values_list("error_detail", flat=True))
    for text in (answered.text, streamed.text, logged, details):
        assert "4f9a8b7c6d5e1b2c" not in text and "********1b2c" not in text and "sk-test-" not in text, text
    assert answered.status_code in (502, 503) and answered.json()["error"]["code"].startswith("upstream")
    assert "simulator" not in answered.text.lower() and "echoing" not in answered.text
    assert "[redacted]" in details and "401" in details  # staff still read what happened
    assert Decimal(0) == sum((row.cost_usd for row in RequestLog.objects.all()), Decimal(0))


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/conversations", "/api/v1/conversations/1/messages"])
def test_a_body_over_the_limit_is_a_json_413_at_every_door(server: ManagedProcess, secret: str, path: str) -> None:
    for headers in ({"Authorization": f"Bearer {secret}"}, {}):
        response = httpx.post(
            f"{server.url}{path}",
            content=b'{"input": "' + b"x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}',
            headers={**headers, "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_a_413_on_v1_carries_openai_processing_ms(server: ManagedProcess, secret: str) -> None:
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b'{"model": "' + b"x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}',
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert response.headers["openai-processing-ms"] == "0"
    assert response.headers["X-Request-ID"] == response.json()["error"]["request_id"]


def test_an_unknown_api_url_and_a_server_error_page_are_json(server: ManagedProcess, secret: str) -> None:
    missing = httpx.get(f"{server.url}/api/v1/nothing-here", headers={"Authorization": f"Bearer {secret}"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert missing.json()["error"]["request_id"] == missing.headers["X-Request-ID"]
