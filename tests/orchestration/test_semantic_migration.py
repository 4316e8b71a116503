"""Migration 0005: models still at the old default threshold move to the error budget; chosen ones stay."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("orchestration", "0004_request_log_error_detail")]
AFTER = [("orchestration", "0005_semantic_error_budget")]


def migrate(target: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_a_model_at_the_old_default_follows_the_budget_and_a_chosen_threshold_is_kept() -> None:
    old = migrate(BEFORE)
    provider = old.get_model("orchestration", "Provider").objects.create(name="p", kind="openai", base_url="http://x")
    models = old.get_model("orchestration", "LanguageModel").objects
    models.create(name="default", provider=provider, upstream="a", cache_semantic_threshold=0.85)
    models.create(name="chosen", provider=provider, upstream="b", cache_semantic_threshold=0.93)

    new = migrate(AFTER).get_model("orchestration", "LanguageModel").objects
    assert {m.name: (m.cache_semantic_threshold, m.cache_semantic_error_budget) for m in new.all()} == {
        "default": (None, 0.01),
        "chosen": (0.93, 0.01),
    }

    back = migrate(BEFORE).get_model("orchestration", "LanguageModel").objects
    assert back.get(name="default").cache_semantic_threshold == 0.85
    migrate([("orchestration", MigrationExecutor(connection).loader.graph.leaf_nodes("orchestration")[0][1])])
