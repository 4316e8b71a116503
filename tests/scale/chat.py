"""The chat API as the scale-out tests drive it: a conversation, a message, the saved reply."""

from __future__ import annotations

import time
from typing import Any

import httpx

from chat.models import Message
from tests.chat.sse import Event
from tests.scale.conftest import CHAT_MODEL


def conversation_start(client: httpx.Client) -> int:
    created = client.post("/api/v1/conversations", json={"model": CHAT_MODEL})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def message_post(client: httpx.Client, conversation: int, content: str) -> dict[str, Any]:
    posted = client.post(f"/api/v1/conversations/{conversation}/messages", json={"content": content})
    assert posted.status_code == 201, posted.text
    return dict(posted.json())


def saved(message_id: int, *, timeout: float = 15.0) -> Message:
    deadline = time.monotonic() + timeout
    message = Message.objects.get(pk=message_id)
    while message.status == Message.Status.STREAMING and time.monotonic() < deadline:
        time.sleep(0.05)
        message.refresh_from_db()
    return message


def joined(events: list[Event]) -> str:
    return "".join(e.data["delta"] for e in events if e.type == "token")
