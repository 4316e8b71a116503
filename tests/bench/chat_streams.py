"""Many concurrent chat streams on ONE server process, from a simulator at 20 tokens/s and 50 ms TTFT.

Each stream is a real client: POST a message (API key), then read ``/api/v1/messages/{id}/stream``
over its own connection until ``done``. Starts are spread over a short ramp so the listen backlog
is not what is measured; replies are long enough that every stream is open at the peak.

Figures: how many completed; time to first token as the client sees it (from sending the POST)
and what Switchyard adds to it (that minus the simulator's 50 ms); the POST's own latency; the
server's peak RSS; its CPU time per streamed token. Targets (issue): all complete, added TTFT
p99 < 50 ms, peak RSS < 250 MB.

Side by side, first: the same streams straight to the simulator (OpenAI's streaming API, no
Switchyard), with the CPU the simulator and this client spend on them. The machine's cores are
shared by all three processes; what those two use is what the server cannot have.

``python -m tests.bench chat_streams`` runs the default (1,000 streams; ``CHAT_BENCH_STREAMS``
overrides); ``python -m tests.bench.chat_streams --streams 200`` runs a smaller one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.bench.environment import RssWatch, bench_model_and_key, server_error

MODEL = "bench-chat"
UPSTREAM_TTFT_MS = 50
TOKENS_PER_S = 20


@dataclass
class StreamResult:
    ok: bool = False
    post_ms: float = 0.0
    ttft_ms: float | None = None
    events: int = 0  # token events (one may carry several tokens)
    tokens: int = 0  # tokens streamed, as the done event counts them
    end: str = ""


def _setup(simulator_url: str, reply_tokens: int) -> str:
    behaviour = {"ttft_ms": UPSTREAM_TTFT_MS, "tokens_per_s": TOKENS_PER_S, "reply": " ".join(["tok"] * reply_tokens)}
    return bench_model_and_key(
        simulator_url, MODEL, username="bench-chat", model_fields={"tokens_per_second": 20}, behaviour=behaviour
    )


@dataclass
class Progress:
    """What every client has seen so far, for the steady-state figure."""

    flowing: int = 0  # streams that had their first token and not yet their end
    tokens: int = 0  # tokens received by all clients (counted in the deltas' text)


@dataclass
class SteadyWindow:
    """Server CPU and tokens received while every stream flows: first and last sample."""

    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None

    def per_token_us(self) -> float | None:
        if self.first is None or self.last is None or self.last[1] <= self.first[1]:
            return None
        return (self.last[0] - self.first[0]) / (self.last[1] - self.first[1]) * 1e6


async def _steady_watch(server: Any, progress: Progress, streams: int, window: SteadyWindow) -> None:
    while True:
        if progress.flowing == streams:
            sample = (sum(server.cpu_times()[:2]), progress.tokens)
            window.first = window.first or sample
            window.last = sample
        elif window.first is not None:
            return
        await asyncio.sleep(0.25)


async def _one_stream(session: Any, base: str, conversation_id: int, delay: float, progress: Progress) -> StreamResult:
    await asyncio.sleep(delay)
    result = StreamResult()
    started = time.perf_counter()
    async with session.post(
        f"{base}/api/v1/conversations/{conversation_id}/messages", json={"content": "Stream me a reply."}
    ) as response:
        posted = await response.json()
        if response.status != 201:
            result.end = f"POST {response.status}: {posted}"
            return result
    result.post_ms = (time.perf_counter() - started) * 1000
    async with session.get(base + posted["stream_url"]) as response:
        event = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "token":
                result.events += 1
                progress.tokens += line.count("tok")
                if result.ttft_ms is None:
                    result.ttft_ms = (time.perf_counter() - started) * 1000
                    progress.flowing += 1
            elif line.startswith("data: ") and event in ("done", "error"):
                result.end = event if event == "done" else line
                done = json.loads(line[6:]) if event == "done" else {}
                result.ok = done.get("status") == "complete"
                result.tokens = done.get("usage", {}).get("output_tokens", 0)
                break
    if result.ttft_ms is not None:
        progress.flowing -= 1
    return result


async def _conversations(session: Any, base: str, count: int) -> list[int]:
    async def create() -> int:
        async with session.post(f"{base}/api/v1/conversations", json={"model": MODEL}) as response:
            return int((await response.json())["id"])

    ids: list[int] = []
    for start in range(0, count, 50):
        ids += await asyncio.gather(*(create() for _ in range(min(50, count - start))))
    return ids


async def _direct_stream(session: Any, url: str, delay: float) -> int:
    await asyncio.sleep(delay)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Stream me a reply."}], "stream": True}
    chunks = 0
    async with session.post(url, json=body) as response:
        async for line in response.content:
            chunks += line.startswith(b"data: {")
    return chunks


async def _direct(simulator: Any, streams: int, ramp_s: float) -> dict[str, object]:
    """The same streams straight to the simulator: the CPU it and this client need on their own."""
    import aiohttp
    import psutil

    connector = aiohttp.TCPConnector(limit=streams + 50)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        process = psutil.Process(simulator.pid)
        simulator_before, client_before = sum(process.cpu_times()[:2]), time.process_time()
        started = time.perf_counter()
        url = f"{simulator.url}/v1/chat/completions"
        chunks = await asyncio.gather(*(_direct_stream(session, url, ramp_s * i / streams) for i in range(streams)))
        wall = time.perf_counter() - started
        simulator_cpu = sum(process.cpu_times()[:2]) - simulator_before
        client_cpu = time.process_time() - client_before
    return {
        "direct: chunks streamed, wall s": f"{sum(chunks)}, {wall:.1f}",
        "direct: simulator CPU s / client CPU s (cores used)": (
            f"{simulator_cpu:.1f} / {client_cpu:.1f} ({(simulator_cpu + client_cpu) / wall:.2f} of {os.cpu_count()})"
        ),
    }


async def _drive(base: str, secret: str, streams: int, ramp_s: float, pid: int) -> dict[str, Any]:
    import aiohttp
    import psutil

    connector = aiohttp.TCPConnector(limit=streams + 50)
    timeout = aiohttp.ClientTimeout(total=300)
    headers = {"Authorization": f"Bearer {secret}"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        conversation_ids = await _conversations(session, base, streams)
        server = psutil.Process(pid)
        progress, window = Progress(), SteadyWindow()
        watch = asyncio.ensure_future(_steady_watch(server, progress, streams, window))
        cpu_before, client_before = server.cpu_times(), time.process_time()
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                _one_stream(session, base, cid, ramp_s * i / streams, progress)
                for i, cid in enumerate(conversation_ids)
            ),
            return_exceptions=True,
        )
        wall = time.perf_counter() - started
        cpu_after, client_cpu = server.cpu_times(), time.process_time() - client_before
        watch.cancel()
    user, system = cpu_after.user - cpu_before.user, cpu_after.system - cpu_before.system
    return {
        "results": results,
        "wall_s": wall,
        "cpu_s": user + system,
        "user_s": user,
        "system_s": system,
        "steady_us": window.per_token_us(),
        "client_cpu_s": client_cpu,
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _figures(run: dict[str, Any], streams: int, peak_rss: int) -> dict[str, object]:
    results = [r for r in run["results"] if isinstance(r, StreamResult)]
    failures = [r for r in run["results"] if not isinstance(r, StreamResult)] + [r for r in results if not r.ok]
    ttft = [r.ttft_ms for r in results if r.ttft_ms is not None]
    added = [t - UPSTREAM_TTFT_MS for t in ttft]
    post = [r.post_ms for r in results if r.post_ms]
    after_post = [r.ttft_ms - r.post_ms for r in results if r.ttft_ms is not None]
    tokens = sum(r.tokens for r in results)
    events = sum(r.events for r in results)
    return {
        "streams completed": f"{sum(r.ok for r in results)}/{streams}",
        "failures (first 3)": [str(f.end if isinstance(f, StreamResult) else repr(f)) for f in failures[:3]] or "none",
        "client TTFT ms p50/p99": f"{statistics.median(ttft):.1f} / {_percentile(ttft, 0.99):.1f}" if ttft else "n/a",
        "TTFT added by Switchyard ms p50/p99 (client TTFT - 50 ms upstream)": (
            f"{statistics.median(added):.1f} / {_percentile(added, 0.99):.1f}" if added else "n/a"
        ),
        "POST message ms p50/p99": f"{statistics.median(post):.1f} / {_percentile(post, 0.99):.1f}" if post else "n/a",
        "first token after the POST answered ms p50/p99": (
            f"{statistics.median(after_post):.1f} / {_percentile(after_post, 0.99):.1f}" if after_post else "n/a"
        ),
        "tokens streamed": tokens,
        "token events": events,
        "wall s": round(run["wall_s"], 2),
        "server peak RSS MB": round(peak_rss / 2**20, 1),
        "server CPU s (user + system)": f"{run['cpu_s']:.2f} ({run['user_s']:.2f} + {run['system_s']:.2f})",
        "server CPU µs per streamed token": round(run["cpu_s"] / tokens * 1e6, 1) if tokens else "n/a",
        "server CPU ms per stream (all of it: POST, stream, tokens, settle)": round(run["cpu_s"] / streams * 1e3, 1),
        "server CPU µs per token while every stream flows": (
            round(run["steady_us"], 1) if run["steady_us"] is not None else "n/a (never all flowing at once)"
        ),
    }


def run(streams: int | None = None, reply_tokens: int = 100, ramp_s: float = 2.0) -> dict[str, object]:
    """The benchmark, in a process where Django is already set up on scratch state."""
    from django.db import connection

    from tests.support import start_simulator, start_web

    streams = streams or int(os.environ.get("CHAT_BENCH_STREAMS", "1000"))
    simulator = start_simulator()
    server = None
    watch: RssWatch | None = None
    try:
        secret = _setup(simulator.url, reply_tokens)
        connection.close()
        direct = asyncio.run(_direct(simulator, streams, ramp_s))
        server = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, LOG_LEVEL="WARNING")
        watch = RssWatch(server.pid)
        watcher = threading.Thread(target=watch.run, daemon=True)
        watcher.start()
        outcome = asyncio.run(_drive(server.url, secret, streams, ramp_s, server.pid))
    finally:
        if watch is not None:
            watch.stop.set()
        if server is not None:
            server.stop()
        simulator.stop()
    assert watch is not None and server is not None
    return {
        "streams": streams,
        "reply tokens": reply_tokens,
        **direct,
        **_figures(outcome, streams, watch.peak),
        "bench client CPU s during the run": round(outcome["client_cpu_s"], 1),
        **server_error(server),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--reply-tokens", type=int, default=100)
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which the streams start")
    args = parser.parse_args(argv)
    from tests.bench.environment import bench_environment

    bench_environment()
    for name, value in run(args.streams, args.reply_tokens, args.ramp).items():
        print(f"{name}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
