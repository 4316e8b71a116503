"""The garbage collector's pauses of a benchmark's processes, for ``tests/bench/streaming.py --gc``,
and what the collector tracks in them, for ``--objects``.

On ``PYTHONPATH`` this is imported by every Python process the benchmark starts. With
``SWITCHYARD_BENCH_GC_FILE`` set, a process appends one line per collection to that path plus
``.<pid>``: the generation and how long the collection took, in milliseconds. The benchmark reads
its server's file before and after a run.

Sent ``SIGUSR2``, the process collects its garbage, then writes what the collector still tracks
outside the frozen set (live objects that a young or middle collection may walk) to that path plus
``.<pid>.objects``, as JSON: ``{"total": N, "types": {type: count}}`` (``tracked_by_type``).
"""

import os


def _label(thing: object) -> str:
    import types

    kind = type(thing)
    label = f"{kind.__module__}.{kind.__qualname__}"
    if kind is types.CoroutineType:  # which one says where it comes from
        return f"{label} {thing.cr_code.co_qualname}"  # type: ignore[attr-defined]
    return label


def tracked_by_type() -> dict:  # type: ignore[type-arg]
    """The objects the collector tracks in its three generations, counted by type (coroutines by
    their function); the frozen ones (``gc.freeze``) are not in them."""
    import collections
    import gc

    tracked = gc.get_objects()
    counts = collections.Counter(_label(thing) for thing in tracked)
    return {"total": len(tracked), "types": dict(counts)}


_path = os.environ.get("SWITCHYARD_BENCH_GC_FILE")
if _path:
    import gc
    import json
    import signal
    import threading
    import time

    _log = open(f"{_path}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115 - open for the process's life
    _started = [0.0]

    def _note(phase: str, info: dict) -> None:  # type: ignore[type-arg]
        if phase == "start":
            _started[0] = time.perf_counter()
        else:
            _log.write(f"{info['generation']} {(time.perf_counter() - _started[0]) * 1000:.3f}\n")

    def _write_census() -> None:
        done = f"{_path}.{os.getpid()}.objects"
        gc.collect()
        with open(f"{done}.part", "w") as out:
            json.dump(tracked_by_type(), out)
        os.replace(f"{done}.part", done)  # whole, or not there yet

    def _census_on_signal() -> None:
        while True:
            signal.sigwait({signal.SIGUSR2})
            _write_census()

    gc.callbacks.append(_note)
    # A thread waits for the signal: a handler runs only when the main thread next runs Python, and
    # an idle uvloop (the bare relay's) waits in libuv without returning to Python at all. Every
    # thread inherits the mask, so the signal waits for this one.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    threading.Thread(target=_census_on_signal, name="gcwatch-census", daemon=True).start()
