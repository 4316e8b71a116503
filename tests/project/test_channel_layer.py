"""The Channels layer shares a bounded pool (``project/layers.py``): a burst of group changes larger
than any pool waits for connections instead of failing, and messages still go through."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer

from orchestration.redisclients import LAYER


async def test_a_burst_of_group_changes_past_the_pool_shares_its_connections() -> None:
    layer = get_channel_layer()
    assert layer is not None
    names = [await layer.new_channel() for _ in range(1500)]
    await asyncio.gather(*(layer.group_add("burst", name) for name in names))
    connection = layer.connection(0)
    pool = connection.connection_pool
    assert len(pool._available_connections) + len(pool._in_use_connections) <= LAYER.max_connections
    assert b"resp=2" in await connection.execute_command("CLIENT", "INFO")

    await layer.group_send("burst", {"type": "hello", "text": "all"})
    received = await asyncio.wait_for(asyncio.gather(*(layer.receive(name) for name in names[:3])), 10)
    assert [message["text"] for message in received] == ["all"] * 3
    await asyncio.gather(*(layer.group_discard("burst", name) for name in names))
    await layer.flush()
