"""Clients that never read, measured against a live server: ten clients each start a 100,000-token
stream and read nothing for 20 s, while another client calls ``/v1/models`` every 50 ms.

Run ``python -m tests.bench hostile``; ``SWITCHYARD_BENCH_CHECKOUT=/path/to/another/checkout`` serves
the same from another version of Switchyard, for a before/after on one machine. Reported: the web
process's resident memory before, at its peak and at the end; the other client's p50/p99 latency;
and how many of the ten upstream calls the server closed (the simulator counts the disconnects).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.bench.environment import bench_model_and_key, bench_server, bench_simulator, server_error
from tests.project.hostile import LatencyProbe, StalledReaders, rss_mb
from tests.support import ROOT

MODEL = "hostile-bench-sim"
CAP = 100_000
READERS = 10
WATCH_S = 20.0
STALL_S = "5"


def _stats(simulator_url: str) -> dict[str, int]:
    import httpx

    models = httpx.get(f"{simulator_url}/_sim/stats").json()["models"]
    return dict(models.get(MODEL, {"disconnects": 0, "completed": 0}))


def run() -> dict[str, str]:
    checkout = Path(os.environ.get("SWITCHYARD_BENCH_CHECKOUT") or ROOT)
    simulator = bench_simulator()
    secret = bench_model_and_key(
        simulator.url,
        MODEL,
        username="hostile-bench",
        model_fields={"max_output_tokens": CAP},
        behaviour={"max_tokens_default": CAP},
    )
    server = bench_server(checkout, simulator.url, SWITCHYARD_SEND_STALL_S=STALL_S)
    try:
        figures = {"server checkout": str(checkout), **_measure(server.url, server.pid, secret, simulator.url)}
        return {**figures, **server_error(server)}
    finally:
        server.stop()


def _measure(url: str, pid: int, secret: str, simulator_url: str) -> dict[str, str]:
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http:
        for _ in range(3):  # what a first call loads is not growth
            http.post(
                "/v1/chat/completions",
                json={"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": "Hi"}]},
            )
    before = rss_mb(pid)
    peak = [before]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    probe = LatencyProbe(url, secret)
    readers = StalledReaders(url, secret, MODEL, count=READERS, max_tokens=CAP)
    disconnects_before = _stats(simulator_url).get("disconnects", 0)
    readers.start()
    probe.start()
    time.sleep(WATCH_S)
    probe.stop()
    stop.set()
    watcher.join()
    end = rss_mb(pid)
    closed = _stats(simulator_url).get("disconnects", 0) - disconnects_before
    readers.close()
    calls = f"{len(probe.latencies_ms)} calls, {probe.errors} failed"
    return {
        "RSS before / peak / after (MB)": f"{before:.0f} / {peak[0]:.0f} / {end:.0f} (growth {peak[0] - before:.1f})",
        "other requests p50 / p99 (ms)": f"{probe.p50_ms():.1f} / {probe.p99_ms():.1f} ({calls})",
        "upstream calls the server closed, of 10": str(closed),
    }
