"""Background responses that no worker takes: no test here may use a worker (``worker`` or
``workers``). The module's worker of test_background.py lives until that module's last test, so a
test there could not know that its queued response stays queued: the worker took it now and then
under load, and its stream then began with the events of the run."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from django.conf import settings

from orchestration.models import StoredResponse
from orchestration.responses import eventlog
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    make_key,
    sim_models,
)
from tests.orchestration.responses.test_background import client
from tests.proxy import CuttingProxy
from tests.support import start_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_a_queued_background_response_can_be_cancelled_before_a_worker_takes_it(sim_models, make_key, live_web) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Hi.", background=True)
    assert sdk.responses.cancel(created.id).status == "cancelled"
    assert list(sdk.responses.retrieve(created.id, stream=True)) == []  # its stream is over
    assert StoredResponse.objects.get(pk=created.id).attempts == 0  # no worker ever claimed it


async def _run_began(response_id: str) -> None:
    """What a worker's run writes first; the run then stops without an end entry."""
    connection = aioredis.Redis.from_url(settings.REDIS_URL)
    assert await eventlog.start(connection, response_id, 1)
    assert await eventlog.append(connection, response_id, 1, [{"type": "response.created", "sequence_number": 0}])
    await connection.aclose()


def test_while_redis_is_out_of_reach_cancel_and_delete_hold_and_the_stream_still_ends(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    redis_url = urlsplit(settings.REDIS_URL)
    proxy = CuttingProxy(redis_url.port or 6379)  # the web process's way to Redis, which the test cuts
    web = start_web(REDIS_URL=f"redis://127.0.0.1:{proxy.port}{redis_url.path}")
    try:
        secret = make_key()
        sdk = client(web, secret)
        running = sdk.responses.create(model="gpt-sim", input="Hi.", background=True)
        doomed = sdk.responses.create(model="gpt-sim", input="Bye.", background=True)
        async_to_sync(_run_began)(running.id)
        with proxy.outage():
            assert sdk.responses.cancel(running.id).status == "cancelled"
            sdk.responses.delete(doomed.id)
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(doomed.id)
        # Its log never got the cancel's end entry: the stream ends anyway, with what the run wrote.
        lines = []
        give_up = time.monotonic() + 20
        url = f"{web.url}/v1/responses/{running.id}?stream=true"
        with httpx.stream("GET", url, headers={"Authorization": f"Bearer {secret}"}, timeout=10) as stream:
            for line in stream.iter_lines():
                lines.append(line)
                assert time.monotonic() < give_up, "the stream of a cancelled response did not end"
    finally:
        web.stop()
        proxy.close()
    assert [line for line in lines if line.startswith("event:")] == ["event: response.created"]
