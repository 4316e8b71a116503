"""Against a live daphne process: a real WebSocket client (``websockets``) and the SSE log feed."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agents.models import Task
from tests.agents.conftest import MODEL, call, script, wait_for_status
from tests.agents.test_task_workers import submit
from tests.proxy import CuttingProxy
from tests.support import start_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def ws_url(live_web: Any) -> str:
    return live_web.url.replace("http://", "ws://") + "/ws/agents/"


async def test_a_real_client_runs_an_agent_and_answers_its_question(live_web, alice_key, agent_model, simulator):
    simulator.configure(
        MODEL,
        script=script(
            {"content": "I need one detail.", "tool_calls": [call("ask_user", question="Which region?")]},
            {"tool_calls": [call("current_time", timezone="Europe/Paris")]},
            {"content": "Paris it is."},
        ),
    )
    headers = {"Authorization": f"Bearer {alice_key}"}
    async with connect(ws_url(live_web), additional_headers=headers, open_timeout=10) as ws:
        assert json.loads(await ws.recv())["type"] == "session"
        await ws.send(json.dumps({"type": "start_task", "agent": "research-assistant", "input": "Hi", "model": MODEL}))
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] not in ("complete", "error"):
            seen.append(json.loads(await ws.recv()))
            if seen[-1]["type"] == "need_input":
                answer = {"type": "provide_input", "request_id": seen[-1]["request_id"], "value": "eu-west"}
                await ws.send(json.dumps(answer))
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}

    types = [frame["type"] for frame in seen]
    assert types == ["thought", "action", "need_input", "tool_result", "action", "tool_result", "complete"]
    assert seen[3]["output"] == "eu-west" and "Europe/Paris" in seen[5]["output"]
    task = await Task.objects.aget(pk=seen[-1]["task_id"])
    assert task.status == Task.Status.COMPLETED and task.result == "Paris it is."


async def test_a_live_server_closes_unauthenticated_sockets_with_4401_and_refuses_other_origins(live_web, alice_key):
    async with connect(ws_url(live_web), open_timeout=10) as ws:
        assert json.loads(await ws.recv())["code"] == "not_authenticated"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    headers = {"Authorization": f"Bearer {alice_key}"}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(live_web), additional_headers=headers, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403

    async with connect(ws_url(live_web), additional_headers=headers, origin=live_web.url) as ws:
        assert json.loads(await ws.recv())["type"] == "session"


@pytest.mark.parametrize("path", ["/ws/elsewhere/", "/api/v1/messages/1/stream", "/v1/models"])
async def test_a_websocket_to_a_path_that_takes_none_is_refused_not_failed(live_web, alice_key, path):
    headers = {"Authorization": f"Bearer {alice_key}"}
    url = live_web.url.replace("http://", "ws://") + path
    with pytest.raises(InvalidStatus) as refused:  # it was an empty 500 and a traceback in the log
        async with connect(url, additional_headers=headers, open_timeout=10):
            pass
    assert refused.value.response.status_code == 403


async def test_a_message_over_the_servers_limit_is_refused_with_close_code_1009(live_web, alice_key):
    headers = {"Authorization": f"Bearer {alice_key}"}
    async with connect(ws_url(live_web), additional_headers=headers, open_timeout=10, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session"
        await ws.send(json.dumps({"type": "ping", "padding": "x" * 2 * 2**20}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # not a silent drop


def sse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if fields and set(fields) != {"retry"}:  # a retry line alone is no event
            events.append(fields)
    return events


def test_the_log_streams_as_sse_and_resumes_after_last_event_id(live_web, alice_key, agent_model, simulator, workers):
    simulator.configure(
        MODEL,
        latency_ms=200,
        script=script(
            {"tool_calls": [call("calculator", expression="2^10")]},
            {"tool_calls": [call("calculator", expression="sqrt(81)")]},
            {"content": "1024 and 9."},
        ),
    )
    workers()
    api = httpx.Client(base_url=live_web.url, headers={"Authorization": f"Bearer {alice_key}"}, timeout=20)
    created = api.post("/api/v1/tasks", json={"agent": "research-assistant", "input": "Sums", "model": MODEL})
    assert created.status_code == 202 and created.headers["Location"] == f"/api/v1/tasks/{created.json()['id']}"
    events_url = f"{created.headers['Location']}/events"

    # Connected while the task runs: items arrive as they are written, then `end`.
    with api.stream("GET", events_url) as stream:
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["cache-control"] == "no-cache"
        whole = sse_events(stream.read().decode())
    assert [e["event"] for e in whole] == ["action", "tool_result", "action", "tool_result", "end"]
    assert [e["id"] for e in whole] == ["1", "2", "3", "4", "5"]
    assert json.loads(whole[1]["data"])["content"] == "1024"
    assert json.loads(whole[-1]["data"]) == {"status": "COMPLETED", "result": "1024 and 9.", "error": None}
    wait_for_status(created.json()["id"], Task.Status.COMPLETED)

    resumed = sse_events(api.get(events_url, headers={"Last-Event-ID": "2"}).text)
    assert [e["id"] for e in resumed] == ["3", "4", "5"]
    assert [e["id"] for e in sse_events(api.get(f"{events_url}?last_event_id=4").text)] == ["5"]
    assert api.get(events_url, headers={"Last-Event-ID": "5"}).status_code == 204
    # More digits than int() reads (4300): it was daphne's HTML 500 page.
    assert api.get(events_url, headers={"Last-Event-ID": "9" * 5000}).status_code == 204
    superscript = api.get(f"{events_url}?last_event_id=%C2%B2")  # "²": isdigit, yet no int (it was a 500)
    assert superscript.status_code == 400 and superscript.json()["error"]["code"] == "invalid_last_event_id"

    stranger = httpx.get(f"{live_web.url}{events_url}", timeout=10)
    assert stranger.status_code == 401 and stranger.json()["error"]["code"] == "not_authenticated"
    missing = api.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000/events")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "task_not_found"
    for method in ("POST", "PUT", "DELETE", "PROPFIND"):  # a feed is read, never written
        refused = api.request(method, events_url)
        assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed", method
        assert refused.headers["Allow"] == "GET"
    head = api.head(events_url)  # refused without a body, so the connection can be used again
    assert head.status_code == 405 and head.headers["Allow"] == "GET"
    assert api.get("/healthz").status_code == 200


def test_while_redis_is_out_of_reach_a_cancel_is_answered_and_the_log_feed_still_ends(
    alice_api, alice_key, agent_model
) -> None:
    redis_url = urlsplit(settings.REDIS_URL)
    proxy = CuttingProxy(redis_url.port or 6379)  # the web process's way to Redis, which the test cuts
    web = start_web(REDIS_URL=f"redis://127.0.0.1:{proxy.port}{redis_url.path}")
    try:
        task_id = submit(alice_api)  # PENDING: no worker runs here
        headers = {"Authorization": f"Bearer {alice_key}"}
        with proxy.outage(), httpx.Client(base_url=web.url, headers=headers, timeout=10) as client:
            cancelled = client.post(f"/api/v1/tasks/{task_id}/cancel")
            feed = client.get(f"/api/v1/tasks/{task_id}/events")
    finally:
        web.stop()
        proxy.close()

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert feed.status_code == 200, feed.text
    assert "event: end" in feed.text and '"status":"CANCELLED"' in feed.text
