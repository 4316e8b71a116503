"""The admin's costs dashboard draws its charts in the browser, with nothing from the internet."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from orchestration.models import RequestLog
from tests.browser.conftest import PASSWORD, screenshot


def test_the_costs_dashboard_draws_every_chart_from_the_request_log(page: Any, live_web: Any, django_user_model: Any):
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    now = timezone.now()
    for day in range(5):
        for model, cost, latency in (("sim-large", "0.02", 900.0), ("sim-small", "0.001", 120.0)):
            RequestLog.objects.create(
                request_id=f"r{day}{model}",
                endpoint="completion",
                model_requested=model,
                model_served=model,
                provider_served="simulator",
                cost_usd=Decimal(cost),
                latency_ms=latency + day * 10.123,
                cache_status="HIT" if day == 0 else "MISS",
                created_at=now - timedelta(days=day),
            )
    RequestLog.objects.create(  # a chat reply: made from a browser session, without an API key
        request_id="chat",
        endpoint="chat",
        model_requested="sim-large",
        model_served="sim-large",
        provider_served="simulator",
        cost_usd=Decimal("0.005"),
        latency_ms=2345.678,
        user=root,
        created_at=now,
    )
    requests_outside: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(live_web.url) else requests_outside.append(request.url),
    )

    page.goto(f"{live_web.url}/admin/login/?next=/admin/orchestration/requestlog/costs/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Spend per day (USD)").wait_for()

    for chart in ("days", "models", "keys", "latency", "errors", "cache"):
        assert page.locator(f"#chart-{chart} svg rect").count() > 0, chart
    assert page.locator("#chart-models svg text", has_text="sim-large").count() == 1
    assert page.locator("#total-cost").inner_text() == "$0.1100"
    # Whose spend: the person's web chat, by name (no anonymous "(no key)").
    assert page.locator("#chart-keys svg text", has_text="root: web chat").count() == 1
    assert page.locator("#costs-payers td", has_text="root: web chat").count() == 1
    # Latencies as a person reads them: whole milliseconds, or seconds with one decimal.
    latency_texts = page.locator("#chart-latency svg text").all_text_contents()
    assert sorted(latency_texts) == ["p50 140 ms", "p50 920 ms", "p95 160 ms", "p95 2.3 s", "sim-large", "sim-small"]
    assert requests_outside == []
    screenshot(page, "admin-costs")


def test_a_period_from_a_link_is_the_one_picked_and_a_tiny_spend_is_no_exponent(
    page: Any, live_web: Any, django_user_model: Any
):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    RequestLog.objects.create(  # an embedding: a few hundred-millionths of a dollar
        request_id="tiny",
        endpoint="embeddings",
        model_requested="sim-embed",
        model_served="sim-embed",
        provider_served="simulator",
        cost_usd=Decimal("0.00000002"),
        latency_ms=2.0,
        created_at=timezone.now(),
    )
    page.goto(f"{live_web.url}/admin/login/?next=/admin/orchestration/requestlog/costs/%3Fdays%3D3")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Spend per model (USD)").wait_for()

    period = page.get_by_label("Period:")
    assert period.evaluate("select => select.selectedOptions[0].textContent") == "last 3 days"
    assert period.evaluate("select => select.value") == "3"
    assert page.locator("#chart-models svg text").all_text_contents() == ["sim-embed", "<0.000001"]
