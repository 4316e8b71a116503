"""Background responses: queued at once, run by RQ workers, polled, streamed, cancelled, recovered."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import httpx
import openai
import pytest

from orchestration.access.keys import api_key_create
from orchestration.models import StoredResponse
from tests.agents.conftest import wait_until
from tests.orchestration.access.doors import revoke_in_another_process
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    make_key,
    sim_models,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def client(live_web: Any, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_web.url}/v1", api_key=secret, max_retries=0, timeout=30)


def wait_for_status(response_id: str, *statuses: str, timeout: float = 20.0) -> StoredResponse:
    def reached() -> StoredResponse | None:
        row = StoredResponse.objects.get(pk=response_id)
        return row if row.status in statuses else None

    return wait_until(reached, timeout=timeout, what=f"response {response_id} to be {' or '.join(statuses)}")  # type: ignore[no-any-return]


def test_a_background_response_is_queued_then_completed_by_a_worker_and_its_events_replay(
    sim_models, make_key, live_web, workers
) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key(rpm=100, tpm=100_000))
    raw = sdk.responses.with_raw_response.create(model="gpt-sim", input="Tell me a story.", background=True)
    created = raw.parse()
    assert created.status == "queued" and created.background is True and created.output == []
    assert raw.headers["x-ratelimit-remaining-requests"] == "99"  # admitted at the door, like a task

    workers()
    wait_for_status(created.id, "completed")
    done = sdk.responses.retrieve(created.id)
    assert done.status == "completed" and done.output_text and done.usage is not None

    events = list(sdk.responses.retrieve(created.id, stream=True))
    assert [event.type for event in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed" and events[-1].response.output_text == done.output_text  # type: ignore[union-attr]
    assert [event.sequence_number for event in events] == list(range(len(events)))

    later = list(sdk.responses.retrieve(created.id, stream=True, starting_after=3))
    assert [event.sequence_number for event in later] == list(range(4, len(events)))


def test_a_background_response_streams_live_from_its_creation(sim_models, make_key, live_web, workers) -> None:  # type: ignore[no-untyped-def]
    workers()
    sdk = client(live_web, make_key())
    events = list(sdk.responses.create(model="gpt-sim", input="Tell me a story.", background=True, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == events[-1].response.output_text  # type: ignore[union-attr]


def test_cancelling_a_running_background_response_stops_its_worker(
    sim_models, make_key, live_web, workers, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", latency_ms=20_000)
    workers()
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", background=True)
    wait_until(lambda: simulator.stats("gpt-sim")["in_flight"] == 1, what="the worker's model call")

    cancelled = sdk.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    wait_until(lambda: simulator.stats("gpt-sim")["in_flight"] == 0, timeout=5, what="the model call to stop")
    assert sdk.responses.cancel(created.id).status == "cancelled"  # cancelling twice changes nothing
    assert sdk.responses.retrieve(created.id).status == "cancelled"


def test_a_queued_background_response_can_be_cancelled_before_a_worker_takes_it(sim_models, make_key, live_web) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Hi.", background=True)
    assert sdk.responses.cancel(created.id).status == "cancelled"
    assert list(sdk.responses.retrieve(created.id, stream=True)) == []  # its stream is over


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


def test_a_background_response_that_fails_is_stored_failed_with_its_error_and_its_stream_says_so(
    sim_models, make_key, live_web, workers, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", error_status=400, error_kind="content_policy")
    workers()
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Hi.", background=True)
    wait_for_status(created.id, "failed")
    failed = sdk.responses.retrieve(created.id)
    assert failed.error is not None and failed.error.code == "content_policy" and failed.output == []
    events = list(sdk.responses.retrieve(created.id, stream=True))
    assert [event.type for event in events] == ["response.created", "response.in_progress", "response.failed"]


def test_a_background_response_continues_a_stored_conversation(sim_models, make_key, live_web, workers) -> None:  # type: ignore[no-untyped-def]
    workers()
    sdk = client(live_web, make_key())
    first = sdk.responses.create(model="gpt-sim", input="Name a colour.")
    later = sdk.responses.create(model="gpt-sim", input="Another?", previous_response_id=first.id, background=True)
    wait_for_status(later.id, "completed")
    done = sdk.responses.retrieve(later.id)
    assert done.previous_response_id == first.id
    assert done.usage is not None and first.usage is not None and done.usage.input_tokens > first.usage.input_tokens


def test_a_running_background_response_streams_from_starting_after_then_live(
    sim_models, make_key, live_web, workers, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", tokens_per_s=10)
    workers()
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", max_output_tokens=16, background=True)
    wait_for_status(created.id, "in_progress")

    events = list(sdk.responses.retrieve(created.id, stream=True, starting_after=2))
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(3, 3 + len(events)))
    assert events[-1].type == "response.incomplete"  # cut at max_output_tokens
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text and events[-1].response.output_text.endswith(text)  # type: ignore[union-attr]


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
    workers()
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
