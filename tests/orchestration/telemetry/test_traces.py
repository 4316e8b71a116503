"""Traces from live processes (a daphne web process, an RQ worker) into a real OTLP receiver.

Each scenario is one trace: the edge span of the request, the Orchestrator's call span under it,
and the attempts, retry waits, fallback hops, agent steps and tool calls below that, with the
GenAI attributes an operator's tracing backend reads.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agents.models import Task
from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel
from tests.agents.conftest import FAST_RECOVERY, call, script, wait_for_idle_workers, wait_for_status
from tests.conftest import Simulator
from tests.orchestration.harness import fallbacks, model_row, provider_row
from tests.orchestration.telemetry.otlp import GrpcReceiver, HttpReceiver, ReceivedSpan, SpanStore
from tests.support import ROOT, ManagedProcess, child_env, start_web, start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

SERVER, CLIENT = 2, 3  # OTLP span kinds


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    started = HttpReceiver()
    yield started
    started.stop()


def tracing_env(endpoint: str, **extra: str) -> dict[str, str]:
    # Batches leave every 100 ms instead of every 5 s, so the test sees them soon.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", **extra}


@pytest.fixture
def traced_web(receiver: HttpReceiver, simulator: Simulator) -> Iterator[ManagedProcess]:
    process = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, **tracing_env(receiver.endpoint))
    yield process
    process.stop()


@pytest.fixture
def chain(transactional_db: None, simulator: Simulator) -> dict[str, LanguageModel]:
    """``big`` on ``primary`` (one quick retry) falling back to ``small`` on ``backup``."""
    primary = provider_row("primary", simulator.url, max_retries=1, retry_base_s=0.01)
    backup = provider_row("backup", simulator.url)
    big = model_row("big", primary, capabilities=["chat", "tools"])
    small = model_row("small", backup, capabilities=["chat", "tools"])
    fallbacks(big, small)
    return {"big": big, "small": small}


@pytest.fixture
def key(transactional_db: None, alice: Any) -> str:
    return api_key_create(user=alice, name="traces")[1]


def traceparent() -> tuple[str, str, str]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [span for span in spans if span.parent_id == parent.span_id]


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = named(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r} among {sorted(span.name for span in spans)}"
    return found[0]


def finished_call(store: SpanStore, trace_id: str, name: str) -> list[ReceivedSpan]:
    """The trace once its edge span and its top span ``name`` (a call or an agent run, which end
    after everything below them) have arrived."""

    def complete(_: list[ReceivedSpan]) -> list[ReceivedSpan]:
        spans = store.trace(trace_id)
        top = [span for span in named(spans, name) if span.kind != CLIENT]
        return spans if top and any(span.kind == SERVER for span in spans) else []

    return store.wait_for(complete)


def call_span_of(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    """The Orchestrator's call span (its attempts at providers share its name, as client spans)."""
    found = [span for span in named(spans, name) if span.kind != CLIENT]
    assert len(found) == 1, found
    return found[0]


def completion(url: str, key: str, model: str, header: str, content: str = "Hello") -> httpx.Response:
    """One ``/v1`` call that sends ``header`` as its ``traceparent``."""
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "traceparent": header},
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        timeout=30,
    )


def test_a_v1_call_with_a_retry_and_a_fallback_is_one_trace_with_genai_attributes(
    traced_web: ManagedProcess, receiver: HttpReceiver, chain: Any, key: str, simulator: Simulator
) -> None:
    simulator.configure("big", error_status=500)
    header, trace_id, client_span = traceparent()
    response = completion(traced_web.url, key, "big", header, "Where do trains sleep?")
    assert response.status_code == 200, response.text
    assert response.headers["X-Fallback-From"] == "big"
    spans = finished_call(receiver.store, trace_id, "chat big")

    edge = one(spans, "POST v1/chat/completions")
    assert edge.kind == SERVER and edge.parent_id == client_span  # the client's traceparent is honoured
    assert edge.attributes["switchyard.request_id"] == response.headers["X-Request-ID"]
    assert edge.resource["service.name"] == "switchyard" and edge.resource["switchyard.process.role"] == "web"

    call_span = call_span_of(spans, "chat big")
    assert call_span.parent_id == edge.span_id
    usage = response.json()["usage"]
    assert call_span.attributes["gen_ai.operation.name"] == "chat"
    assert call_span.attributes["gen_ai.request.model"] == "big"
    assert call_span.attributes["gen_ai.response.model"] == "small"
    assert call_span.attributes["gen_ai.provider.name"] == "simulator"
    assert call_span.attributes["switchyard.provider"] == "backup"
    assert call_span.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] > 0
    assert call_span.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0
    assert call_span.attributes["switchyard.cost_usd"] == pytest.approx(float(response.headers["X-Cost-USD"]))
    assert call_span.attributes["switchyard.cache"] == response.headers["X-Cache"]
    assert call_span.attributes["switchyard.fallback.from"] == "big"
    assert "gen_ai.input.messages" not in call_span.attributes  # content capture is off by default

    below = children(spans, call_span)
    assert [span.name for span in below if span.name == "cache lookup"] == ["cache lookup"]
    attempts = sorted(
        (span for span in below if span.kind == CLIENT), key=lambda span: span.attributes["switchyard.attempt"]
    )
    assert [(span.name, span.failed) for span in attempts] == [
        ("chat big", True),
        ("chat big", True),
        ("chat small", False),
    ]
    assert attempts[0].attributes["error.type"] == "server"
    assert attempts[0].attributes["http.response.status_code"] == 500
    assert attempts[2].attributes["gen_ai.request.model"] == "small"
    assert attempts[2].attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    wait = one(below, "retry wait")
    assert wait.attributes["switchyard.retry.reason"] == "server"
    hop = one(below, "fallback")
    assert hop.attributes["switchyard.fallback.reason"] == "server"
    assert (hop.attributes["switchyard.fallback.from"], hop.attributes["switchyard.fallback.to"]) == ("big", "small")
    # Each attempt's HTTP call is its child, and its traceparent reached the provider.
    assert all(children(spans, attempt) for attempt in attempts)
    upstream = simulator.stats()["traceparents"]["small"]
    assert upstream.split("-")[1] == trace_id
    assert upstream.split("-")[2] in {span.span_id for span in children(spans, attempts[2])}


def test_a_breaker_that_skips_a_model_marks_the_hop_with_its_state(
    traced_web: ManagedProcess, receiver: HttpReceiver, chain: Any, key: str, simulator: Simulator
) -> None:
    simulator.configure("big", error_status=500)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=traced_web.url, headers=headers, timeout=30) as client:
        body = {"model": "big", "messages": [{"role": "user", "content": "Hello"}]}
        for _ in range(6):  # 12 failed attempts: the primary's breaker opens
            assert client.post("/v1/chat/completions", json=body).status_code == 200
        header, trace_id, _ = traceparent()
        assert client.post("/v1/chat/completions", json=body, headers={"traceparent": header}).status_code == 200
    spans = finished_call(receiver.store, trace_id, "chat big")
    hop = one(spans, "fallback")
    assert hop.attributes["switchyard.fallback.reason"] == "breaker_open"
    assert hop.attributes["switchyard.breaker.state"] == "open"
    assert [span.name for span in spans if span.kind == CLIENT and span.name.startswith("chat")] == ["chat small"]


@pytest.fixture
def chat_model(transactional_db: None, simulator: Simulator) -> LanguageModel:
    return model_row("talk", provider_row("sim", simulator.url), cache_exact_enabled=False)


def test_a_chat_reply_is_one_trace_from_the_post_and_records_text_when_turned_on(
    receiver: HttpReceiver, simulator: Simulator, chat_model: Any, key: str
) -> None:
    web = start_web(
        SWITCHYARD_SIMULATOR_URL=simulator.url,
        **tracing_env(receiver.endpoint, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true"),
    )
    try:
        header, trace_id, _ = traceparent()
        with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            conversation = client.post("/api/v1/conversations", json={"model": "talk"}).json()
            posted = client.post(
                f"/api/v1/conversations/{conversation['id']}/messages",
                json={"content": "Which platform for Lyon?"},
                headers={"traceparent": header},
            )
            assert posted.status_code == 201, posted.text
            spans = finished_call(receiver.store, trace_id, "chat talk")
            reply = client.get(f"/api/v1/conversations/{conversation['id']}/messages").json()["results"][-1]
    finally:
        web.stop()
    edge = one(spans, "POST api/v1/conversations/<int:conversation_id>/messages")
    call_span = call_span_of(spans, "chat talk")
    assert call_span.parent_id == edge.span_id  # the reply runs detached, in the post's trace
    assert call_span.attributes["switchyard.endpoint"] == "chat"
    assert call_span.attributes["gen_ai.usage.output_tokens"] == reply["output_tokens"] > 0
    assert call_span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert "Which platform for Lyon?" in call_span.attributes["gen_ai.input.messages"]
    assert reply["content"] and reply["content"] in call_span.attributes["gen_ai.output.messages"]


def test_an_agent_task_in_a_worker_continues_the_trace_of_its_post(
    traced_web: ManagedProcess, receiver: HttpReceiver, chain: Any, key: str, simulator: Simulator
) -> None:
    simulator.configure(
        "big",
        script=script(
            {"content": "Checking the clock.", "tool_calls": [call("current_time", timezone="Europe/Paris")]},
            {"content": "It is time."},
        ),
    )
    worker = start_worker("agents", **FAST_RECOVERY, **tracing_env(receiver.endpoint))
    try:
        header, trace_id, _ = traceparent()
        posted = httpx.post(
            f"{traced_web.url}/api/v1/tasks",
            headers={"Authorization": f"Bearer {key}", "traceparent": header},
            json={"agent": "research-assistant", "input": "What time is it?", "model": "big"},
            timeout=30,
        )
        assert posted.status_code == 202, posted.text
        assert wait_for_status(posted.json()["id"], Task.Status.COMPLETED).result == "It is time."
        spans = finished_call(receiver.store, trace_id, "invoke_agent research-assistant")
    finally:
        wait_for_idle_workers()
        worker.stop()
    edge = one(spans, "POST api/v1/tasks")
    run = one(spans, "invoke_agent research-assistant")
    assert run.parent_id == edge.span_id and run.resource["switchyard.process.role"] == "worker"
    assert run.attributes["gen_ai.agent.name"] == "research-assistant"
    assert run.attributes["switchyard.task_id"] == posted.json()["id"]
    steps = sorted(children(spans, run), key=lambda span: span.attributes["switchyard.agent.step"])
    assert [step.name for step in steps] == ["agent step", "agent step"]
    first = children(spans, steps[0])
    tool = one(first, "execute_tool current_time")
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "current_time"
    assert "gen_ai.tool.call.result" not in tool.attributes
    for step in steps:
        model_call = call_span_of(children(spans, step), "chat big")
        assert model_call.attributes["switchyard.endpoint"] == "agent"
        assert model_call.attributes["gen_ai.usage.output_tokens"] > 0


def test_spans_also_go_out_over_grpc(simulator: Simulator, chain: Any, key: str) -> None:
    grpc_receiver = GrpcReceiver()
    web = start_web(
        SWITCHYARD_SIMULATOR_URL=simulator.url,
        **tracing_env(grpc_receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_SERVICE_NAME="gateway-eu"),
    )
    try:
        header, trace_id, _ = traceparent()
        assert completion(web.url, key, "small", header).status_code == 200
        spans = finished_call(grpc_receiver.store, trace_id, "chat small")
    finally:
        web.stop()
        grpc_receiver.stop()
    assert one(spans, "POST v1/chat/completions").resource["service.name"] == "gateway-eu"


_TRACING_OFF = """
import sys, django
django.setup()
import project.asgi
loaded = [name for name in ("opentelemetry.sdk.trace", "opentelemetry.instrumentation.asgi") if name in sys.modules]
print(type(project.asgi.application).__name__, loaded)
"""


def test_with_tracing_off_the_edge_is_not_wrapped_and_the_trace_sdk_never_loads() -> None:
    env = child_env(DJANGO_SETTINGS_MODULE="project.settings", DEBUG="1")
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", _TRACING_OFF], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "ProtocolTypeRouter []"
