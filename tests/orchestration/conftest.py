"""Fixtures of the orchestration tests (defined in ``harness``)."""

from __future__ import annotations

from tests.orchestration.harness import breaker_clock, orchestrator, recorded_sleep, registry

__all__ = ["breaker_clock", "orchestrator", "recorded_sleep", "registry"]
