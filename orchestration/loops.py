"""One object per running event loop: what a batcher or a hub of the loop's work is kept in.

asyncio objects (futures, tasks, connections) belong to the loop that made them, and a process may
run more than one loop (the server's, a worker's, a test's), so such an object is kept per loop
and dropped with it.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """A ``T`` per event loop, made by ``factory`` on first use."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self, loop: asyncio.AbstractEventLoop | None = None) -> T:
        """The one of ``loop`` (by default the running one), made now if it has none."""
        loop = loop or asyncio.get_running_loop()
        made = self._made.get(loop)
        if made is None:
            made = self._made[loop] = self._factory()
        return made

    def peek(self, loop: asyncio.AbstractEventLoop | None = None) -> T | None:
        """The one of ``loop`` (by default the running one), if it was made."""
        return self._made.get(loop or asyncio.get_running_loop())


def detached(work: Coroutine[Any, Any, None], running: set[asyncio.Task[None]]) -> asyncio.Task[None]:
    """``work`` as a task of the running loop, in a context of its own (not that of the request
    whose turn started it), kept in ``running`` until it ends: the loop holds tasks only weakly,
    and a batch sent for many callers must not be collected, nor carry one caller's context."""
    task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
    running.add(task)
    task.add_done_callback(running.discard)
    return task
