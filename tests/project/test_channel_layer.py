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


async def test_a_cancelled_receive_leaves_no_buffer_behind() -> None:
    """Every consumer's receive is cancelled when its connection closes: a connect-and-close storm
    must not leave a queue per connection in the web process (it grew by kilobytes per socket)."""
    layer = get_channel_layer()
    assert layer is not None
    closed = [await layer.new_channel() for _ in range(20)]
    for name in closed:
        receive = asyncio.ensure_future(layer.receive(name))
        await asyncio.sleep(0.02)  # reading Redis for the process, as the only receiver does
        receive.cancel()
        await asyncio.gather(receive, return_exceptions=True)
    assert [name for name in closed if name in layer.receive_buffer] == []

    name = await layer.new_channel()  # and a receive still gets its message
    await layer.send(name, {"type": "hello"})
    assert (await asyncio.wait_for(layer.receive(name), 10))["type"] == "hello"
    assert name not in layer.receive_buffer
