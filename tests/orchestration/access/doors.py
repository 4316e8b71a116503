"""The doors of Switchyard, driven as a client would against a live server: each ``knock`` makes one
call through one door and returns the verdict in one shape (status, code, the rate-limit headers),
so the tests can ask whether every door answers alike."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.models import Conversation
from tests.support import ROOT, child_env, database_url_for_current_connection

MODEL = "door-sim"

# The headers a refusal reports beside its body; a door must send the same names with the same meaning.
LIMIT_HEADERS = (
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "ratelimit-policy",
)


@dataclass
class Verdict:
    status: int
    code: str | None
    headers: dict[str, str] = field(default_factory=dict)
    closed_with: int | None = None  # WebSocket close code, when the door closed the session

    @property
    def admitted(self) -> bool:
        return self.status < 300

    def comparable(self) -> tuple[int, str | None, dict[str, str]]:
        """What every door must agree on: status, code, and the limit headers (``Retry-After``
        only present: it counts down while the doors are knocked on one after another, so its
        values are compared apart, against the time that took)."""
        headers = {name: value for name, value in self.headers.items() if name in LIMIT_HEADERS}
        if "x-ratelimit-remaining-tokens" in headers:  # a bucket that refills by the millisecond
            headers["x-ratelimit-remaining-tokens"] = "~" + str(round(int(headers["x-ratelimit-remaining-tokens"]), -2))
        if "retry-after" in headers:
            headers["retry-after"] = "present"
        return self.status, self.code, headers


@dataclass
class Door:
    name: str
    knock: Callable[[str, Any], Awaitable[Verdict]]


def _verdict_of(response: httpx.Response) -> Verdict:
    code = None
    if response.status_code >= 400:
        code = response.json()["error"]["code"]
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Verdict(response.status_code, code, headers)


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def v1_whole(base_url: str, model: str) -> Door:
    async def knock(secret: str, _: Any) -> Verdict:
        body = {"model": model, "messages": [{"role": "user", "content": "Hello there"}]}
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            return _verdict_of(await http.post("/v1/chat/completions", json=body, headers=_bearer(secret)))

    return Door("/v1 whole", knock)


def v1_streamed(base_url: str, model: str) -> Door:
    async def knock(secret: str, _: Any) -> Verdict:
        body = {"model": model, "messages": [{"role": "user", "content": "Hello there"}], "stream": True}
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            request = http.build_request("POST", "/v1/chat/completions", json=body, headers=_bearer(secret))
            response = await http.send(request, stream=True)
            await response.aread()
            return _verdict_of(response)

    return Door("/v1 streamed", knock)


def chat_post(base_url: str, model: str) -> Door:
    async def knock(secret: str, owner: Any) -> Verdict:
        conversation = await Conversation.objects.acreate(owner=owner, model=model)
        url = f"/api/v1/conversations/{conversation.pk}/messages"
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            return _verdict_of(await http.post(url, json={"content": "Hello there"}, headers=_bearer(secret)))

    return Door("chat post", knock)


def task_post(base_url: str, model: str) -> Door:
    async def knock(secret: str, _: Any) -> Verdict:
        body = {"agent": "research-assistant", "input": "Hello there", "model": model}
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            return _verdict_of(await http.post("/api/v1/tasks", json=body, headers=_bearer(secret)))

    return Door("task post", knock)


def websocket_start(base_url: str, model: str) -> Door:
    url = base_url.replace("http://", "ws://") + "/ws/agents/"

    async def knock(secret: str, _: Any) -> Verdict:
        async with connect(url, additional_headers=_bearer(secret), open_timeout=10) as ws:
            first = json.loads(await ws.recv())
            if first["type"] == "error":  # refused at the handshake: the verdict, then the close
                return await _refusal(ws, first)
            start = {"type": "start_task", "agent": "research-assistant", "input": "Hello there", "model": model}
            await ws.send(json.dumps(start))
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            if frame["type"] == "error":
                return await _refusal(ws, frame)
            return Verdict(200, None)

    return Door("WebSocket start_task", knock)


async def _refusal(ws: Any, frame: dict[str, Any]) -> Verdict:
    headers = {name.lower(): value for name, value in frame.get("headers", {}).items()}
    verdict = Verdict(frame["status"], frame["code"], headers)
    if frame["status"] == 401:
        try:
            await asyncio.wait_for(ws.recv(), timeout=5)
        except ConnectionClosed as closed:
            verdict.closed_with = closed.rcvd.code if closed.rcvd else None
    return verdict


def every_door(base_url: str, model: str) -> list[Door]:
    return [factory(base_url, model) for factory in (v1_whole, v1_streamed, chat_post, task_post, websocket_start)]


def revoke_in_another_process(key_id: int) -> None:
    """Revoke the key the way an operator's shell would: another OS process, same database and Redis."""
    code = (
        "import django; django.setup();"
        "from orchestration.access.keys import api_key_revoke;"
        "from orchestration.models import ApiKey;"
        f"api_key_revoke(key=ApiKey.objects.get(pk={key_id}))"
    )
    env = child_env(DATABASE_URL=database_url_for_current_connection(), DJANGO_SETTINGS_MODULE="project.settings")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
