"""The registry snapshot (``orchestration.registry``): read once, read again when stale by one
caller at a time, and read at once after a change."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration import registry
from tests.orchestration.harness import model_row, provider_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_snapshot() -> Any:
    registry.snapshot_invalidate()
    yield
    registry.snapshot_invalidate()


def stale(snapshot: registry.Snapshot) -> registry.Snapshot:
    return replace(snapshot, taken_at=time.monotonic() - registry.REFRESH_S - 1)


def test_a_stale_snapshot_being_read_again_elsewhere_is_served_as_it_is(fresh_snapshot: None) -> None:
    model_row("m-old", provider_row("p", "http://127.0.0.1:9"))
    taken = registry.snapshot()
    model_row("m-new", registry_provider())
    registry._snapshot = old = stale(taken)  # as if m-new had been added by another process

    with registry._reloading, CaptureQueriesContext(connection) as queries:
        served = registry.snapshot()  # another caller is reading it again

    assert served is old and len(queries) == 0
    assert "m-new" in registry.snapshot().models  # the next caller reads it again itself


def test_a_changed_registry_is_read_before_anyone_goes_on(fresh_snapshot: None) -> None:
    model_row("m-old", provider_row("p", "http://127.0.0.1:9"))
    registry.snapshot()
    model_row("m-new", registry_provider())  # saved here: announced, the snapshot is dropped

    assert "m-new" in registry.snapshot().models


def test_a_read_that_overlapped_a_change_is_not_kept(fresh_snapshot: None) -> None:
    provider = provider_row("p", "http://127.0.0.1:9")
    model_row("m-old", provider)
    reading, changed = threading.Event(), threading.Event()
    load = registry.snapshot_load

    def slow_load() -> registry.Snapshot:
        loaded = load()
        reading.set()
        changed.wait(5)
        return loaded

    registry.snapshot_load = slow_load  # type: ignore[assignment]
    try:
        reader = threading.Thread(target=registry.snapshot)
        reader.start()
        reading.wait(5)
        registry.snapshot_invalidate()  # a change announced while the rows were read
        changed.set()
        reader.join(5)
    finally:
        registry.snapshot_load = load  # type: ignore[assignment]

    assert registry._snapshot is None


def registry_provider() -> Any:
    from orchestration.models import Provider

    return Provider.objects.get(name="p")
