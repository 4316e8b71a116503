"""One object per running event loop: what a batcher or a hub of the loop's work is kept in.

asyncio objects (futures, tasks, connections) belong to the loop that made them, and a process may
run more than one loop (the server's, a worker's, a test's), so such an object is kept per loop
and dropped with it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

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
