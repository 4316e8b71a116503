"""Background responses whose tests start (and kill) their own RQ workers: recovery after a worker
or its work horse dies, and a long run whose key is revoked. No module-wide worker runs here, so the
worker a test starts is the one that takes its response."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest

from orchestration.access.keys import api_key_create
from orchestration.models import StoredResponse
from orchestration.responses import eventlog
from tests.agents.conftest import wait_until
from tests.orchestration.access.doors import revoke_in_another_process
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    make_key,
    sim_models,
)
from tests.orchestration.responses.test_background import client, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_a_background_response_survives_sigkill_of_its_worker_and_completes_on_another(
    sim_models, make_key, live_web, workers, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", latency_ms=1500)
    first = workers()
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", background=True)

    wait_until(lambda: simulator.stats("gpt-sim")["in_flight"] == 1, what="the worker's model call")
    holder = wait_until(lambda: StoredResponse.objects.get(pk=created.id).worker, what="the claim's holder")
    os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)  # the work horse running the response
    first.kill()  # and its parent: the whole worker is gone

    workers()
    row = wait_for_status(created.id, "completed", timeout=45)
    assert row.attempts == 2 and row.output[0]["content"][0]["text"]
    assert sdk.responses.retrieve(created.id).output_text == row.output[0]["content"][0]["text"]


def test_when_only_the_work_horse_dies_its_worker_queues_the_response_again_at_once(
    sim_models, make_key, live_web, workers, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", latency_ms=1500)
    workers(SWITCHYARD_AGENT_STALE_S="600")  # so the reaper cannot be what brings it back
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", background=True)

    wait_until(lambda: simulator.stats("gpt-sim")["in_flight"] == 1, what="the worker's model call")
    holder = wait_until(lambda: StoredResponse.objects.get(pk=created.id).worker, what="the claim's holder")
    os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)

    row = wait_for_status(created.id, "completed", timeout=20)
    assert row.attempts == 2


def test_a_background_responses_stream_ends_within_a_second_of_its_key_being_revoked(
    sim_models, alice, live_web, workers, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", tokens_per_s=4, reply=" ".join(["word"] * 200))
    workers()  # its own: the run goes on after the revocation, and ends with its worker
    key, secret = api_key_create(user=alice)
    sdk = client(live_web, secret)
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", background=True)
    wait_for_status(created.id, "in_progress")
    with httpx.stream(
        "GET", f"{live_web.url}/v1/responses/{created.id}?stream=true", headers={"Authorization": f"Bearer {secret}"}
    ) as stream:
        lines = stream.iter_lines()
        next(line for line in lines if line.startswith("event: response.output_text.delta"))  # flowing
        revoke_in_another_process(key.pk)
        revoked_at = time.monotonic()
        error = next(
            json.loads(line.removeprefix("data: ")) for line in lines if line.startswith('data: {"type":"error"')
        )
        waited = time.monotonic() - revoked_at
    assert error["code"] == "key_revoked" and error["message"]
    assert waited < 1.0, waited
    # The run itself goes on (its owner may still read it with another key): cancel it, so that
    # its worker is free at once rather than after the 50 s story.
    other = api_key_create(user=alice)[1]
    cancelled = httpx.post(
        f"{live_web.url}/v1/responses/{created.id}/cancel", headers={"Authorization": f"Bearer {other}"}, timeout=10
    )
    assert cancelled.status_code == 200, cancelled.text


def test_a_paused_worker_that_wakes_after_its_response_was_taken_over_writes_nothing_to_its_stream(
    sim_models, make_key, live_web, workers, simulator, redis_client
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", tokens_per_s=10, reply=" ".join(["word"] * 80))
    first = workers()
    secret = make_key()
    created = client(live_web, secret).responses.create(model="gpt-sim", input="Tell me a story.", background=True)
    log = eventlog.events_key(created.id)
    wait_until(lambda: redis_client.xlen(log) >= 30, what="the first run's events")
    holder = StoredResponse.objects.get(pk=created.id).worker
    paused = [int(holder.rsplit(":", 1)[1]), first.process.pid]  # its work horse and its parent
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    try:
        workers()  # takes the response over once the first worker's heartbeat is stale

        def second_run_began() -> bool:
            last = redis_client.xrevrange(log, count=1)
            return bool(last) and last[0][0].endswith(b"-2") and redis_client.xlen(log) >= 3

        wait_until(second_run_began, what="the second run's first events")
    finally:
        for pid in paused:  # the first worker wakes up 30 events ahead of the second run
            os.kill(pid, signal.SIGCONT)

    row = wait_for_status(created.id, "completed", timeout=30)
    assert row.attempts == 2
    headers = {"Authorization": f"Bearer {secret}"}
    body = httpx.get(f"{live_web.url}/v1/responses/{created.id}?stream=true", headers=headers, timeout=10).text
    assert '"type":"error"' not in body and '"type":"response.completed"' in body
