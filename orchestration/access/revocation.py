"""Key and account changes reach every process within a second, open sessions included.

When an API key, a person or an access policy is saved or deleted, the change is published on
one Redis channel (``key:<id>``, ``user:<id>``, ``policy:<user id>``). Each server process runs
one listener per event loop: a message drops what the process cached of that key, person or
policy (``on_access_change`` handlers), and the open WebSocket sessions and SSE streams that
belong to it (``access_watch``) look their key or account up again; one that may no longer be
used is told why (``key_revoked``, ``key_expired``, ``account_disabled``...) and stops.

The process that saves applies the change to itself at once, without waiting for Redis. While a
process's listener is not subscribed (Redis down, not started yet), its caches are not trusted
for longer than ``UNTRUSTED_TTL_S`` (``orchestration.access.keycache``); each time it subscribes
again, every cache is dropped and every open session checked, since messages may have been missed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from redis.exceptions import RedisError

from orchestration.access.keys import account_refusal, api_key_refusal_by_id
from orchestration.access.models import AccessPolicy, ApiKey
from orchestration.database import database_call
from orchestration.redisclients import DEFAULT, LISTEN, redis_async, redis_sync

logger = logging.getLogger("switchyard.access")

CHANNEL = "sy:access:changes"
# How often an idle listener checks that its connection still answers.
_PING_EVERY_S = 10.0
_RETRY_MAX_S = 2.0

# What a change means to this process's caches: called with ("key" | "user" | "policy" | "all", id).
ChangeHandler = Callable[[str, int], None]
_handlers: list[ChangeHandler] = []


def on_access_change(handler: ChangeHandler) -> ChangeHandler:
    """Register ``handler`` to be told of every change (decorator)."""
    _handlers.append(handler)
    return handler


def _apply(kind: str, ident: int) -> None:
    for handler in _handlers:
        handler(kind, ident)


# --- publishing --------------------------------------------------------------------------------


def access_changed(kind: str, ident: int) -> None:
    """This process forgets the thing at once; every process hears of it once the change commits."""
    _apply(kind, ident)
    transaction.on_commit(lambda: _publish(kind, ident))


def _publish(kind: str, ident: int) -> None:
    try:
        redis_sync(DEFAULT).publish(CHANNEL, f"{kind}:{ident}")
    except RedisError as error:
        # The other processes stop trusting their caches when their listeners lose Redis too.
        logger.warning("Could not announce the change of %s %s: %s", kind, ident, error)


def _on_key_saved(sender: type[ApiKey], instance: ApiKey, **_: object) -> None:
    access_changed("key", instance.pk)


def _on_user_saved(sender: Any, instance: Any, **_: object) -> None:
    access_changed("user", instance.pk)


def _on_policy_saved(sender: type[AccessPolicy], instance: AccessPolicy, **_: object) -> None:
    access_changed("policy", instance.user_id)


post_save.connect(_on_key_saved, sender=ApiKey, dispatch_uid="access-key-save")
post_delete.connect(_on_key_saved, sender=ApiKey, dispatch_uid="access-key-delete")
post_save.connect(_on_user_saved, sender=get_user_model(), dispatch_uid="access-user-save")
post_delete.connect(_on_user_saved, sender=get_user_model(), dispatch_uid="access-user-delete")
post_save.connect(_on_policy_saved, sender=AccessPolicy, dispatch_uid="access-policy-save")
post_delete.connect(_on_policy_saved, sender=AccessPolicy, dispatch_uid="access-policy-delete")


# --- open sessions -----------------------------------------------------------------------------


@dataclass(eq=False)
class AccessWatch:
    """An open session or stream of one key (or of a person without a key). ``lost`` is set with
    the refusal code once the key or account may no longer be used; ``on_lost`` is called then."""

    user_id: int
    api_key_id: int | None
    on_lost: Callable[[str], None] | None = None
    lost: str | None = None
    _registry: dict[tuple[str, int], set[AccessWatch]] = field(default_factory=dict, repr=False)

    def close(self) -> None:
        for name in self._names():
            watchers = self._registry.get(name)
            if watchers is not None:
                watchers.discard(self)
                if not watchers:
                    del self._registry[name]

    def _names(self) -> list[tuple[str, int]]:
        names = [("user", self.user_id)]
        if self.api_key_id is not None:
            names.append(("key", self.api_key_id))
        return names

    def _lose(self, code: str) -> None:
        if self.lost is not None:
            return
        self.lost = code
        if self.on_lost is not None:
            self.on_lost(code)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], set[AccessWatch]]] = (
    weakref.WeakKeyDictionary()
)


def access_watch(*, user_id: int, api_key_id: int | None, on_lost: Callable[[str], None] | None = None) -> AccessWatch:
    """Watch the key (or the account) of an open session; ``close()`` it when the session ends."""
    loop = asyncio.get_running_loop()
    registry = _watches.setdefault(loop, {})
    watch = AccessWatch(user_id, api_key_id, on_lost, _registry=registry)
    for name in watch._names():
        registry.setdefault(name, set()).add(watch)
    listener_ensure()
    return watch


async def _recheck(watches: list[AccessWatch]) -> None:
    """Look up again the keys and accounts of ``watches``; tell the ones that lost access."""
    keys = {w.api_key_id for w in watches if w.api_key_id is not None}
    users = {w.user_id for w in watches if w.api_key_id is None}
    refusals: dict[tuple[str, int], str | None] = {}
    for key_id in keys:
        refusals[("key", key_id)] = await database_call(api_key_refusal_by_id)(key_id)
    for user_id in users:
        refusals[("user", user_id)] = await database_call(account_refusal)(user_id)
    for watch in watches:
        name = ("key", watch.api_key_id) if watch.api_key_id is not None else ("user", watch.user_id)
        code = refusals.get(name)  # type: ignore[arg-type]
        if code is not None:
            watch._lose(code)


def _watches_of(loop: asyncio.AbstractEventLoop, kind: str, ident: int) -> list[AccessWatch]:
    registry = _watches.get(loop, {})
    if kind == "all":
        return list({watch for watchers in registry.values() for watch in watchers})
    return list(registry.get((kind, ident), ()))


# --- the listener ------------------------------------------------------------------------------


@dataclass
class _Listener:
    task: asyncio.Task[None]
    subscribed: bool = False


_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Listener] = weakref.WeakKeyDictionary()
_background: set[asyncio.Task[None]] = set()


def listener_ensure() -> None:
    """Start this event loop's listener unless it runs."""
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None or listener.task.done():
        _listeners[loop] = _Listener(loop.create_task(_listen(loop), name="access-listener"))


def listener_live() -> bool:
    """Whether a listener of this process is subscribed: only then can caches be trusted for long."""
    return any(
        listener.subscribed and not listener.task.done() and not loop.is_closed()
        for loop, listener in list(_listeners.items())
    )


async def listener_stop() -> None:
    """Stop this event loop's listener (tests, shutdown)."""
    listener = _listeners.pop(asyncio.get_running_loop(), None)
    if listener is not None:
        listener.task.cancel()
        await asyncio.gather(listener.task, return_exceptions=True)


async def _listen(loop: asyncio.AbstractEventLoop) -> None:
    delay = 0.05
    while True:
        try:
            await _subscribed_session(loop)
            delay = 0.05
        except (RedisError, OSError, TimeoutError) as error:
            logger.info("Access change listener lost Redis (%s); retrying", error)
        finally:
            listener = _listeners.get(loop)
            if listener is not None:
                listener.subscribed = False
        await asyncio.sleep(delay)
        delay = min(_RETRY_MAX_S, delay * 2)


async def _subscribed_session(loop: asyncio.AbstractEventLoop) -> None:
    pubsub = redis_async(LISTEN).pubsub()
    try:
        await pubsub.subscribe(CHANNEL)
        idle_s = 0.0
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                idle_s += 1.0
                if idle_s >= _PING_EVERY_S:
                    await pubsub.ping()
                    idle_s = 0.0
                continue
            idle_s = 0.0
            if message["type"] == "subscribe":
                _listeners[loop].subscribed = True
                _changed(loop, "all", 0)  # whatever happened while nobody listened
            elif message["type"] == "message":
                _received(loop, message["data"])
    finally:
        await pubsub.aclose()


def _received(loop: asyncio.AbstractEventLoop, data: bytes | str) -> None:
    text = data.decode() if isinstance(data, bytes) else data
    kind, _, ident = text.partition(":")
    if kind in ("key", "user", "policy") and ident.isdigit():
        _changed(loop, kind, int(ident))


def _changed(loop: asyncio.AbstractEventLoop, kind: str, ident: int) -> None:
    _apply(kind, ident)
    watches = _watches_of(loop, kind, ident)
    if watches:
        task = loop.create_task(_recheck(watches))
        _background.add(task)
        task.add_done_callback(_background.discard)
