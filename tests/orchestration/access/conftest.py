"""Fixtures of the access tests: a simulator-backed model every door can call."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from orchestration.models import LanguageModel, Provider
from orchestration.registry import snapshot_invalidate
from tests.orchestration.access.doors import MODEL


@pytest.fixture
def door_model(transactional_db: None, simulator: Any) -> Iterator[LanguageModel]:
    """A chat model with tools, at most 64 output tokens, with prices, served by the simulator."""
    provider = Provider.objects.create(name="sim", kind=Provider.Kind.SIMULATOR, base_url=simulator.url + "/v1")
    model = LanguageModel.objects.create(
        name=MODEL,
        provider=provider,
        upstream=MODEL,
        capabilities=["chat", "tools"],
        max_output_tokens=64,
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("2"),
        cache_exact_enabled=False,
    )
    snapshot_invalidate()
    yield model
    snapshot_invalidate()
