"""What waking from idle costs on this machine, and whether that cost takes anything from other work.

The streaming bench found a stream that arrives alone charged with about four times the CPU of one
in a burst, on every server alike, the bare relays included (docs/benchmarks.md, "Lone streams").
A lone stream's event loop goes idle and wakes several times per stream. This measures that wake
alone, on the server core (``taskset``), with nothing of Switchyard's:

- **per wake, core idle**: a process that waits in ``epoll`` with a 1 ms timeout, over and over,
  on an otherwise idle core: its CPU time per wake;
- **per wake, core busy**: the same while a CPU-bound process shares its core;
- **asyncio timer wake**: an event loop that sleeps 1 ms at a time, per wake (the loop's own turn
  included);
- **capacity taken**: the CPU-bound process's work done in 2 s with the waking process beside it on
  its core, against alone, rounds alternating; the median of the rounds' ratios.

A wake that costs a few microseconds on a bare machine costs tens of microseconds on this virtual
one. The part charged on an idle core beyond the busy figure is the virtual CPU's way back from
idle, charged to whoever wakes; the rest is taken from whatever else runs on the core, as the
capacity figure shows.

    python -m tests.bench idle_wake
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

CORE = 0
WAKES = 2000
CRUNCH_S = 2.0
ROUNDS = 9

_WAKER = """
import json, select, sys, time
epoll = select.epoll()
count, cpu = int(sys.argv[1]), time.process_time()
for _ in range(count):
    epoll.poll(0.001)
print(json.dumps({"us_per_wake": (time.process_time() - cpu) / count * 1e6}))
"""

_ASYNCIO_WAKER = """
import asyncio, json, sys, time
async def main(count):
    for _ in range(20):
        await asyncio.sleep(0.001)
    cpu = time.process_time()
    for _ in range(count):
        await asyncio.sleep(0.001)
    return (time.process_time() - cpu) / count * 1e6
print(json.dumps({"us_per_wake": asyncio.run(main(int(sys.argv[1])))}))
"""

_CRUNCHER = """
import json, sys, time
until, done = time.perf_counter() + float(sys.argv[1]), 0
while time.perf_counter() < until:
    sum(range(2000))
    done += 1
print(json.dumps({"done": done}))
"""


def _pinned(script: str, *args: str) -> list[str]:
    return ["taskset", "-c", str(CORE), sys.executable, "-c", script, *args]


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=60)
    return dict(json.loads(out))


def _run(script: str, *args: str) -> dict[str, Any]:
    return _result(subprocess.Popen(_pinned(script, *args), stdout=subprocess.PIPE, text=True))


def _crunch(*, beside_waker: bool) -> tuple[int, float | None]:
    """Work the CPU-bound process did in ``CRUNCH_S``; with ``beside_waker``, a waking process
    shares its core the whole time (and its CPU per wake is returned too)."""
    waker = None
    if beside_waker:
        wakes = int(CRUNCH_S * 1000 * 1.2)  # outlasts the cruncher
        waker = subprocess.Popen(_pinned(_WAKER, str(wakes)), stdout=subprocess.PIPE, text=True)
        time.sleep(0.05)
    done = int(_run(_CRUNCHER, str(CRUNCH_S))["done"])
    per_wake = float(_result(waker)["us_per_wake"]) if waker is not None else None
    return done, per_wake


def measure() -> dict[str, str]:
    idle = [float(_run(_WAKER, str(WAKES))["us_per_wake"]) for _ in range(3)]
    timer = [float(_run(_ASYNCIO_WAKER, str(WAKES))["us_per_wake"]) for _ in range(3)]
    ratios: list[float] = []
    busy: list[float] = []
    for round_ in range(ROUNDS):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        done: dict[bool, int] = {}
        for beside in order:
            done[beside], per_wake = _crunch(beside_waker=beside)
            if per_wake is not None:
                busy.append(per_wake)
        ratios.append(done[True] / done[False])
    ratios.sort()
    return {
        "core": f"{CORE} (taskset), every process of this bench on it",
        "per wake, core idle": f"{_median(idle):.1f} µs CPU (epoll with a 1 ms timeout, {WAKES} wakes, median of 3)",
        "per wake, core busy": f"{_median(busy):.1f} µs CPU (the same beside a CPU-bound process, median of {ROUNDS})",
        "asyncio timer wake": f"{_median(timer):.1f} µs CPU (asyncio.sleep(0.001), the loop's turn included)",
        "capacity taken": (
            f"the CPU-bound process did {_median(ratios):.3f}x its work alone with ~1,000 wakes a second"
            f" beside it (rounds {ratios[0]:.3f}-{ratios[-1]:.3f})"
        ),
    }


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def run() -> dict[str, str]:
    """Entry point of ``python -m tests.bench``."""
    if shutil.which("taskset") is None or CORE not in os.sched_getaffinity(0):
        return {"skipped": "needs taskset and core 0"}
    return measure()


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value}", flush=True)
