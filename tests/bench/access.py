"""Access, measured against a live server: budget overspend under concurrency, and how long a key
revoked in another process keeps working at each door.

Run ``python -m tests.bench access``. ``SWITCHYARD_BENCH_CHECKOUT=/path/to/another/checkout`` serves
the same scenarios from another version of Switchyard (its daphne, on this run's database, Redis and
simulator), so the figures before and after a change come from one machine and one method.

1. **Overspend**: a $0.01 budget with $0.0073 spent, 30 calls at once, each able to cost about $0.001
   (100 output tokens at $10 per million). Reported: calls served, total spend, spend over the budget.
2. **Revocation**: a key with an open WebSocket session, an open chat stream and an open task feed is
   revoked by another OS process, which notes the moment it committed. Reported per door: how long
   until the door refused the key (``/v1``: a new call every 20 ms), or "still open after 15 s".
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from tests.bench.environment import bench_model_and_key, bench_server, bench_simulator, server_error
from tests.support import ROOT, child_env

MODEL = "access-sim"
BUDGET = Decimal("0.01")
SPENT = Decimal("0.0073")
CALLS = 30
WAIT_S = 15.0


def _register(simulator_url: str, behaviour: dict[str, Any], **key_fields: Any) -> tuple[str, Any]:
    from orchestration.access.keys import api_key_find

    secret = bench_model_and_key(
        simulator_url,
        MODEL,
        username="access-bench",
        model_fields={
            "input_per_mtok": Decimal("1"),
            "output_per_mtok": Decimal("10"),
            "capabilities": ["chat", "tools"],
        },
        key_fields=key_fields,
        behaviour=behaviour,
    )
    return secret, api_key_find(secret)


# --- overspend -------------------------------------------------------------------------------------


def _spend_of(key_id: int) -> tuple[int, Decimal]:
    from django.db.models import Sum

    from orchestration.models import RequestLog

    rows = RequestLog.objects.filter(api_key_id=key_id)
    return rows.count(), rows.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


async def _overspend(base_url: str, simulator_url: str) -> dict[str, str]:
    from asgiref.sync import sync_to_async
    from django.utils import timezone

    from orchestration.models import RequestLog

    # Each call writes all of its max_tokens, slowly enough that all 30 are in flight together.
    behaviour = {"latency_ms": 300, "tokens_per_s": 400, "reply": " ".join(["word"] * 400)}
    secret, key = await sync_to_async(_register)(simulator_url, behaviour, monthly_budget_usd=BUDGET)
    await RequestLog.objects.acreate(
        request_id="earlier", api_key=key, user=key.user, endpoint="completion", model_requested=MODEL,
        cost_usd=SPENT, created_at=timezone.now(),
    )  # fmt: skip
    body = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Tell me a story."}]}
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/chat/completions", json=body, headers=headers) for _ in range(CALLS))
        )
    served = sum(answer.status_code == 200 for answer in answers)
    rows, total = 0, Decimal(0)
    for _ in range(100):  # the request log is written in batches
        rows, total = await sync_to_async(_spend_of)(key.pk)
        if rows >= served + 1:
            break
        await asyncio.sleep(0.1)
    return {
        "overspend: calls served of 30": str(served),
        "overspend: total spend (USD)": f"{total:.4f} (budget {BUDGET})",
        "overspend: over the budget (USD)": f"{max(Decimal(0), total - BUDGET):.4f}",
    }


# --- revocation ------------------------------------------------------------------------------------


def _revoke_elsewhere(key_id: int) -> float:
    """Revoke in another OS process; the wall-clock time of its commit."""
    code = (
        "import time, django; django.setup();"
        "from orchestration.models import ApiKey; from django.utils import timezone;"
        f"key = ApiKey.objects.get(pk={key_id}); key.revoked_at = timezone.now(); key.enabled = False;"
        "key.save(update_fields=['revoked_at', 'enabled']); print(time.time())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env(), capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


async def _stream_refused(response: httpx.Response) -> float:
    """When an open event stream said its key is gone (an ``error`` event, or its end)."""
    async for line in response.aiter_lines():
        if line == "event: error":
            return time.time()
    return time.time()


async def _ws_refused(ws: Any) -> float:
    try:
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "error":
                return time.time()
    except Exception:  # closed
        return time.time()


async def _v1_refused(base_url: str, secret: str) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        while True:
            response = await http.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
            if response.status_code == 401:
                return time.time()
            await asyncio.sleep(0.02)


async def _revocation(base_url: str, simulator_url: str) -> dict[str, str]:
    from asgiref.sync import sync_to_async

    from chat.models import Conversation

    # A reply that is still streaming when the key is revoked.
    behaviour = {"tokens_per_s": 2, "reply": " ".join(["word"] * 400)}
    secret, key = await sync_to_async(_register)(simulator_url, behaviour)
    conversation = await Conversation.objects.acreate(owner=key.user, model=MODEL)
    bearer = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=base_url, headers=bearer, timeout=60) as http:
        posted = (await http.post(f"/api/v1/conversations/{conversation.pk}/messages", json={"content": "Hi"})).json()
        task = (
            await http.post("/api/v1/tasks", json={"agent": "research-assistant", "input": "Hi", "model": MODEL})
        ).json()
    ws_url = base_url.replace("http://", "ws://") + "/ws/agents/"
    async with (
        httpx.AsyncClient(base_url=base_url, headers=bearer, timeout=60) as chat_http,
        httpx.AsyncClient(base_url=base_url, headers=bearer, timeout=60) as feed_http,
        chat_http.stream("GET", posted["stream_url"]) as chat_stream,
        feed_http.stream("GET", f"/api/v1/tasks/{task['id']}/events") as task_feed,
        connect(ws_url, additional_headers=bearer, open_timeout=10) as ws,
    ):
        await ws.recv()  # the session frame
        await asyncio.sleep(0.5)
        watchers = {
            "/v1": asyncio.create_task(_v1_refused(base_url, secret)),
            "WebSocket session": asyncio.create_task(_ws_refused(ws)),
            "chat stream": asyncio.create_task(_stream_refused(chat_stream)),
            "task feed": asyncio.create_task(_stream_refused(task_feed)),
        }
        revoked_at = await asyncio.to_thread(_revoke_elsewhere, key.pk)
        done, _ = await asyncio.wait(watchers.values(), timeout=WAIT_S)
    figures = {}
    for door, watcher in watchers.items():
        if watcher in done and watcher.exception() is None:
            figures[f"revocation: {door}"] = f"{max(0.0, watcher.result() - revoked_at) * 1000:.0f} ms"
        else:
            watcher.cancel()
            figures[f"revocation: {door}"] = f"still open after {WAIT_S:g} s"
    return figures


def run() -> dict[str, str]:
    checkout = Path(os.environ.get("SWITCHYARD_BENCH_CHECKOUT") or ROOT)
    simulator = bench_simulator()
    server = bench_server(checkout, simulator.url)
    try:
        figures = {"server checkout": str(checkout)}
        figures.update(asyncio.run(_overspend(server.url, simulator.url)))
        figures.update(asyncio.run(_revocation(server.url, simulator.url)))
        return {**figures, **server_error(server)}
    finally:
        server.stop()
