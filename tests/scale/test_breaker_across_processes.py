"""A breaker opened by the traffic of one web process is open in the other (it lives in Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.breaker import OPEN, breaker_read
from tests.scale.conftest import BACKUP_MODEL, PRIMARY_MODEL, PRIMARY_PROVIDER, api
from tests.scale.fleet import Fleet

pytestmark = pytest.mark.scale


def ask(client: Any, number: int) -> Any:
    body = {"model": PRIMARY_MODEL, "messages": [{"role": "user", "content": f"Question {number}?"}], "max_tokens": 8}
    return client.post("/v1/chat/completions", json=body)


def test_a_breaker_opened_through_one_process_keeps_the_other_off_the_failing_provider(
    fleet: Fleet, alice_key: str, simulator: Any
) -> None:
    simulator.configure(PRIMARY_MODEL, error_status=503)
    first, second = fleet.webs
    with api(first.url, alice_key) as client:
        for number in range(30):
            answer = ask(client, number)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-fallback-from"] == PRIMARY_MODEL
            view = breaker_read(PRIMARY_PROVIDER, 60)
            if view is not None and view.state == OPEN:
                break
    assert view is not None and view.state == OPEN, view
    calls_to_primary = simulator.stats(PRIMARY_MODEL)["requests"]
    assert calls_to_primary >= 10  # the window: no verdict before ten calls

    with api(second.url, alice_key) as client:
        answers = [ask(client, 100 + number) for number in range(3)]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-served-model"] == BACKUP_MODEL
        assert answer.headers["x-fallback-from"] == PRIMARY_MODEL
    assert simulator.stats(PRIMARY_MODEL)["requests"] == calls_to_primary
    assert simulator.stats(BACKUP_MODEL)["requests"] >= calls_to_primary + 3
