"""Startup housekeeping: the loaded application is kept out of the collector's full passes."""

from __future__ import annotations

import gc
import subprocess
import sys

from project.housekeeping import (
    FULL_COLLECTION_AFTER,
    MIDDLE_COLLECTION_AFTER,
    YOUNG_COLLECTION_AFTER,
    freeze_loaded_objects,
)


def test_the_loaded_application_is_frozen_with_its_views_imported() -> None:
    try:
        frozen = freeze_loaded_objects()

        assert "orchestration.apis" in sys.modules and "chat.apis" in sys.modules  # the views, loaded first
        # Every adapter too: the first model call after a start does not pay for importing them.
        assert {"orchestration.providers.anthropic", "orchestration.providers.gemini"} <= set(sys.modules)
        # Frozen objects can still be freed (another thread drops its last reference), so the count
        # only ever falls after the freeze.
        assert frozen >= gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_a_web_process_loads_its_adapters_and_their_tls_roots_at_start_and_not_httpx() -> None:
    """httpx (and what it pulls in, rich when installed) is not on a web process's path: the
    adapters speak aiohttp. About 7 MB of RSS and a tenth of a second of the first call. The TLS
    context is built at start too: loading the trusted roots took 26-133 ms of the first call."""
    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'project.settings'; from project import asgi; "
        "print(sorted(name for name in ('httpx', 'aiohttp', 'orchestration.providers.openai') if name in sys.modules))"
        "\n"
        "from orchestration.providers.transport import tls_context; print(tls_context.cache_info().currsize)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)

    assert result.stdout.split("\n")[-3:-1] == ["['aiohttp', 'orchestration.providers.openai']", "1"]


def test_young_and_full_collections_are_spaced_out_and_middle_ones_come_sooner() -> None:
    before = gc.get_threshold()
    try:
        freeze_loaded_objects()
        assert gc.get_threshold() == (YOUNG_COLLECTION_AFTER, MIDDLE_COLLECTION_AFTER, FULL_COLLECTION_AFTER)
        # CPython's thresholds are 700, 10 and 10.
        assert YOUNG_COLLECTION_AFTER > 700 and MIDDLE_COLLECTION_AFTER < 10 < FULL_COLLECTION_AFTER
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_worker_builds_the_tls_roots_once_in_the_parent_for_every_job() -> None:
    """Each job runs in a fork of the worker: what the parent built, no job builds again."""
    from agents.workers import modules_preload
    from orchestration.providers.transport import tls_context

    tls_context.cache_clear()
    modules_preload()

    assert tls_context.cache_info().currsize == 1
