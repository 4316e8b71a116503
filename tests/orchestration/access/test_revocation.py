"""A key revoked in another OS process stops working everywhere within a second: new calls, an open
WebSocket session, an open chat stream and an open task feed (live daphne, real Redis)."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.models import Conversation
from orchestration.access import keycache, revocation
from orchestration.access.keys import api_key_create
from tests.orchestration.access.doors import MODEL, revoke_in_another_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

WITHIN_S = 1.0


async def sse_error_after(response: httpx.Response) -> dict[str, Any]:
    """Read a chat or task stream until its ``error`` event; its data."""
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "error":
            return dict(json.loads(line.removeprefix("data: ")))
    raise AssertionError("the stream ended without an error event")


async def test_open_sessions_and_streams_of_a_key_revoked_elsewhere_stop_within_a_second(
    live_web: Any, door_model: Any, simulator: Any, alice: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=4, reply=" ".join(["word"] * 200))
    key, secret = await sync_to_async(api_key_create)(user=alice)
    bearer = {"Authorization": f"Bearer {secret}"}
    conversation = await Conversation.objects.acreate(owner=alice, model=MODEL)
    client = functools.partial(httpx.AsyncClient, base_url=live_web.url, headers=bearer, timeout=30)
    async with client() as http, client() as chat_http, client() as feed_http:
        posted = (await http.post(f"/api/v1/conversations/{conversation.pk}/messages", json={"content": "Hi"})).json()
        task = await http.post("/api/v1/tasks", json={"agent": "research-assistant", "input": "Hi", "model": MODEL})
        ws_url = live_web.url.replace("http://", "ws://") + "/ws/agents/"
        async with (
            chat_http.stream("GET", posted["stream_url"]) as chat_stream,
            feed_http.stream("GET", f"/api/v1/tasks/{task.json()['id']}/events") as task_feed,
            connect(ws_url, additional_headers=bearer, open_timeout=10) as ws,
        ):
            assert json.loads(await ws.recv())["type"] == "session"
            assert chat_stream.status_code == 200 and task_feed.status_code == 200
            await asyncio.sleep(0.3)  # the streams are attached and flowing

            await sync_to_async(revoke_in_another_process)(key.pk)
            revoked_at = time.monotonic()

            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
            ws_s = time.monotonic() - revoked_at
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=5)
            chat_error = await asyncio.wait_for(sse_error_after(chat_stream), timeout=5)
            chat_s = time.monotonic() - revoked_at
            feed_error = await asyncio.wait_for(sse_error_after(task_feed), timeout=5)
            feed_s = time.monotonic() - revoked_at
        refused = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": []})
        v1_s = time.monotonic() - revoked_at

    assert frame["type"] == "error" and frame["code"] == "key_revoked" and frame["status"] == 401
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert chat_error["code"] == "key_revoked" and feed_error["code"] == "key_revoked"
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked"
    assert max(ws_s, chat_s, feed_s) < WITHIN_S, (ws_s, chat_s, feed_s)
    assert v1_s < WITHIN_S + 1.0, v1_s  # the refusal itself, plus the reads above


async def test_a_cached_key_is_trusted_long_only_while_changes_can_be_heard() -> None:
    await revocation.listener_stop()
    assert not revocation.listener_live()
    assert keycache.trusted_for_s() == keycache.UNTRUSTED_TTL_S
    revocation.listener_ensure()
    for _ in range(100):
        if revocation.listener_live():
            break
        await asyncio.sleep(0.02)
    assert keycache.trusted_for_s() == keycache.TTL_S
    await revocation.listener_stop()
    assert keycache.trusted_for_s() == keycache.UNTRUSTED_TTL_S


async def test_simultaneous_calls_with_a_key_not_yet_cached_share_one_lookup(django_user_model: Any) -> None:
    user = await django_user_model.objects.acreate(username="stampede")
    _, secret = await sync_to_async(api_key_create)(user=user, name="hot")
    keycache.key_cache_forget()

    keys = await asyncio.gather(*(keycache.key_authenticate(secret) for _ in range(50)))

    # Each lookup builds its own key object: one object for all fifty means one lookup.
    assert all(key is keys[0] for key in keys)
    assert keys[0].user_id == user.pk


async def test_a_lookup_that_overlaps_a_change_is_not_remembered(django_user_model: Any) -> None:
    user = await django_user_model.objects.acreate(username="overlap")
    _, secret = await sync_to_async(api_key_create)(user=user, name="changing")
    keycache.key_cache_forget()

    looking = asyncio.ensure_future(keycache.key_authenticate(secret))
    await asyncio.sleep(0)  # the lookup has started
    keycache.key_cache_forget()  # as an announcement heard meanwhile does
    first = await looking
    second = await keycache.key_authenticate(secret)

    assert second is not first  # looked up again, not served from what the overlapping read found
