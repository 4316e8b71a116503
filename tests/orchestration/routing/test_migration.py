"""Migration 0009 turns each existing model into a model with one deployment, and back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("orchestration", "0008_model_chat_default")]
AFTER = [("orchestration", "0009_deployments_experiments_feedback")]


def _migrate(target: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return MigrationExecutor(connection)


def test_each_existing_model_becomes_one_deployment_of_its_own_provider_and_upstream() -> None:
    try:
        old = _migrate(BEFORE).loader.project_state(BEFORE).apps
        provider = old.get_model("orchestration", "Provider").objects.create(name="acct", kind="openai")
        old.get_model("orchestration", "LanguageModel").objects.create(name="m", provider=provider, upstream="m-2024")

        new = _migrate(AFTER).loader.project_state(AFTER).apps
        rows = new.get_model("orchestration", "Deployment").objects.values_list(
            "model__name", "name", "provider__name", "upstream", "weight", "rpm_limit"
        )
        assert list(rows) == [("m", "acct", "acct", "m-2024", 1, None)]
        assert new.get_model("orchestration", "LanguageModel").objects.get().routing_strategy == "weighted"
    finally:
        executor = MigrationExecutor(connection)
        _migrate(executor.loader.graph.leaf_nodes())  # every app back at its latest for the next tests
