"""Background responses: queued at once, run by the module's RQ worker, polled, streamed, cancelled;
recovery from dead workers is in test_background_workers.py."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import openai
import pytest

from orchestration.models import StoredResponse
from tests.agents.conftest import wait_until
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
    sim_models, make_key, live_web, worker
) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key(rpm=100, tpm=100_000))
    raw = sdk.responses.with_raw_response.create(model="gpt-sim", input="Tell me a story.", background=True)
    created = raw.parse()
    assert created.status == "queued" and created.background is True and created.output == []
    assert raw.headers["x-ratelimit-remaining-requests"] == "99"  # admitted at the door, like a task

    wait_for_status(created.id, "completed")
    done = sdk.responses.retrieve(created.id)
    assert done.status == "completed" and done.output_text and done.usage is not None

    events = list(sdk.responses.retrieve(created.id, stream=True))
    assert [event.type for event in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed" and events[-1].response.output_text == done.output_text  # type: ignore[union-attr]
    assert [event.sequence_number for event in events] == list(range(len(events)))

    later = list(sdk.responses.retrieve(created.id, stream=True, starting_after=3))
    assert [event.sequence_number for event in later] == list(range(4, len(events)))


def test_a_background_response_streams_live_from_its_creation(sim_models, make_key, live_web, worker) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key())
    events = list(sdk.responses.create(model="gpt-sim", input="Tell me a story.", background=True, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == events[-1].response.output_text  # type: ignore[union-attr]


def test_cancelling_a_running_background_response_stops_its_worker(
    sim_models, make_key, live_web, worker, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", latency_ms=20_000)
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", background=True)
    wait_until(lambda: simulator.stats("gpt-sim")["in_flight"] == 1, what="the worker's model call")

    cancelled = sdk.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    wait_until(lambda: simulator.stats("gpt-sim")["in_flight"] == 0, timeout=5, what="the model call to stop")
    assert sdk.responses.cancel(created.id).status == "cancelled"  # cancelling twice changes nothing
    assert sdk.responses.retrieve(created.id).status == "cancelled"


def test_a_background_response_that_fails_is_stored_failed_with_its_error_and_its_stream_says_so(
    sim_models, make_key, live_web, worker, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", error_status=400, error_kind="content_policy")
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Hi.", background=True)
    wait_for_status(created.id, "failed")
    failed = sdk.responses.retrieve(created.id)
    assert failed.error is not None and failed.error.code == "content_policy" and failed.output == []
    events = list(sdk.responses.retrieve(created.id, stream=True))
    assert [event.type for event in events] == ["response.created", "response.in_progress", "response.failed"]


def test_a_background_response_continues_a_stored_conversation(sim_models, make_key, live_web, worker) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key())
    first = sdk.responses.create(model="gpt-sim", input="Name a colour.")
    later = sdk.responses.create(model="gpt-sim", input="Another?", previous_response_id=first.id, background=True)
    wait_for_status(later.id, "completed")
    done = sdk.responses.retrieve(later.id)
    assert done.previous_response_id == first.id
    assert done.usage is not None and first.usage is not None and done.usage.input_tokens > first.usage.input_tokens


def test_a_running_background_response_streams_from_starting_after_then_live(
    sim_models, make_key, live_web, worker, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", tokens_per_s=10)
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", max_output_tokens=16, background=True)
    wait_for_status(created.id, "in_progress")

    events = list(sdk.responses.retrieve(created.id, stream=True, starting_after=2))
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(3, 3 + len(events)))
    assert events[-1].type == "response.incomplete"  # cut at max_output_tokens
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text and events[-1].response.output_text.endswith(text)  # type: ignore[union-attr]


def test_deleting_a_running_background_response_stops_its_worker(
    sim_models, make_key, live_web, worker, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", latency_ms=20_000)
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", background=True)
    wait_until(lambda: simulator.stats("gpt-sim")["in_flight"] == 1, what="the worker's model call")

    assert sdk.responses.delete(created.id) is None  # the SDK answers nothing for a deletion
    wait_until(lambda: simulator.stats("gpt-sim")["in_flight"] == 0, timeout=5, what="the model call to stop")
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(created.id)


def test_a_follower_that_hangs_up_mid_stream_leaves_no_error_in_the_server_log(
    sim_models, make_key, live_web, worker, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", tokens_per_s=5)
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Tell me a story.", max_output_tokens=40, background=True)
    wait_for_status(created.id, "in_progress")
    with sdk.responses.retrieve(created.id, stream=True, starting_after=0) as stream:
        next(iter(stream))  # one event, then the client goes while the server waits for the next

    wait_for_status(created.id, "completed", "incomplete", timeout=30)
    assert "Exception inside application" not in live_web.log_path.read_text()
