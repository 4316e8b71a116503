"""Experiments: sticky assignment, tagged request-log rows, the admin's side-by-side figures,
pause, and promote (the winner becomes the default)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from orchestration.models import Experiment, ExperimentVariant, Feedback, LanguageModel, RequestLog
from orchestration.orchestrator import Orchestrator
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from orchestration.routing.feedback import feedback_give
from orchestration.routing.selectors import experiment_comparison, proportions_interval
from orchestration.routing.services import experiment_create, experiment_pause, experiment_promote
from tests.conftest import Simulator
from tests.orchestration.harness import ask, ctx, model_row

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def trial(pool: dict[str, Any]) -> Experiment:
    """Half of "pool"'s traffic stays (control), half goes to model "pool-next" (upstream "pool-next")."""
    following = model_row("pool-next", pool["west_account"])
    experiment = experiment_create(
        name="next-model",
        model=pool["model"],
        sticky_by=Experiment.Sticky.USER,
        variants=[{"name": "control", "percent": 50}, {"name": "next", "percent": 50, "target": following}],
    )
    snapshot_invalidate()
    return experiment


async def _ask(router: Orchestrator, **context: Any) -> Any:
    _, served = await router.complete(ask("pool", max_tokens=5), ctx(**context))
    return served


async def test_a_user_always_gets_one_variant_and_users_split_by_the_percentages(
    router: Orchestrator, trial: Experiment, simulator: Simulator, alice: Any, bob: Any
) -> None:
    people: Counter[str] = Counter()
    for person in (alice, bob):
        seen = {(s.variant, s.model) for s in [await _ask(router, user_id=person.pk) for _ in range(8)]}
        assert len(seen) == 1, seen
        people[seen.pop()[0]] += 8
    # 400 other subjects (by API key id): a 50/50 split, within five standard deviations.
    variants = Counter([(await _ask(router, api_key_id=key)).variant for key in range(1000, 1400)])
    assert abs(variants["next"] - 200) < 5 * 10, variants
    assert simulator.stats("pool-next")["completed"] == variants["next"] + people["next"]


async def test_sticky_by_conversation_keeps_a_conversation_on_one_variant_whoever_asks(
    router: Orchestrator, trial: Experiment, simulator: Simulator
) -> None:
    await sync_to_async(Experiment.objects.update)(sticky_by="conversation")
    snapshot_invalidate()
    for conversation in range(1, 6):
        variants = {
            (await _ask(router, conversation_id=conversation, user_id=None, api_key_id=k)).variant for k in (1, 2, 3)
        }
        assert len(variants) == 1


async def test_calls_are_logged_with_their_variant_and_a_paused_experiment_splits_nothing(
    router: Orchestrator, trial: Experiment, simulator: Simulator, alice: Any
) -> None:
    served = await _ask(router, user_id=alice.pk, request_id="during")
    await sync_to_async(experiment_pause)(experiment=trial)
    after = await _ask(router, user_id=alice.pk, request_id="paused")
    assert (after.experiment, after.variant, after.model) == ("", "", "pool")
    await asyncio.to_thread(requestlog_flush)
    rows = await sync_to_async(lambda: dict(RequestLog.objects.values_list("request_id", "variant")))()
    assert rows == {"during": served.variant, "paused": ""}


async def test_promoting_the_winner_makes_it_the_default_of_the_model(
    router: Orchestrator, trial: Experiment, simulator: Simulator, alice: Any
) -> None:
    winner = await sync_to_async(ExperimentVariant.objects.get)(name="next")
    await sync_to_async(experiment_promote)(experiment=trial, variant=winner)
    simulator.reset()
    for key in range(20):
        served = await _ask(router, api_key_id=key)
        assert (served.model, served.experiment, served.provider) == ("pool", "", "acct-west")
    assert simulator.stats("pool-next")["completed"] == 20
    assert simulator.stats("pool-east")["requests"] == 0
    ended = await sync_to_async(Experiment.objects.get)(pk=trial.pk)
    assert (ended.status, ended.winner) == ("ended", "next")
    model = await sync_to_async(LanguageModel.objects.select_related("provider").get)(name="pool")
    assert (model.provider.name, model.upstream) == ("acct-west", "pool-next")


def test_a_variant_with_parameters_cannot_be_promoted_and_the_experiment_stays_live(
    pool: dict[str, Any],
) -> None:
    from orchestration.errors import InvalidRequest

    experiment = experiment_create(
        name="cooler",
        model=pool["model"],
        sticky_by="user",
        variants=[
            {"name": "control", "percent": 90},
            {"name": "cool", "percent": 10, "parameters": {"temperature": 0}},
        ],
    )
    with pytest.raises(InvalidRequest) as refused:
        experiment_promote(experiment=experiment, variant=experiment.variants.get(name="cool"))
    assert refused.value.code == "variant_not_promotable"
    assert Experiment.objects.get(pk=experiment.pk).status == "running"


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([{"name": "a", "percent": 50}, {"name": "b", "percent": 40}], "add up to 100"),
        ([{"name": "a", "percent": 50}, {"name": "a", "percent": 50}], "share a name"),
        ([{"name": "a", "percent": 100}], "at least two variants"),
        (
            [{"name": "a", "percent": 50}, {"name": "b", "percent": 50, "parameters": {"model": "x"}}],
            "cannot set 'model'",
        ),
    ],
)
def test_bad_experiments_are_refused_with_a_plain_sentence(
    pool: dict[str, Any], variants: list[dict[str, Any]], message: str
) -> None:
    from orchestration.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as refused:
        experiment_create(name="bad", model=pool["model"], sticky_by="user", variants=variants)
    assert message in refused.value.message
    assert not Experiment.objects.exists()


async def test_the_admin_shows_each_variants_figures_side_by_side_and_promotes(
    router: Orchestrator, trial: Experiment, simulator: Simulator, alice: Any, admin_user: Any
) -> None:
    simulator.configure("pool-next", latency_ms=60)
    await sync_to_async(Experiment.objects.update)(sticky_by="conversation")
    snapshot_invalidate()
    for conversation in range(60):
        await _ask(router, conversation_id=conversation, request_id=f"call-{conversation}", user_id=alice.pk)
    await asyncio.to_thread(requestlog_flush)

    def rate_and_read() -> tuple[str, Any]:
        for row in RequestLog.objects.filter(variant="next")[:5]:
            feedback_give(user_id=alice.pk, request_id=row.request_id, score=1)
        for row in RequestLog.objects.filter(variant="control")[:3]:
            feedback_give(user_id=alice.pk, request_id=row.request_id, score=-1)
        client = Client()
        client.force_login(admin_user)
        page = client.get(reverse("admin:orchestration_experiment_change", args=[trial.pk]))
        return page.content.decode(), experiment_comparison(trial)

    html, figures = await sync_to_async(rate_and_read)()
    control, following = figures
    assert control.calls + following.calls == 60 and control.calls > 10 and following.calls > 10
    assert (following.thumbs_up, following.thumbs_down, control.thumbs_up, control.thumbs_down) == (5, 0, 0, 3)
    assert following.latency_diff_ms is not None and following.latency_diff_ms.significant
    assert following.latency_diff_ms.low > 30  # the simulator's 60 ms, told apart from chance
    for figure in figures:
        row = re.search(rf'<tr data-variant="{figure.name}">(.*?)</tr>', html, re.S)
        assert row is not None
        assert f'<td class="calls">{figure.calls}</td>' in row.group(1)
        assert f'<td class="feedback">{figure.thumbs_up} / {figure.thumbs_down}</td>' in row.group(1)
    promote_url = reverse("admin:orchestration_experiment_promote", args=[trial.pk, following.variant_id])
    assert promote_url in html

    def promote() -> None:
        client = Client()
        client.force_login(admin_user)
        assert "Yes, promote next" in client.get(promote_url).content.decode()
        assert client.post(promote_url).status_code == 302

    await sync_to_async(promote)()
    assert (await sync_to_async(Experiment.objects.get)(pk=trial.pk)).winner == "next"


def test_the_difference_of_two_rates_has_the_textbook_interval() -> None:
    interval = proportions_interval(40, 100, 60, 100)
    assert interval is not None
    assert interval.difference == pytest.approx(0.2)
    assert (interval.low, interval.high) == (pytest.approx(0.0642, abs=1e-3), pytest.approx(0.3358, abs=1e-3))
    assert interval.significant
    assert Feedback.objects.count() == 0
