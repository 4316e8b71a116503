"""Interactive agents over ``/ws/agents/`` in process (``WebsocketCommunicator`` on the project's
ASGI application: origin check, auth middleware, consumer) against the real simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from agents.models import SupportTicket, Task, TaskEvent
from project.asgi import application
from tests.agents.conftest import MODEL, call, script

pytestmark = pytest.mark.django_db(transaction=True)

RESEARCH = script(
    {"content": "Searching the knowledge base.", "tool_calls": [call("search_knowledge_base", query="revoke key")]},
    {"tool_calls": [call("calculator", expression="6 * 7")]},
    {"content": "Revoke it on /keys/; and 6 * 7 = 42."},
)


def bearer(secret: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {secret}".encode())]


@pytest.fixture
async def session(alice_key: str, agent_model: Any) -> AsyncIterator[WebsocketCommunicator]:
    """A connected session of alice's (API key, no Origin), disconnected after the test."""
    communicator = WebsocketCommunicator(application, "/ws/agents/", headers=bearer(alice_key))
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from()
    assert hello["type"] == "session" and hello["session_id"].startswith("sess_")
    yield communicator
    await communicator.disconnect()


async def frames_until(communicator: WebsocketCommunicator, *types: str) -> list[dict[str, Any]]:
    """Frames received up to and including the first one whose type is in ``types``."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] not in types:
        frames.append(await communicator.receive_json_from(timeout=10))
    return frames


async def start(communicator: WebsocketCommunicator, agent: str = "research-assistant", text: str = "Hi") -> None:
    await communicator.send_json_to({"type": "start_task", "agent": agent, "input": text, "model": MODEL})


async def task_of(frame: dict[str, Any]) -> Task:
    return await Task.objects.aget(pk=frame["task_id"])


async def wait_for(condition: Any, within: float = 5.0) -> None:
    """Poll ``condition`` (sync: it may ask the simulator or the database) until it holds."""
    async with asyncio.timeout(within):
        while not await sync_to_async(condition)():  # noqa: ASYNC110 - another process changes it
            await asyncio.sleep(0.02)


async def test_a_session_streams_thoughts_actions_and_results_then_completes(session, knowledge_base, simulator):
    simulator.configure(MODEL, script=RESEARCH)
    await start(session, text="How do I revoke a key, and what is 6 times 7?")

    frames = await frames_until(session, "complete", "error")
    assert [f["type"] for f in frames] == ["thought", "action", "tool_result", "action", "tool_result", "complete"]
    thought, search, found, calculate, result, complete = frames
    assert thought["content"] == "Searching the knowledge base."
    assert search["tool"] == "search_knowledge_base" and search["input"] == {"query": "revoke key"}
    assert "Creating, using and revoking API keys" in found["output"]
    assert calculate["input"] == {"expression": "6 * 7"} and result["output"] == "42"
    assert complete["result"] == "Revoke it on /keys/; and 6 * 7 = 42."

    task = await task_of(complete)
    assert task.status == Task.Status.COMPLETED and task.origin == Task.Origin.WEBSOCKET
    log = [e async for e in TaskEvent.objects.filter(task=task).order_by("seq")]
    assert [(e.seq, e.type) for e in log] == [(f["seq"], f["type"]) for f in frames[:-1]]

    # One task at a time, but one after another is fine.
    simulator.configure(MODEL, script=None)
    await start(session, text="Again.")
    again = await frames_until(session, "complete")
    assert again[-1]["task_id"] != complete["task_id"]


async def test_null_characters_from_the_model_are_shown_and_kept_as_u_fffd(session, simulator) -> None:
    # PostgreSQL cannot store U+0000: the session's log writes failed and the task never finished.
    simulator.configure(
        MODEL,
        script=script(
            {"content": "Adding\x00 up.", "tool_calls": [call("calculator", expression="1+1")]},
            {"content": "Two\x00."},
        ),
    )
    await start(session, text="Sum")
    frames = await frames_until(session, "complete", "error")
    assert [f["type"] for f in frames] == ["thought", "action", "tool_result", "complete"], frames[-1]
    assert frames[0]["content"] == "Adding\ufffd up." and frames[-1]["result"] == "Two\ufffd."
    task = await task_of(frames[-1])
    await wait_for(lambda: Task.objects.get(pk=task.pk).status == Task.Status.COMPLETED)
    assert (await task_of(frames[-1])).result == "Two\ufffd."
    await wait_for(lambda: TaskEvent.objects.filter(task_id=task.pk).count() == 3)
    thought = await TaskEvent.objects.aget(task_id=task.pk, seq=frames[0]["seq"])
    assert thought.content == "Adding\ufffd up."


async def test_need_input_waits_for_the_matching_answer(session, simulator) -> None:
    simulator.configure(
        MODEL,
        script=script(
            {"tool_calls": [call("ask_user", question="Production or staging?")]},
            {"content": "Done with production."},
        ),
    )
    await start(session)
    question = (await frames_until(session, "need_input"))[-1]
    assert question["prompt"] == "Production or staging?"
    task = await task_of(question)
    await wait_for(lambda: Task.objects.get(pk=task.pk).status == Task.Status.WAITING_INPUT)

    await session.send_json_to({"type": "provide_input", "request_id": "inp_nope", "value": "x"})
    refused = await session.receive_json_from()
    assert refused["type"] == "error" and refused["code"] == "input_request_mismatch"  # the REST door's code

    await session.send_json_to({"type": "provide_input", "request_id": question["request_id"], "value": "production"})
    frames = await frames_until(session, "complete")
    assert frames[0]["type"] == "tool_result" and frames[0]["output"] == "production"
    assert frames[-1]["result"] == "Done with production."

    await session.send_json_to({"type": "provide_input", "request_id": question["request_id"], "value": "again"})
    late = await session.receive_json_from()
    assert late["code"] == "task_not_waiting"


async def test_cancel_stops_the_agent_within_a_second_and_says_so(session, simulator) -> None:
    simulator.configure(MODEL, latency_ms=30_000)
    await start(session)
    await wait_for(lambda: simulator.stats(MODEL)["in_flight"] == 1)
    task = await Task.objects.aget(origin=Task.Origin.WEBSOCKET)

    await session.send_json_to({"type": "cancel"})
    said = await session.receive_json_from(timeout=1)
    assert said["type"] == "error" and said["code"] == "cancelled" and said["task_id"] == str(task.pk)
    await wait_for(lambda: simulator.stats(MODEL)["disconnects"] == 1, within=1)
    await task.arefresh_from_db()
    assert task.status == Task.Status.CANCELLED

    await session.send_json_to({"type": "cancel"})
    assert (await session.receive_json_from())["code"] == "no_task"


async def test_a_second_start_while_a_task_runs_is_busy(session, simulator) -> None:
    simulator.configure(MODEL, latency_ms=30_000)
    await start(session)
    await start(session, text="another")
    busy = await session.receive_json_from()
    assert busy == {"type": "error", "code": "busy", "message": "A task is already running on this connection."}
    assert await Task.objects.acount() == 1


async def test_closing_the_connection_cancels_the_agent_and_its_upstream_call(alice_key, agent_model, simulator):
    simulator.configure(MODEL, latency_ms=30_000)
    communicator = WebsocketCommunicator(application, "/ws/agents/", headers=bearer(alice_key))
    await communicator.connect()
    await communicator.receive_json_from()
    await start(communicator)
    await wait_for(lambda: simulator.stats(MODEL)["in_flight"] == 1)

    await communicator.disconnect()
    await wait_for(lambda: simulator.stats(MODEL)["disconnects"] == 1, within=2)
    task = await Task.objects.aget()
    assert task.status == Task.Status.CANCELLED and task.error["code"] == "client_disconnected"


async def test_bad_frames_get_an_error_and_the_connection_stays_usable(session) -> None:
    bad_frames = [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"no": "type"}', "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "start_task", "input": "hi"}', "invalid_message"),
        ('{"type": "start_task", "agent": "research-assistant", "input": 5}', "invalid_message"),
        ('{"type": "start_task", "agent": "nobody", "input": "hi"}', "unknown_agent"),
        ('{"type": "start_task", "agent": "research-assistant", "input": "hi", "model": "nope"}', "model_not_found"),
        ('{"type": "provide_input", "value": "x"}', "invalid_message"),
        (json.dumps({"type": "ping", "padding": "x" * 70_000}), "frame_too_large"),
        # What the database cannot store, or the parser cannot read without ending the session:
        ('{"type": "start_task", "agent": "research-assistant", "input": "\\ud800"}', "invalid_unicode"),
        ('{"type": "start_task", "agent": "research-assistant", "input": "nul\\u0000"}', "invalid_message"),
        ("[" * 2000 + "]" * 2000, "invalid_json"),
        ('{"type": "ping", "n": ' + "[" * 65 + "]" * 65 + "}", "invalid_json"),
        ('{"type": "ping", "n": NaN}', "invalid_json"),
    ]
    for frame, code in bad_frames:
        await session.send_to(text_data=frame)
        answer = await session.receive_json_from()
        assert answer["type"] == "error" and answer["code"] == code, (frame[:60], answer)
    await session.send_to(bytes_data=b"\x00\x01")
    assert (await session.receive_json_from())["code"] == "invalid_frame"

    await session.send_json_to({"type": "ping"})
    assert await session.receive_json_from() == {"type": "pong"}
    assert await Task.objects.acount() == 0


async def test_connections_without_credentials_are_told_why_then_closed_with_4401(agent_model) -> None:
    cases = {
        "not_authenticated": [],
        "invalid_api_key": bearer("sy-not-a-real-key"),
        "not_authenticated ": [(b"authorization", b"Basic YWxpY2U6cHc=")],
    }
    for code, headers in cases.items():
        communicator = WebsocketCommunicator(application, "/ws/agents/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        refusal = await communicator.receive_json_from()
        assert refusal["type"] == "error" and refusal["code"] == code.strip() and refusal["status"] == 401
        assert refusal["headers"]["WWW-Authenticate"] == 'Bearer realm="switchyard"'
        closed = await communicator.receive_output()
        assert closed == {"type": "websocket.close", "code": 4401, "reason": "authentication required"}
        await communicator.disconnect()


async def test_a_session_cookie_from_an_allowed_origin_is_accepted_and_other_origins_are_refused(
    alice, agent_model
) -> None:
    client = Client()
    await sync_to_async(client.force_login)(alice)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    allowed = WebsocketCommunicator(
        application,
        "/ws/agents/",
        headers=[(b"cookie", cookie), (b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
    )
    assert (await allowed.connect())[0]
    assert (await allowed.receive_json_from())["type"] == "session"
    await allowed.disconnect()

    wrong = (
        b"http://evil.example",
        b"http://127.0.0.1.evil.example",
        b"null",
        b"http://127.0.0.1:9999",
        b"https://127.0.0.1:8000",
    )
    for origin in wrong:
        headers = [(b"cookie", cookie), (b"origin", origin), (b"host", b"127.0.0.1:8000")]
        refused = WebsocketCommunicator(application, "/ws/agents/", headers=headers)
        connected, _ = await refused.connect()
        assert not connected, origin
        await refused.disconnect()


async def test_an_admin_cancel_reaches_the_session_through_the_channel_layer(session, simulator, admin_client) -> None:
    simulator.configure(MODEL, latency_ms=30_000)
    await start(session)
    await wait_for(lambda: simulator.stats(MODEL)["in_flight"] == 1)
    task = await Task.objects.aget()

    changelist = "/admin/agents/task/"
    response = await sync_to_async(admin_client.post)(
        changelist, {"action": "cancel_tasks", "_selected_action": [str(task.pk)]}
    )
    assert response.status_code == 302

    said = await session.receive_json_from(timeout=2)
    assert said["type"] == "error" and said["code"] == "cancelled" and said["task_id"] == str(task.pk)
    await wait_for(lambda: simulator.stats(MODEL)["disconnects"] == 1, within=2)
    await task.arefresh_from_db()
    assert task.status == Task.Status.CANCELLED and task.error["message"] == "Cancelled by an administrator."


async def test_a_ticket_filed_in_a_session_is_written_once_with_its_result_logged(session, simulator) -> None:
    simulator.configure(
        MODEL,
        script=script(
            {"tool_calls": [call("create_ticket", subject="Login loop", description="Since today", priority="low")]},
            {"content": "Ticket filed."},
        ),
    )
    await start(session, agent="support-triage", text="I keep getting logged out.")
    frames = await frames_until(session, "complete")
    assert [f["type"] for f in frames] == ["action", "tool_result", "complete"]
    assert frames[1]["output"].startswith("Created ticket #")
    ticket = await SupportTicket.objects.aget()
    assert str(ticket.task_id) == frames[-1]["task_id"] and ticket.priority == "low"


async def test_an_idle_session_outlives_the_channel_layers_blocking_read(session) -> None:
    """The layer waits for messages with a 5 s blocking pop; a 5 s socket timeout (redis-py 8's
    default) used to end every consumer that had been idle that long."""
    await asyncio.sleep(6.5)
    await session.send_json_to({"type": "ping"})
    assert await session.receive_json_from(timeout=2) == {"type": "pong"}


async def test_a_key_limited_to_other_models_cannot_start_a_task_on_this_one(alice, agent_model) -> None:
    from orchestration.access.keys import api_key_create

    _, secret = await sync_to_async(api_key_create)(user=alice, allowed_models=["another-model"])
    communicator = WebsocketCommunicator(application, "/ws/agents/", headers=bearer(secret))
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "session"
    await start(communicator)
    refused = await communicator.receive_json_from()
    assert refused["type"] == "error" and refused["code"] == "model_not_allowed"
    await communicator.disconnect()
    assert await Task.objects.acount() == 0


async def test_a_start_task_is_admitted_with_the_key_as_it_is_now_not_as_it_was_at_the_handshake(
    alice, agent_model, simulator
) -> None:
    """The session's caller was read once at the handshake: narrowing a key's models (or its rate
    limit, or its budget) left open sessions running tasks the HTTP doors refuse."""
    from orchestration.access.keys import api_key_create
    from orchestration.access.models import ApiKey

    key, secret = await sync_to_async(api_key_create)(user=alice)
    communicator = WebsocketCommunicator(application, "/ws/agents/", headers=bearer(secret))
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "session"
    await start(communicator)
    assert (await frames_until(communicator, "complete", "error"))[-1]["type"] == "complete"

    changed = await ApiKey.objects.aget(pk=key.pk)
    changed.allowed_models = ["another-model"]
    await changed.asave()
    await start(communicator)
    refused = await communicator.receive_json_from()
    assert refused["type"] == "error" and refused["code"] == "model_not_allowed" and refused["status"] == 403
    await communicator.disconnect()
    assert await Task.objects.acount() == 1


async def test_a_key_that_expired_during_the_session_is_refused_at_start_task_and_closes_it(
    alice, agent_model, simulator, monkeypatch
) -> None:
    """Nothing announces the passing of time: a key that expired while the session was open
    created a task (counted, then failed at its first step) instead of being refused at the door."""
    from datetime import timedelta

    from django.utils import timezone

    from orchestration.access.keys import api_key_create
    from orchestration.access.models import ApiKey

    key, secret = await sync_to_async(api_key_create)(user=alice)
    communicator = WebsocketCommunicator(application, "/ws/agents/", headers=bearer(secret))
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "session"
    changed = await ApiKey.objects.aget(pk=key.pk)
    changed.expires_at = timezone.now() + timedelta(seconds=0.5)
    await changed.asave()
    # A second passes, on the clock every expiry is read from.
    wall_clock = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: wall_clock() + timedelta(seconds=1))

    await start(communicator)
    refused = await communicator.receive_json_from()
    assert refused["type"] == "error" and refused["code"] == "key_expired" and refused["status"] == 401
    assert (await communicator.receive_output(timeout=2))["code"] == 4401
    assert await Task.objects.acount() == 0


async def test_a_session_refuses_an_embeddings_model_as_v1_chat_does(session, alice, agent_model) -> None:
    from orchestration.models import LanguageModel
    from orchestration.registry import snapshot_invalidate

    await LanguageModel.objects.acreate(
        name="sim-embed", provider=agent_model.provider, upstream="sim-embed", capabilities=["embeddings"]
    )
    snapshot_invalidate()
    await session.send_json_to(
        {"type": "start_task", "agent": "research-assistant", "input": "Hi", "model": "sim-embed"}
    )
    refused = await session.receive_json_from()
    assert refused["type"] == "error" and refused["code"] == "model_not_supported" and refused["status"] == 400
    assert await Task.objects.acount() == 0


async def test_an_answer_over_the_socket_is_bounded_as_the_http_answer_is(session, simulator) -> None:
    from agents.services import MAX_ANSWER_CHARS

    simulator.configure(MODEL, script=script({"tool_calls": [call("ask_user", question="Which?")]}, {"content": "Ok."}))
    await start(session)
    question = (await frames_until(session, "need_input"))[-1]
    too_long = {"type": "provide_input", "request_id": question["request_id"], "value": "x" * (MAX_ANSWER_CHARS + 1)}
    await session.send_json_to(too_long)
    refused = await session.receive_json_from()
    assert refused["type"] == "error" and refused["code"] == "input_too_large"

    await session.send_json_to({"type": "provide_input", "request_id": question["request_id"], "value": "this"})
    assert (await frames_until(session, "complete"))[-1]["result"] == "Ok."
