"""Many concurrent interactive agent sessions on ONE server process (``/ws/agents/``).

Each session is a real WebSocket client (``websockets``) with an API key: it starts a short
scripted agent (one thought, one calculator call, the answer; the simulator answers each model
call after 200 ms) and reads its frames until ``complete``. Ten sessions warm the server up first
(first imports, connection pools); they are not counted. Every session stays connected until
all have finished, so all N are open at the peak. Frames carry ``at``, the moment the agent's
callback produced them; the client subtracts it from its receive time (same host clock).

Figures: sessions completed; callback-to-client latency p50/p99 of the log frames (thought,
action, tool_result: sent before their log row is written) and of ``complete`` (sent after the
task row is finished); the server's RSS before, at the peak and after the sessions closed.
Target (issue): all complete, p99 < 20 ms, memory reported.

``python -m tests.bench agent_ws`` runs 500 sessions started over 20 s, 25 per second
(``AGENT_WS_BENCH_SESSIONS`` overrides the number); ``python -m tests.bench.agent_ws --sessions 500
--ramp 5`` starts them faster (one process saturates above about 50 new sessions per second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.bench.agent_tasks import bench_agent_key, percentiles
from tests.bench.environment import RssWatch, server_error

MODEL = "bench-agent-ws"
UPSTREAM_LATENCY_MS = 200
SESSION_TIMEOUT_S = 120
WARM_UP_SESSIONS = 10
SCRIPT = [
    {"content": "Let me compute that.", "tool_calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}]},
    {"content": "It is 42."},
]


@dataclass
class SessionResult:
    ok: bool = False
    frame_ms: list[float] = field(default_factory=list)
    complete_ms: float | None = None
    end: str = ""


def _setup(simulator_url: str) -> str:
    behaviour = {"latency_ms": UPSTREAM_LATENCY_MS, "script": SCRIPT}
    return bench_agent_key(simulator_url, model=MODEL, username="bench-agent-ws", behaviour=behaviour)


def _lateness_ms(frame: dict[str, Any], received: float) -> float:
    return (received - datetime.fromisoformat(frame["at"]).timestamp()) * 1000


class Finished:
    """Counts finished conversations; every session stays connected until all have finished."""

    def __init__(self, sessions: int) -> None:
        self.left = sessions
        self.all = asyncio.Event()

    def one(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.all.set()


async def _one_session(url: str, secret: str, delay: float, finished: Finished) -> SessionResult:
    await asyncio.sleep(delay)
    result = SessionResult()
    counted = False

    def done() -> None:
        nonlocal counted
        if not counted:
            counted = True
            finished.one()

    try:
        async with asyncio.timeout(SESSION_TIMEOUT_S):
            await _converse(url, secret, result, done, finished.all)
    except TimeoutError:
        result.end = result.end or f"no complete within {SESSION_TIMEOUT_S} s after {len(result.frame_ms)} frames"
    finally:
        done()
    return result


async def _converse(url: str, secret: str, result: SessionResult, done: Any, all_done: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {secret}"}
    async with connect(url, additional_headers=headers, open_timeout=120, ping_interval=None) as ws:
        await ws.recv()  # session
        start = {"type": "start_task", "agent": "research-assistant", "input": "6*7?", "model": MODEL}
        await ws.send(json.dumps(start))
        while True:
            frame = json.loads(await ws.recv())
            received = time.time()
            if frame["type"] == "complete":
                result.complete_ms, result.ok, result.end = _lateness_ms(frame, received), True, "complete"
                break
            if frame["type"] == "error":
                result.end = f"{frame['code']}: {frame['message']}"
                break
            result.frame_ms.append(_lateness_ms(frame, received))
        done()
        await all_done.wait()  # stay connected until every session finished: all N open at the peak


async def _loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late this (client) process's event loop wakes from a 10 ms sleep: the share of the
    measured latency that is the benchmark's own, not the server's."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append((time.perf_counter() - asked - 0.01) * 1000)


async def _drive(url: str, secret: str, sessions: int, ramp_s: float, watch: RssWatch) -> dict[str, Any]:
    finished = Finished(sessions)
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_loop_lag(lags, stop))
    started = time.perf_counter()
    runs = [_one_session(url, secret, ramp_s * i / sessions, finished) for i in range(sessions)]
    results = await asyncio.gather(*runs, return_exceptions=True)
    wall = time.perf_counter() - started
    stop.set()
    await ticker
    await asyncio.sleep(2)  # the server lets the closed sessions go
    return {"results": results, "wall_s": wall, "rss_after": watch.rss(), "client_lag": lags}


def _figures(run: dict[str, Any], sessions: int, watch: RssWatch, rss_before: int) -> dict[str, object]:
    results = [r for r in run["results"] if isinstance(r, SessionResult)]
    errors = [repr(r) for r in run["results"] if not isinstance(r, SessionResult)]
    failures = errors + [r.end for r in results if not r.ok]
    frames = [ms for r in results for ms in r.frame_ms]
    completes = [r.complete_ms for r in results if r.complete_ms is not None]
    mb = 2**20
    return {
        "sessions completed": f"{sum(r.ok for r in results)}/{sessions}",
        "failures (first 3)": failures[:3] or "none",
        "log frames (thought/action/tool_result): callback-to-client ms p50/p99": percentiles(frames),
        "complete frame: callback-to-client ms p50/p99": percentiles(completes),
        "client's own event-loop lag ms p50/p99": percentiles(run["client_lag"]),
        "wall s": round(run["wall_s"], 1),
        "server RSS MB before / peak / after close": (
            f"{rss_before / mb:.0f} / {watch.peak / mb:.0f} / {run['rss_after'] / mb:.0f}"
        ),
        "server RSS KB per open session (peak - before)": round((watch.peak - rss_before) / 1024 / sessions, 1),
    }


def run(sessions: int | None = None, ramp_s: float = 20.0) -> dict[str, object]:
    """The benchmark, in a process where Django is already set up on scratch state."""
    from django.db import connection

    from tests.bench.environment import bench_simulator
    from tests.support import start_web

    sessions = sessions or int(os.environ.get("AGENT_WS_BENCH_SESSIONS", "500"))
    simulator = bench_simulator()
    secret = _setup(simulator.url)
    connection.close()
    server = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, LOG_LEVEL="WARNING")
    watch = RssWatch(server.pid)
    try:
        url = server.url.replace("http://", "ws://") + "/ws/agents/"
        asyncio.run(_drive(url, secret, WARM_UP_SESSIONS, 0.5, watch))  # first imports and pools
        rss_before = watch.rss()
        watcher = threading.Thread(target=watch.run, daemon=True)
        watcher.start()
        outcome = asyncio.run(_drive(url, secret, sessions, ramp_s, watch))
    finally:
        watch.stop.set()
        server.stop()
    return {
        "sessions": sessions,
        "start ramp s": ramp_s,
        **_figures(outcome, sessions, watch, rss_before),
        **server_error(server),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--ramp", type=float, default=20.0, help="seconds over which the sessions start")
    args = parser.parse_args(argv)
    from tests.bench.environment import bench_environment

    bench_environment()
    for name, value in run(args.sessions, args.ramp).items():
        print(f"{name}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
