"""Budgets cannot be overrun by concurrency: each call reserves its worst case before it runs.

The scenario of the issue that found the overrun: a $0.01 budget with $0.0073 already spent, and 30
calls at once, each of which may cost about $0.001. Without reservations all 30 ran; now the spend
ends at or below the budget plus one call's estimate error (live daphne, real Redis, the simulator).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db.models import Sum
from django.utils import timezone

from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel, Provider, RequestLog
from orchestration.registry import snapshot_invalidate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

MODEL = "budget-sim"
BUDGET = Decimal("0.01")
SPENT = Decimal("0.0073")
MAX_TOKENS = 100
CALLS = 30


def spend_of(key_id: int) -> tuple[int, Decimal]:
    rows = RequestLog.objects.filter(api_key_id=key_id)
    return rows.count(), rows.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


async def test_thirty_concurrent_calls_do_not_overrun_the_budget(live_web: Any, simulator: Any, alice: Any) -> None:
    provider = await Provider.objects.acreate(name="sim", kind=Provider.Kind.SIMULATOR, base_url=simulator.url + "/v1")
    await LanguageModel.objects.acreate(
        name=MODEL, provider=provider, upstream=MODEL, cache_exact_enabled=False,
        input_per_mtok=Decimal("1"), output_per_mtok=Decimal("10"),
    )  # fmt: skip
    await sync_to_async(snapshot_invalidate)()
    # Each call writes all of its max_tokens, slowly enough that all 30 are in flight together.
    simulator.configure(MODEL, latency_ms=300, tokens_per_s=400, reply=" ".join(["word"] * 400))
    key, secret = await sync_to_async(api_key_create)(user=alice, monthly_budget_usd=BUDGET)
    await RequestLog.objects.acreate(
        request_id="earlier", api_key=key, user=alice, endpoint="completion", model_requested=MODEL,
        cost_usd=SPENT, created_at=timezone.now(),
    )  # fmt: skip

    body = {"model": MODEL, "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": "Tell me a story."}]}
    async with httpx.AsyncClient(base_url=live_web.url, timeout=60) as http:
        headers = {"Authorization": f"Bearer {secret}"}
        answers = await asyncio.gather(
            *(http.post("/v1/chat/completions", json=body, headers=headers) for _ in range(CALLS))
        )

    served = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert served, [a.text for a in answers[:3]]
    assert all(a.status_code == 429 and a.json()["error"]["code"] == "budget_exceeded" for a in refused)
    worst_case = Decimal(MAX_TOKENS) * Decimal("10") / 1_000_000 + Decimal("0.00001")  # output, and a short prompt
    for _ in range(100):  # the request log is written in batches
        rows, total = await sync_to_async(spend_of)(key.pk)
        if rows >= len(served) + 1:
            break
        await asyncio.sleep(0.1)
    assert rows == len(served) + 1
    estimate_error = worst_case - sum(Decimal(a.headers["X-Cost-USD"]) for a in served[:1])
    assert total <= BUDGET + max(Decimal(0), estimate_error), (total, len(served))
    assert len(served) == int((BUDGET - SPENT) / worst_case)
