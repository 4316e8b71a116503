"""The Orchestrator's own cost per call: orchestrated vs direct adapter calls to a zero-latency simulator.

Both paths send the same requests (a different question each time, temperature 0.7, so no
cache answers) to the same simulator; the orchestrated path adds routing, the Redis breaker
(admission and outcome: two round trips), retry bookkeeping, cost, metrics and the request log.
Calls alternate so that drift in the simulator's speed hits both sides alike. Wall-clock figures
move with the machine's load (the simulator shares the CPU); the CPU-time figure counts only this
process's work. Target: median overhead under 1 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

CALLS = 1500
WARMUP = 100
MODEL = "bench-model"


def _registry(simulator_url: str) -> None:
    from orchestration.models import LanguageModel, Provider
    from orchestration.registry import snapshot_invalidate

    provider, _ = Provider.objects.update_or_create(
        name="bench-sim", defaults={"kind": Provider.Kind.SIMULATOR, "base_url": simulator_url + "/v1"}
    )
    LanguageModel.objects.update_or_create(
        name=MODEL, defaults={"provider": provider, "upstream": MODEL, "input_per_mtok": 1, "output_per_mtok": 2}
    )
    snapshot_invalidate()


def _request(number: int) -> Any:
    from orchestration.types import ChatRequest, Message

    return ChatRequest(
        model=MODEL,
        messages=[Message(role="user", content=f"Question number {number}?")],
        temperature=0.7,
        max_tokens=16,
    )


async def _measure() -> dict[str, object]:
    from dataclasses import replace

    from orchestration.deadlines import Deadline, call_timeout
    from orchestration.orchestrator import CallContext, Orchestrator
    from orchestration.providers import provider_for
    from orchestration.registry import asnapshot
    from orchestration.requestlog import requestlog_flush

    snap = await asnapshot()
    route, settings = snap.models[MODEL], snap.providers["bench-sim"]
    adapter = provider_for(settings.config)
    orchestrator = Orchestrator()

    async def direct(number: int) -> tuple[float, float]:
        request = _request(number)
        started, cpu = time.perf_counter(), time.process_time()
        timeout = call_timeout(Deadline.after(30.0), request, route, settings, stream=False)
        await adapter.complete(replace(request, model=route.upstream), timeout=timeout)
        return time.perf_counter() - started, time.process_time() - cpu

    async def orchestrated(number: int) -> tuple[float, float]:
        """Wall time until the answer; CPU time including the breaker's background update."""
        started, cpu = time.perf_counter(), time.process_time()
        await orchestrator.complete(_request(number), CallContext(endpoint="completion", request_id=f"bench-{number}"))
        wall = time.perf_counter() - started
        await orchestrator.drain()
        return wall, time.process_time() - cpu

    for number in range(WARMUP):
        await direct(number)
        await orchestrated(number)
    direct_s, orchestrated_s = [], []
    for number in range(WARMUP, WARMUP + CALLS):
        # Alternate which side goes first, so neither always follows the other.
        if number % 2:
            direct_s.append(await direct(number))
            orchestrated_s.append(await orchestrated(number))
        else:
            orchestrated_s.append(await orchestrated(number))
            direct_s.append(await direct(number))
    flush_started = time.perf_counter()
    await asyncio.to_thread(requestlog_flush, 60.0)
    flush_s = time.perf_counter() - flush_started
    await orchestrator.aclose()
    await adapter.aclose()
    return _figures(direct_s, orchestrated_s, flush_s)


def _figures(
    direct: list[tuple[float, float]], orchestrated: list[tuple[float, float]], flush_s: float
) -> dict[str, object]:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.3f} ms"

    direct_s, orchestrated_s = [wall for wall, _ in direct], [wall for wall, _ in orchestrated]
    paired = [o - d for d, o in zip(direct_s, orchestrated_s, strict=True)]
    overhead = statistics.median(orchestrated_s) - statistics.median(direct_s)
    cpu_overhead = statistics.median(cpu for _, cpu in orchestrated) - statistics.median(cpu for _, cpu in direct)
    return {
        "calls": len(direct_s),
        "direct_median": ms(statistics.median(direct_s)),
        "orchestrated_median": ms(statistics.median(orchestrated_s)),
        "direct_p95": ms(statistics.quantiles(direct_s, n=20)[-1]),
        "orchestrated_p95": ms(statistics.quantiles(orchestrated_s, n=20)[-1]),
        "median_overhead": ms(overhead),
        "median_paired_overhead": ms(statistics.median(paired)),
        # CPU time of this process only (the breaker's background update included): what the
        # Orchestrator itself burns, much less affected by a busy machine than wall time.
        "median_cpu_overhead": ms(cpu_overhead),
        "target": "median overhead < 1 ms: " + ("met" if overhead < 0.001 else "NOT met"),
        "request_log_flush_after_run": ms(flush_s),
    }


def run() -> dict[str, object]:
    from tests.bench.environment import bench_simulator

    simulator = bench_simulator()
    httpx.put(f"{simulator.url}/_sim/models/{MODEL}", json={"latency_ms": 0, "ttft_ms": 0, "tokens_per_s": 0})
    _registry(simulator.url)
    return asyncio.run(_measure())
