"""The Channels layer on Redis, its connections pooled as the rest of Switchyard's are.

channels-redis builds a plain redis-py pool per event loop from its host settings. Past its
``max_connections`` that pool refuses the next command at once, so 1,000 task feeds closing together
(a ``group_discard`` each) needed 812 connections at a time, and one more than the cap would have
failed; and the connections it opened for a burst stayed open for good. Here the layer's pool is a
``BoundedPool`` of the ``LAYER`` profile (``orchestration/redisclients.py``): 256 connections that a
burst shares, a command past them waiting for one, RESP2 and hiredis packing as every other client.

A receive that is cancelled (every consumer's, when its connection closes) leaves its channel's
buffer behind when it was the one reading Redis for the process: channels-redis drops the buffer
on ``Exception`` only, and ``CancelledError`` is not one. Each closed WebSocket or task feed then
kept a queue in ``receive_buffer`` for good: kilobytes per connection, without bound. ``receive``
drops an empty buffer of a cancelled receive here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.core import RedisChannelLayer

from orchestration.redisclients import LAYER, async_pool


class PooledRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> Any:
        host = self.hosts[index]
        if "address" not in host:  # a Sentinel or keyword configuration: channels-redis's own pool
            return super().create_pool(index)
        return async_pool(LAYER, host["address"])

    async def receive(self, channel: str) -> Any:
        try:
            return await super().receive(channel)
        except asyncio.CancelledError:
            buffer = self.receive_buffer.get(channel)  # ``get``: the buffer is a defaultdict
            if buffer is not None and buffer.empty():
                del self.receive_buffer[channel]
            raise
