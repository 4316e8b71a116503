"""The admin's breakers, request log, costs page and prompt templates."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from orchestration.access.keys import api_key_create
from orchestration.breaker import breaker_force_open, breaker_read
from orchestration.costs import costs_summary, duration_text, percentile
from orchestration.models import BreakerState, PromptTemplate, Provider, RequestLog

pytestmark = pytest.mark.django_db


def log_row(model: str, *, cost: str = "0.001", latency: float = 100.0, status: str = "ok", **fields: Any) -> None:
    fields.setdefault("created_at", timezone.now())
    fields.setdefault("endpoint", "completion")
    RequestLog.objects.create(
        request_id="r",
        model_requested=model,
        model_served=model,
        provider_served="sim",
        cost_usd=Decimal(cost),
        latency_ms=latency,
        status=status,
        **fields,
    )


def test_every_provider_has_a_breaker_row_showing_its_live_state(admin_client: Any) -> None:
    Provider.objects.create(name="quiet", kind="simulator")
    Provider.objects.create(name="failing", kind="simulator")
    breaker_force_open("failing")
    page = admin_client.get(reverse("admin:orchestration_breakerstate_changelist"))
    assert page.status_code == 200
    states = dict(BreakerState.objects.values_list("key", "state"))
    assert states == {"quiet": "closed", "failing": "open"}
    assert "Open" in page.content.decode()


def test_reset_and_force_open_actions_change_the_state_every_process_reads(admin_client: Any) -> None:
    Provider.objects.create(name="sim", kind="simulator")
    url = reverse("admin:orchestration_breakerstate_changelist")
    admin_client.get(url)
    row = BreakerState.objects.get(key="sim")
    admin_client.post(url, {"action": "force_open_breakers", "_selected_action": [row.pk]})
    assert breaker_read("sim", 30.0).state == "open"  # type: ignore[union-attr]
    assert BreakerState.objects.get(key="sim").state == "open"
    admin_client.post(url, {"action": "reset_breakers", "_selected_action": [row.pk]})
    assert breaker_read("sim", 30.0).state == "closed"  # type: ignore[union-attr]
    assert BreakerState.objects.get(key="sim").state == "closed"


def test_the_request_log_filters_by_status_and_model(admin_client: Any) -> None:
    log_row("alpha", status="error", error_kind="upstream_unavailable")
    log_row("beta")
    url = reverse("admin:orchestration_requestlog_changelist")
    errors = admin_client.get(url, {"status": "error"})
    assert [row.model_served for row in errors.context["cl"].result_list] == ["alpha"]
    assert "upstream_unavailable" in errors.content.decode()
    beta = admin_client.get(url, {"model_served": "beta"})
    assert [row.model_served for row in beta.context["cl"].result_list] == ["beta"]


def test_the_costs_summary_adds_spend_per_day_model_and_key_with_latency_percentiles() -> None:
    for latency in range(1, 101):
        log_row("alpha", cost="0.01", latency=float(latency))
    log_row("alpha", status="error", cost="0")
    log_row("beta", cost="0.5", created_at=timezone.now() - timedelta(days=2), cache_status="HIT")
    log_row("old", cost="9", created_at=timezone.now() - timedelta(days=40))
    summary = costs_summary(days=14)
    assert summary.total_cost_usd == Decimal("1.5")
    assert [m.model for m in summary.models] == ["alpha", "beta"]
    alpha = summary.models[0]
    assert (alpha.requests, alpha.errors, alpha.p50_ms, alpha.p95_ms) == (101, 1, 50.0, 95.0)
    assert [cost for _, cost, _ in summary.days] == [Decimal("0.5"), Decimal("1.0")]
    assert summary.keys == [("(no person): completion", Decimal("1.5"), 102)]
    assert summary.cache_hit_rate == pytest.approx(1 / 102)


def test_the_costs_summary_says_whose_spend_each_key_and_each_signed_in_use_is(django_user_model: Any) -> None:
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    key, _ = api_key_create(user=bob, name="ci")
    log_row("alpha", cost="0.3", endpoint="chat", user=alice)
    log_row("alpha", cost="0.3", endpoint="chat", user=alice)
    log_row("alpha", cost="0.2", endpoint="agent", user=alice)
    log_row("alpha", cost="0.4", endpoint="chat", user=bob, api_key=key)
    log_row("alpha", cost="0.1", endpoint="embedding")
    summary = costs_summary(days=14)
    assert summary.keys == [
        ("alice: web chat", Decimal("0.6"), 2),
        (f"bob: key {key.prefix}… ci", Decimal("0.4"), 1),
        ("alice: agent tasks", Decimal("0.2"), 1),
        ("(no person): cache embeddings", Decimal("0.1"), 1),
    ]


def test_latencies_read_as_whole_milliseconds_or_seconds_with_one_decimal() -> None:
    assert [duration_text(ms) for ms in (None, 0.4, 87.3456, 999.4, 999.6, 1234.567, 61_049.9)] == [
        "–",
        "0 ms",
        "87 ms",
        "999 ms",
        "1.0 s",
        "1.2 s",
        "61.0 s",
    ]


def test_percentiles_use_the_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0


def test_the_costs_page_draws_its_charts_without_anything_from_the_internet(admin_client: Any) -> None:
    log_row("alpha", cost="0.25", latency=1234.5678)
    page = admin_client.get(reverse("admin:orchestration_requestlog_costs"), {"days": "7"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "$0.2500" in html and "alpha" in html and 'id="costs-data"' in html
    assert "1.2 s" in html and "1234.5678" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    assert admin_client.get(reverse("admin:orchestration_requestlog_costs"), {"days": "x"}).status_code == 200


def test_editing_a_prompt_in_the_admin_adds_a_version_and_keeps_the_old_one(admin_client: Any) -> None:
    add = reverse("admin:orchestration_prompttemplate_add")
    form = {
        "name": "support",
        "description": "",
        "system_prompt": "Help {customer}.",
        "default_model": "",
        "parameters": '{"temperature": 0.2}',
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    assert admin_client.post(add, form).status_code == 302
    template = PromptTemplate.objects.get(name="support")
    change = reverse("admin:orchestration_prompttemplate_change", args=[template.pk])
    admin_client.post(change, {**form, "system_prompt": "Help {customer} kindly."})
    admin_client.post(change, {**form, "system_prompt": "Help {customer} kindly."})  # unchanged: no new version
    versions = list(template.versions.order_by("version").values_list("version", "system_prompt"))
    assert versions == [(1, "Help {customer}."), (2, "Help {customer} kindly.")]
    page = admin_client.get(change).content.decode()
    assert "Help {customer}." in page and "history" in page


def test_a_prompt_with_unknown_parameters_is_refused_by_the_form(admin_client: Any) -> None:
    form = {
        "name": "bad",
        "system_prompt": "x",
        "parameters": '{"temprature": 1}',
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    page = admin_client.post(reverse("admin:orchestration_prompttemplate_add"), form)
    assert page.status_code == 200 and "Unknown parameters: temprature" in page.content.decode()
    assert not PromptTemplate.objects.filter(name="bad").exists()


@pytest.mark.parametrize(
    ("parameters", "said"),
    [
        ('{"max_tokens": -5}', "max_tokens"),
        ('{"temperature": "hot"}', "temperature"),
        ('{"top_p": 7}', "top_p"),
    ],
)
def test_a_prompt_default_no_request_could_carry_is_refused_by_the_form(
    admin_client: Any, parameters: str, said: str
) -> None:
    """Every call naming the template would carry it: max_tokens -5 made each of them a 400 that
    blamed the caller ("The model provider refused the request as invalid")."""
    form = {
        "name": "careless",
        "system_prompt": "x",
        "parameters": parameters,
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    page = admin_client.post(reverse("admin:orchestration_prompttemplate_add"), form)
    assert page.status_code == 200 and said in str(page.context["adminform"].form.errors["parameters"])
    assert not PromptTemplate.objects.filter(name="careless").exists()
