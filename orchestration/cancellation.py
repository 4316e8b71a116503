"""A cancellation that a library swallowed is raised again where it matters.

Python 3.11's ``asyncio.wait_for`` returns its awaitable's result when the task that waits is
cancelled in the moment that awaitable finishes: the ``CancelledError`` is lost, and the task runs
on, still counted as cancelling (``Task.cancelling()``), with nothing to cancel it again. redis-py
sends every command through ``wait_for`` (its socket timeout), and a ``/v1`` call sends several
before it reaches its provider (key, admission, breaker, cache). A client that resets its
connection right after its request is cancelled during those first waits: under a burst of such
clients, some calls lost the cancellation, opened their upstream stream anyway and relayed it to
nobody until daphne killed them 10 s later (``tests/project/test_hostile_clients.py``).

Code that means to end a cancellation says so with ``Task.uncancel()`` (``asyncio.timeout`` and
``orchestration/watchdog.py`` do; so does ``project/edge/handler.py`` once the client is gone), so
a task that still counts a cancellation while it starts new work has lost one.
"""

from __future__ import annotations

import asyncio
from typing import Any


def cancellation_swallowed_raise(task: asyncio.Task[Any] | None = None) -> None:
    """Raise ``CancelledError`` when the current task (``task``, when the caller already knows it:
    a stream asks once per event) was cancelled and carries on regardless."""
    if task is None:
        task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
