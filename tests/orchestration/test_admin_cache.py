"""The cache admin: the list of cached answers and purges that reach Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse

from orchestration.caching.exact import ResponseCache, cache_index_flush
from orchestration.models import CacheEntry
from orchestration.orchestrator import CallContext
from orchestration.types import ChatRequest, ChatResponse, Message
from tests.orchestration.harness import route

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "admin:orchestration_cacheentry_changelist"


def store(model: str, question: str, content: str) -> None:
    async def run() -> None:
        cache = ResponseCache()
        request = ChatRequest(model=model, messages=[Message(role="user", content=question)], temperature=0)
        response = ChatResponse(id="r", model=model, content=content)
        await cache.store(request, route(name=model), response, CallContext(endpoint="completion"))
        await cache.aclose()
        await asyncio.to_thread(cache_index_flush)

    async_to_sync(run)()


def exact_keys(redis_client: Any) -> int:
    return len(redis_client.keys("sy:cache:exact:*"))


def test_the_list_shows_model_kind_question_answer_hits_and_expiry(admin_client: Any) -> None:
    store("big", "What is the capital of France?", "Paris.")
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    for text in ("big", "exact", "What is the capital of France?", "Paris.", "Purge all"):
        assert text in page
    assert "delete_selected" not in page


def test_purging_selected_entries_deletes_them_from_redis(admin_client: Any, redis_client: Any) -> None:
    store("big", "one?", "1")
    store("big", "two?", "2")
    chosen = CacheEntry.objects.get(question_preview="one?")
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "purge_selected", "_selected_action": [chosen.pk]}, follow=True
    )
    assert "Purged 1 cached answer" in response.content.decode()
    assert list(CacheEntry.objects.values_list("question_preview", flat=True)) == ["two?"]
    assert exact_keys(redis_client) == 1


def test_purging_by_model_keeps_other_models(admin_client: Any, redis_client: Any) -> None:
    store("big", "one?", "1")
    store("big", "two?", "2")
    store("small", "three?", "3")
    chosen = CacheEntry.objects.get(question_preview="one?")
    admin_client.post(reverse(CHANGELIST), {"action": "purge_models_of_selected", "_selected_action": [chosen.pk]})
    assert list(CacheEntry.objects.values_list("model", flat=True)) == ["small"]
    assert exact_keys(redis_client) == 1


def test_purge_all_asks_first_then_empties_the_cache(admin_client: Any, redis_client: Any) -> None:
    store("big", "one?", "1")
    store("small", "two?", "2")
    url = reverse("admin:orchestration_cacheentry_purge_all")
    assert "Yes, purge everything" in admin_client.get(url).content.decode()
    assert CacheEntry.objects.count() == 2
    admin_client.post(url)
    assert CacheEntry.objects.count() == 0
    assert redis_client.keys("sy:cache:*") == []


def test_the_purge_page_is_for_staff_only(client: Any) -> None:
    response = client.get(reverse("admin:orchestration_cacheentry_purge_all"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def store_semantic(model: str, question: str, content: str) -> None:
    async def run() -> None:
        cache = ResponseCache()
        request = ChatRequest(model=model, messages=[Message(role="user", content=question)], temperature=0.7)
        response = ChatResponse(id="r", model=model, content=content)
        await cache.store(request, route(name=model, cache_semantic=True), response, CallContext(endpoint="completion"))
        await cache.aclose()
        await asyncio.to_thread(cache_index_flush)

    async_to_sync(run)()


def test_marking_a_semantic_answer_wrong_evicts_it_counts_it_and_raises_the_models_floor(
    admin_client: Any, redis_client: Any
) -> None:
    from orchestration.models import LanguageModel, SemanticWrongHit
    from tests.orchestration.harness import model_row, provider_row

    model_row("faq", provider_row("sim", "http://127.0.0.1:9"), cache_semantic=True)
    store_semantic("faq", "How do I cancel my order?", "Open Orders, then Cancel.")
    store("faq", "What is 2 + 2?", "4")
    selected = list(CacheEntry.objects.values_list("pk", flat=True))

    response = admin_client.post(
        reverse(CHANGELIST), {"action": "report_wrong_semantic_hits", "_selected_action": selected}, follow=True
    )

    page = response.content.decode()
    assert "Marked 1 semantic answer(s) as wrong hits" in page and "1 exact answer(s) left alone" in page
    assert list(CacheEntry.objects.values_list("kind", flat=True)) == ["exact"]
    assert not redis_client.hlen(next(iter(redis_client.keys("sy:cache:sem:*:vec")), b"none"))
    report = SemanticWrongHit.objects.get()
    assert (report.model, report.source, report.question_preview) == ("faq", "admin", "How do I cancel my order?")
    assert LanguageModel.objects.get(name="faq").cache_semantic_learned_floor > 0.5
    costs = admin_client.get(reverse("admin:orchestration_requestlog_costs")).content.decode()
    assert '<strong id="semantic-wrong-hits">1</strong>' in costs
