"""The owner of a key presented on a Channels route: looked up once for a burst of connections."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from project.edge import websocket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _forget_owners() -> None:
    websocket._users.clear()


async def test_a_burst_of_connections_with_one_key_shares_one_lookup_of_its_owner(alice: Any) -> None:
    owners = await asyncio.gather(*(websocket.key_owner(alice.pk) for _ in range(20)))

    assert owners[0].pk == alice.pk
    assert all(owner is owners[0] for owner in owners)  # one query made one instance for all
    assert not websocket._owner_lookups


async def test_a_disabled_owner_is_none_and_a_connection_that_leaves_cancels_no_one(alice: Any) -> None:
    alice.is_active = False
    await sync_to_async(alice.save)()
    first = asyncio.ensure_future(websocket.key_owner(alice.pk))
    second = asyncio.ensure_future(websocket.key_owner(alice.pk))
    await asyncio.sleep(0)
    first.cancel()

    assert await second is None
