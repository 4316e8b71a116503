"""What a ``/v1`` stream hands the server to write: the finish goes out with ``[DONE]``."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import httpx
import pytest

from project.asgi import application
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    bearer,
    chat_body,
    in_thread,
    make_key,
    sim_models,
    sse_events,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_streams_finish_and_its_done_are_one_write_after_its_text(sim_models: Any, make_key: Any) -> None:
    bodies: list[bytes] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                bodies.append(message.get("body", b""))
            await send(message)

        await application(scope, receive, record)

    secret = await in_thread(make_key)
    transport = httpx.ASGITransport(app=recording)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.post(
            "/v1/chat/completions", json=chat_body(stream=True, max_tokens=6), headers=bearer(secret)
        )
    assert answer.status_code == 200
    events = sse_events(answer.content)
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    written = [body for body in bodies if body]
    assert len(written) > 2  # the text came as it was made, not held to the end
    assert b'"finish_reason":"' in written[-1] and written[-1].endswith(b"data: [DONE]\n\n")
    assert all(b'"finish_reason":"' not in body for body in written[:-1])
