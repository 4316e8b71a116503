"""Who a Channels connection belongs to (``project.edge.websocket.AccessMiddleware``): a key's
verdict comes from the key cache, and admitting it never waits for the thread pool."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from orchestration.access import keycache, revocation
from orchestration.access.admission import caller_for_secret
from orchestration.access.keys import api_key_create, api_key_hash
from project.edge.websocket import AccessMiddleware

pytestmark = pytest.mark.django_db(transaction=True)


async def admitted(secret: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {secret}".encode())]}
    await AccessMiddleware(app)(scope, None, None)
    return seen


async def key_cached(secret: str) -> None:
    """Look the key up once every announcement sent so far has been heard, so none of them (the
    listener's first subscription, the key's own creation) drops the entry afterwards."""
    await caller_for_secret(secret)  # starts this loop's listener
    for _ in range(250):
        if revocation.listener_live():
            break
        await asyncio.sleep(0.02)
    heard = asyncio.Event()

    def marker(kind: str, ident: int) -> None:
        if (kind, ident) == ("key", 0):
            heard.set()

    revocation.on_access_change(marker)
    try:
        # Redis delivers a channel's messages in order: the marker comes after every earlier one.
        await sync_to_async(revocation._publish)("key", 0)
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        revocation._handlers.remove(marker)
    await caller_for_secret(secret)
    assert keycache._fresh(api_key_hash(secret)) is not None


async def test_a_keyed_connection_is_admitted_while_the_thread_pool_is_busy(alice: Any) -> None:
    # A burst of chat posts fills the loop's thread pool with their database work; the streams of
    # their replies must not wait behind it. The key is known already, as after any first call.
    secret = (await sync_to_async(api_key_create)(user=alice))[1]
    await key_cached(secret)
    release = threading.Event()
    loop = asyncio.get_running_loop()
    busy = [loop.run_in_executor(None, release.wait, 10) for _ in range(64)]
    try:
        scope = await asyncio.wait_for(admitted(secret), 2)
    finally:
        release.set()
        await asyncio.gather(*busy)

    assert scope["caller"].user_id == alice.pk and "access_refusal" not in scope
    assert await sync_to_async(lambda: scope["user"].pk)() == alice.pk  # the owner, read only when asked


async def test_a_key_whose_owner_is_disabled_is_refused_with_the_reason(alice: Any) -> None:
    secret = (await sync_to_async(api_key_create)(user=alice))[1]
    alice.is_active = False
    await sync_to_async(alice.save)(update_fields=["is_active"])

    scope = await admitted(secret)

    assert scope["caller"] is None and scope["access_refusal"].code == "account_disabled"
    assert not scope["user"].is_authenticated
