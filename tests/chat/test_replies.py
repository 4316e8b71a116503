"""The reply runner of a loop: its sweeper and cancel listener outlive a quiet moment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import AsyncClient

from chat import replies
from chat.models import Conversation, Message
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
