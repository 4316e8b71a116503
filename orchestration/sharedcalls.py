"""One call at a time per key: callers that arrive while it runs wait for its answer.

A burst of requests that all miss one cache (a key's row, a key's owner) would otherwise each make
the same query. The call runs as a task of its own and every caller awaits it shielded, so a caller
that gives up (its client went away) cancels it for no one. Tasks belong to their event loop: a call
running on another loop (a test's, a worker job's) is not shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SharedCalls(Generic[K, T]):
    """``await shared(key, make)``: the running call for ``key``, or ``make()`` started as one."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[T]] = {}

    async def __call__(self, key: K, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = asyncio.get_running_loop()
        task = self._running.get(key)
        if task is None or task.get_loop() is not loop:
            task = self._running[key] = loop.create_task(make())
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: K, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    def __len__(self) -> int:
        return len(self._running)

    def clear(self) -> None:
        self._running.clear()
