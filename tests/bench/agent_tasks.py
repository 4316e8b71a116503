"""Agent tasks: how fast ``POST /api/v1/tasks`` answers, how soon an idle worker picks a task up,
and whether many short tasks through two workers all finish exactly once.

Against one daphne process, real RQ worker processes and the simulator (a short unscripted agent:
one model call, no tools). Figures:
- POST /api/v1/tasks ms p50/p99 (sequential, keep-alive client, no worker competing for CPU),
  and the same for polling one task (GET /api/v1/tasks/{id});
- pickup ms p50/p99: from the task row's creation to its claim by an idle worker (commit,
  enqueue, dequeue, fork of the work horse, claim), one task at a time;
- N tasks through 2 workers: completed/lost/run-twice (a task claimed more than once, or more
  model calls than tasks), wall time, tasks per second.
Targets (issue): POST p50 < 10 ms, pickup p50 < 100 ms, none lost or run twice.

``python -m tests.bench agent_tasks`` runs the defaults (200 POSTs, 50 pickups, 1,000 tasks, about
six minutes here; ``AGENT_BENCH_TASKS`` overrides the number of tasks);
``python -m tests.bench.agent_tasks --posts 100 --pickups 20 --tasks 200`` runs a smaller one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from tests.bench.environment import bench_model_and_key

MODEL = "bench-agent"


def percentiles(values: list[float]) -> str:
    """Median and p99 of ``values`` as "p50 / p99" (shared with the WebSocket bench)."""
    if not values:
        return "n/a"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.1f} / {p99:.1f}"


def bench_agent_key(
    simulator_url: str, *, model: str = MODEL, username: str = "bench-agents", behaviour: dict[str, Any] | None = None
) -> str:
    """Register ``model`` on the simulator for the agents and return an API key for ``username``."""
    return bench_model_and_key(
        simulator_url,
        model,
        username=username,
        model_fields={"capabilities": ["chat", "tools"]},
        behaviour=behaviour or {"max_tokens_default": 20},
    )


def _post(client: Any, text: str) -> str:
    response = client.post("/api/v1/tasks", json={"agent": "research-assistant", "input": text, "model": MODEL})
    if response.status_code != 202:
        raise RuntimeError(f"POST /api/v1/tasks answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["id"])


def _timed(call: Any, count: int) -> list[float]:
    """Milliseconds of each of ``count`` calls of ``call(number)``, after five warm-up calls."""
    for warmup in range(5):
        call(warmup)
    latencies = []
    for number in range(count):
        started = time.perf_counter()
        call(number)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _poll(client: Any, task_id: str) -> None:
    response = client.get(f"/api/v1/tasks/{task_id}")
    if response.status_code != 200:
        raise RuntimeError(f"GET /api/v1/tasks/{{id}} answered {response.status_code}: {response.text[:300]}")


def _wait_finished(task_ids: list[str], timeout: float) -> None:
    from agents.models import Task

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Task.objects.filter(pk__in=task_ids, status__in=Task.UNFINISHED).exists():
            return
        time.sleep(0.02)


def _pickups(client: Any, count: int) -> list[float]:
    from agents.models import Task

    delays = []
    for number in range(count):
        task_id = _post(client, f"Pickup {number}")
        _wait_finished([task_id], timeout=30)
        task = Task.objects.get(pk=task_id)
        if task.started_at is not None:
            delays.append((task.started_at - task.created_at).total_seconds() * 1000)
        time.sleep(0.05)  # the worker is idle again: blocked on its queue
    return delays


def _throughput(client: Any, simulator: Any, count: int) -> dict[str, object]:
    import httpx

    from agents.models import Task

    httpx.post(f"{simulator.url}/_sim/stats/reset").raise_for_status()
    started = time.perf_counter()
    task_ids = [_post(client, f"Short task {number}") for number in range(count)]
    _wait_finished(task_ids, timeout=max(120.0, count * 0.5))
    wall = time.perf_counter() - started
    tasks = Task.objects.filter(pk__in=task_ids)
    calls = httpx.get(f"{simulator.url}/_sim/stats").json()["models"].get(MODEL, {}).get("requests", 0)
    completed = tasks.filter(status=Task.Status.COMPLETED).count()
    return {
        f"{count} tasks through 2 workers: completed": f"{completed}/{count}",
        "lost (not finished)": tasks.filter(status__in=Task.UNFINISHED).count(),
        "failed": tasks.filter(status=Task.Status.FAILED).count(),
        "claimed more than once": tasks.filter(attempts__gt=1).count(),
        "model calls (must equal tasks)": calls,
        "wall s (submit to last finish)": round(wall, 1),
        "tasks per s": round(count / wall, 1),
    }


def run(posts: int = 200, pickups: int = 50, tasks: int | None = None) -> dict[str, object]:
    """The benchmark, in a process where Django is already set up on scratch state."""
    tasks = tasks or int(os.environ.get("AGENT_BENCH_TASKS", "1000"))
    import httpx
    from django.db import connection

    from tests.bench.environment import bench_simulator
    from tests.support import start_web, start_worker

    simulator = bench_simulator()
    secret = bench_agent_key(simulator.url)
    connection.close()
    server = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, LOG_LEVEL="WARNING")
    workers = []
    try:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        posted = _timed(lambda number: _post(client, f"Benchmark question {number}"), posts)
        task_id = _post(client, "Polled")
        polled = _timed(lambda _: _poll(client, task_id), posts)
        figures: dict[str, object] = {
            "POST /api/v1/tasks ms p50/p99": percentiles(posted),
            "GET /api/v1/tasks/{id} ms p50/p99": percentiles(polled),
        }
        from agents.models import Task
        from agents.services import agents_queue

        # The POSTs' tasks: no worker is to run them (nor the reaper to queue them again).
        agents_queue().empty()
        Task.objects.filter(status=Task.Status.PENDING).update(status=Task.Status.CANCELLED)
        workers.append(start_worker("agents", LOG_LEVEL="WARNING"))
        _pickups(client, 3)  # the worker has started and warmed up (the first waits for its start)
        figures["pickup by an idle worker ms p50/p99"] = percentiles(_pickups(client, pickups))
        workers.append(start_worker("agents", LOG_LEVEL="WARNING"))
        time.sleep(3)
        figures.update(_throughput(client, simulator, tasks))
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--pickups", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args(argv)
    from tests.bench.environment import bench_environment

    bench_environment()
    for name, value in run(args.posts, args.pickups, args.tasks).items():
        print(f"{name}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
