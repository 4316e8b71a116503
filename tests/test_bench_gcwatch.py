"""The streaming benchmark's census of a server's objects (``tests/bench/streamkit/gcwatch``):
``--objects`` divides the difference of two censuses by the streams held open, so a census has to
count what is alive, by type, and come when asked, even from a process whose loop is idle."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GCWATCH = Path(__file__).parent / "bench" / "streamkit" / "gcwatch"


def _gcwatch() -> object:
    spec = importlib.util.spec_from_file_location("gcwatch_census", GCWATCH / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # without SWITCHYARD_BENCH_GC_FILE it only defines its functions
    return module


class Held:
    pass


async def waiting() -> None:
    pass


def test_a_census_counts_live_objects_by_type_and_coroutines_by_their_function() -> None:
    census = _gcwatch().tracked_by_type  # type: ignore[attr-defined]
    before = census()["types"]
    held = [Held() for _ in range(50)]
    coroutine = waiting()
    after = census()
    try:
        label = f"{__name__}.Held"
        assert after["types"][label] - before.get(label, 0) == 50
        assert after["types"][f"builtins.coroutine {waiting.__qualname__}"] == 1
        assert after["total"] == sum(after["types"].values())
    finally:
        coroutine.close()
        del held


def test_a_process_with_an_idle_loop_writes_its_census_when_signalled(tmp_path: Path) -> None:
    base = tmp_path / "gc"
    idle = "import asyncio, sys; print('ready', flush=True); asyncio.run(asyncio.sleep(30))"
    env = {**os.environ, "PYTHONPATH": str(GCWATCH), "SWITCHYARD_BENCH_GC_FILE": str(base)}
    process = subprocess.Popen([sys.executable, "-c", idle], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        written = Path(f"{base}.{process.pid}.objects")
        os.kill(process.pid, signal.SIGUSR2)
        ends = time.monotonic() + 10
        while not written.exists() and time.monotonic() < ends:
            time.sleep(0.01)
        census = json.loads(written.read_text())
        assert census["total"] > 0 and census["types"]["builtins.module"] > 0
        assert process.poll() is None  # the signal did not end it
    finally:
        process.kill()
        process.wait()
