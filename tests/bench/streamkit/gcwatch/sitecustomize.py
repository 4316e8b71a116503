"""The garbage collector's pauses of a benchmark's processes, for ``tests/bench/streaming.py --gc``.

On ``PYTHONPATH`` this is imported by every Python process the benchmark starts. With
``SWITCHYARD_BENCH_GC_FILE`` set, a process appends one line per collection to that path plus
``.<pid>``: the generation and how long the collection took, in milliseconds. The benchmark reads
its server's file before and after a run.
"""

import os

_path = os.environ.get("SWITCHYARD_BENCH_GC_FILE")
if _path:
    import gc
    import time

    _log = open(f"{_path}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115 - open for the process's life
    _started = [0.0]

    def _note(phase: str, info: dict) -> None:  # type: ignore[type-arg]
        if phase == "start":
            _started[0] = time.perf_counter()
        else:
            _log.write(f"{info['generation']} {(time.perf_counter() - _started[0]) * 1000:.3f}\n")

    gc.callbacks.append(_note)
