"""The reply runner of a loop: its sweeper and cancel listener outlive a quiet moment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import AsyncClient

from chat import replies
from chat.models import Conversation, Message
from orchestration.models import LanguageModel, RequestLog
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from tests.chat.conftest import MODEL

pytestmark = pytest.mark.django_db(transaction=True)


async def _reply_ended(secret: str, conversation: Conversation) -> None:
    url, auth = f"/api/v1/conversations/{conversation.pk}/messages", {"Authorization": f"Bearer {secret}"}
    posted = await AsyncClient().post(url, {"content": "hi"}, "application/json", headers=auth)
    assert posted.status_code == 201, posted.content
    runner = replies.runner_for(asyncio.get_running_loop())
    await asyncio.wait_for(asyncio.gather(*(running.task for running in runner.running.values())), 30)
    assert not await Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING).aexists()


async def test_the_next_reply_after_a_quiet_moment_keeps_the_same_cancel_listener(alice_key: str, alice: Any) -> None:
    conversation = await Conversation.objects.acreate(owner=alice, model=MODEL)
    runner = replies.runner_for(asyncio.get_running_loop())

    await _reply_ended(alice_key, conversation)
    listener = runner._listener
    await _reply_ended(alice_key, conversation)

    assert not runner.running and listener is not None and runner._listener is listener and not listener.done()
    runner._helpers_stop()


async def test_a_reply_the_cache_answers_shows_its_usage_and_costs_nothing(alice_key: str, alice: Any) -> None:
    await LanguageModel.objects.filter(name=MODEL).aupdate(cache_exact_enabled=True)
    snapshot_invalidate()
    first, again = [await Conversation.objects.acreate(owner=alice, model=MODEL, temperature=0) for _ in range(2)]

    await _reply_ended(alice_key, first)
    await _reply_ended(alice_key, again)

    asked = await Message.objects.aget(conversation=first, role=Message.Role.ASSISTANT)
    cached = await Message.objects.aget(conversation=again, role=Message.Role.ASSISTANT)
    await asyncio.to_thread(requestlog_flush)
    # The last two rows: an earlier test's replies may be written to the request log late.
    assert [log.cache_status async for log in RequestLog.objects.order_by("id")][-2:] == ["MISS", "HIT"]
    assert cached.content == asked.content and asked.cost_usd > 0
    assert (cached.input_tokens, cached.output_tokens) == (asked.input_tokens, asked.output_tokens)
    assert cached.cost_usd == 0
    replies.runner_for(asyncio.get_running_loop())._helpers_stop()
