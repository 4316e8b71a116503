"""A time limit for each read of a stream, with one timer per stream instead of one per read.

``asyncio.timeout`` schedules a timer on entry and cancels it on exit. A stream reads once per
chunk, a chunk is often a single token, and the timers of a few hundred streams were about a
fifth of the event loop's time (py-spy at 200 concurrent chat replies): making and cancelling
``TimerHandle``s and keeping the loop's heap of them.

``ReadWatchdog`` keeps one timer. Each ``read`` only writes down its deadline; the timer, armed
for some earlier deadline, re-arms itself for the current one when it fires too early. When it
fires with the deadline passed and a read waiting, it cancels the reading task, and ``read``
turns that cancellation into ``TimeoutError``, counting cancellations as ``asyncio.timeout``
does: a cancellation that came from elsewhere at the same time still propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class ReadWatchdog:
    """Time limits for the reads of one stream, from one task at a time."""

    __slots__ = ("_cancelling", "_deadline", "_expired", "_handle", "_loop", "_reader")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[object] | None = None
        self._deadline = 0.0
        self._cancelling = 0
        self._expired = False

    async def read(self, start: Callable[[], Awaitable[T]], deadline: float) -> T:
        """``await start()``, or ``TimeoutError`` once the loop's clock passes ``deadline``."""
        loop = self._loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            raise TimeoutError
        task = asyncio.current_task()
        assert task is not None, "ReadWatchdog.read runs in a task"
        self._deadline = deadline
        handle = self._handle
        if handle is None or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(deadline, self._fire)
        self._reader = task
        self._cancelling = task.cancelling()
        try:
            return await start()
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                if task.uncancel() <= self._cancelling:
                    raise TimeoutError from None
            raise
        finally:
            self._reader = None
            if self._expired:  # fired, but the read ended some other way before it could tell
                self._expired = False
                task.uncancel()

    def close(self) -> None:
        """Cancel the timer; call once the stream is done with."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if self._reader is None or self._loop is None:
            return  # no read is waiting: the next one arms the timer again
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._expired = True
        self._reader.cancel()
