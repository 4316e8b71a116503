"""A request to a provider leaves in the step that makes it, on every Python we support.

aiohttp writes a request's body in a task of its own (``ClientRequest.write_bytes``), and holds the
request's head until then so that both leave in one write. On Python 3.12+ it starts that task
eagerly (``eager_start``): the task runs at once, up to its first real wait, and the request is on
the wire before the caller's step ends. On Python 3.11 the task waits for the next turn of the
event loop. When one turn makes many requests (a burst of streams admitted by one Redis reply), none
of them leaves until every one of them is made: on the pinned streaming benchmark, 200 simultaneous
streams reached the upstream 0-30 ms after Switchyard had made their requests, in one clump, so
their first tokens came back in one clump too and queued behind each other
(docs/benchmarks.md, "A request leaves in the step that makes it").

``start_request_writes_eagerly(loop)`` gives Python 3.11 the same behaviour: a task factory on
``loop`` that starts aiohttp's body writer as 3.12's ``eager_start`` does (its first step runs in
``create_task``, in the task's context) and leaves every other task as it was. On 3.12+ it does
nothing.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import sys
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from aiohttp.client_reqrep import ClientRequest

TaskFactory = Callable[..., "asyncio.Future[Any]"]

_EAGER_BUILTIN = sys.version_info >= (3, 12)
# The coroutine aiohttp starts as a task for each request's body (None: an aiohttp without it).
_WRITE_BYTES_CODE = getattr(getattr(ClientRequest, "write_bytes", None), "__code__", None)


def start_request_writes_eagerly(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` start aiohttp's request writers at once, as Python 3.12+ does; idempotent."""
    if _EAGER_BUILTIN or _WRITE_BYTES_CODE is None:
        return
    current = loop.get_task_factory()
    if getattr(current, "starts_writes_eagerly", False):
        return
    loop.set_task_factory(_eager_writes_factory(current))


def _eager_writes_factory(previous: TaskFactory | None) -> TaskFactory:
    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], context: contextvars.Context | None = None
    ) -> asyncio.Future[Any]:
        if getattr(coro, "cr_code", None) is _WRITE_BYTES_CODE:
            return started_eagerly(loop, coro, context)
        if previous is not None:
            return previous(loop, coro) if context is None else previous(loop, coro, context=context)
        return asyncio.Task(coro, loop=loop, context=context)

    factory.starts_writes_eagerly = True  # type: ignore[attr-defined]
    return factory


def started_eagerly(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], context: contextvars.Context | None = None
) -> asyncio.Future[Any]:
    """``coro`` as a task whose first step has already run, here, in the task's context: a future
    already done when that step finished it, else a task that goes on from where it waits."""
    context = contextvars.copy_context() if context is None else context
    try:
        waiting_on = context.run(coro.send, None)
    except StopIteration as finished:
        done: asyncio.Future[Any] = loop.create_future()
        done.set_result(finished.value)
        return done
    except asyncio.CancelledError:
        cancelled: asyncio.Future[Any] = loop.create_future()
        cancelled.cancel()
        return cancelled
    except Exception as error:  # handed to whoever awaits the task, as a task would
        failed: asyncio.Future[Any] = loop.create_future()
        failed.set_exception(error)
        return failed
    return asyncio.Task(_Resumed(coro, waiting_on), loop=loop, context=context)


class _Resumed(collections.abc.Coroutine):  # type: ignore[type-arg]
    """``coro``, already started and waiting on ``waiting_on``, as the coroutine of a task: the
    task's first step is handed ``waiting_on`` to wait for; after that, whatever the task sends or
    throws goes on to ``coro`` (``yield from``, joined mid-way). A cancellation before that first
    step reaches ``coro`` too, and cancels what it was waiting on, as it would a task's."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on: Any = waiting_on

    def send(self, value: Any) -> Any:
        waiting_on = self._waiting_on
        if waiting_on is not _HANDED:
            self._waiting_on = _HANDED
            return waiting_on
        return self._coro.send(value)

    def throw(self, *error: Any) -> Any:  # type: ignore[override]
        waiting_on = self._waiting_on
        if waiting_on is not _HANDED:
            self._waiting_on = _HANDED
            if isinstance(waiting_on, asyncio.Future):
                waiting_on.cancel()
        return self._coro.throw(*error)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        raise TypeError("a resumed coroutine is driven by its task, not awaited")


_HANDED = object()  # ``_Resumed`` handed its task what ``coro`` waits on
