"""Experiments on a prompt template: sticky versions through ``/v1`` and the chat, and promotion
that makes the winning version the template's default."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from orchestration.errors import InvalidRequest
from orchestration.models import Experiment, PromptTemplate, RequestLog
from orchestration.prompts import prompt_render, prompt_version_create
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from orchestration.routing.services import experiment_create, experiment_promote
from orchestration.types import CallContext
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    chat_body,
    in_thread,
    make_key,
    post_json,
    sim_models,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _support_trial(sticky_by: str = "key") -> Experiment:
    support = PromptTemplate.objects.create(name="support")
    prompt_version_create(template=support, system_prompt="Version one for {company}.")
    prompt_version_create(template=support, system_prompt="Version two for {company}.")
    experiment = experiment_create(
        name="support-tone",
        prompt_template=support,
        sticky_by=sticky_by,
        variants=[
            {"name": "one", "percent": 50, "prompt_version": 1},
            {"name": "two", "percent": 50, "prompt_version": 2, "parameters": {"temperature": 0.1}},
        ],
    )
    snapshot_invalidate()
    return experiment


async def test_each_key_keeps_one_prompt_version_and_calls_are_logged_with_it(sim_models: Any, make_key: Any) -> None:
    await in_thread(_support_trial)
    secrets = [await in_thread(make_key) for _ in range(16)]
    body = {**chat_body(), "prompt": {"name": "support", "variables": {"company": "Acme"}}}
    for round_number in range(2):
        for index, secret in enumerate(secrets):
            request_id = f"k{index}-r{round_number}"
            response = await post_json(
                AsyncClient(), "/v1/chat/completions", body, secret, **{"X-Request-ID": request_id}
            )
            assert response.status_code == 200, response.content
    await asyncio.to_thread(requestlog_flush)
    rows = await sync_to_async(
        lambda: list(RequestLog.objects.values_list("request_id", "experiment", "variant", "prompt_version"))
    )()
    by_key: dict[str, set[tuple[str, str, int]]] = {}
    for request_id, experiment, variant, version in rows:
        if request_id.endswith(("-r0", "-r1")):  # this test's calls: an earlier test's row may land late
            by_key.setdefault(request_id.split("-")[0], set()).add((experiment, variant, version))
    assert all(len(seen) == 1 for seen in by_key.values()), by_key
    arms = Counter(next(iter(seen)) for seen in by_key.values())
    assert set(arms) == {("support-tone", "one", 1), ("support-tone", "two", 2)}, arms


def test_a_chat_conversation_sticks_to_one_version_and_the_variant_sets_parameters(sim_models: Any) -> None:
    _support_trial(sticky_by="conversation")
    seen = set()
    for asker in range(5):
        ctx = CallContext(endpoint="chat", user_id=asker, conversation_id=42)
        rendered = prompt_render(name="support", variables={"company": "Acme"}, ctx=ctx)
        seen.add((rendered.version, ctx.variant, rendered.parameters.get("temperature")))
    assert seen in ({(1, "one", None)}, {(2, "two", 0.1)})
    pinned = CallContext(endpoint="chat", conversation_id=42)
    assert prompt_render(name="support", variables={"company": "A"}, version=1, ctx=pinned).version == 1
    assert pinned.experiment == ""  # a pinned version is outside the experiment


def test_promoting_a_prompt_variant_makes_its_version_the_default(sim_models: Any) -> None:
    experiment = _support_trial()
    experiment_promote(experiment=experiment, variant=experiment.variants.get(name="one"))
    snapshot_invalidate()
    latest = prompt_render(name="support", variables={"company": "Acme"}, ctx=CallContext(endpoint="x", api_key_id=7))
    assert (latest.version, latest.system) == (3, "Version one for Acme.")
    assert Experiment.objects.get().winner == "one"


def test_a_prompt_variant_must_name_a_version_the_template_has(sim_models: Any) -> None:
    support = PromptTemplate.objects.create(name="support")
    prompt_version_create(template=support, system_prompt="Only one.")
    with pytest.raises(InvalidRequest) as refused:
        experiment_create(
            name="t",
            prompt_template=support,
            sticky_by="user",
            variants=[
                {"name": "a", "percent": 50, "prompt_version": 1},
                {"name": "b", "percent": 50, "prompt_version": 9},
            ],
        )
    assert "has no version 9" in refused.value.message
