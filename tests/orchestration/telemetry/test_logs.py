"""JSON log lines (``LOG_FORMAT=json``): one object a line, with the request, trace, user and key."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from orchestration.access.keys import api_key_create
from orchestration.telemetry.logs import CallContextFilter, JsonLogFormatter, log_caller, request_context_set
from tests.conftest import Simulator
from tests.orchestration.telemetry.otlp import HttpReceiver
from tests.orchestration.telemetry.test_traces import chain, completion, traceparent, tracing_env
from tests.support import start_web

__all__ = ["chain"]


def test_a_record_becomes_one_json_line_with_its_call_context() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(CallContextFilter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    try:
        request_context_set("req_42")
        log_caller(7, "sy-AbCd")
        try:
            raise ValueError("no platform")
        except ValueError:
            logger.exception("departure failed for %s", "Lyon", extra={"train": "TGV 6601"})
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["message"] == "departure failed for Lyon" and line["level"] == "ERROR"
    assert line["logger"] == "tests.json_logs" and line["time"]
    assert (line["request_id"], line["user_id"], line["key_prefix"]) == ("req_42", 7, "sy-AbCd")
    assert line["trace_id"] == "" and line["train"] == "TGV 6601"
    assert "ValueError: no platform" in line["exc_info"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_a_live_process_logs_json_joined_to_the_request_and_its_trace(
    simulator: Simulator, chain: Any, alice: Any
) -> None:
    receiver = HttpReceiver()
    key, secret = api_key_create(user=alice, name="logs")
    web = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, LOG_FORMAT="json", **tracing_env(receiver.endpoint))
    try:
        simulator.configure("big", error_status=500)
        header, trace_id, _ = traceparent()
        response = completion(web.url, secret, "big", header)
        assert response.status_code == 200
    finally:
        web.stop()
        receiver.stop()
    lines = [json.loads(line) for line in web.log_text().splitlines() if line.startswith("{")]
    hop = next(line for line in lines if line["message"].startswith("fallback big -> small"))
    assert hop["request_id"] == response.headers["X-Request-ID"]
    assert hop["trace_id"] == trace_id and len(hop["span_id"]) == 16
    assert (hop["user_id"], hop["key_prefix"]) == (alice.pk, key.prefix)
    assert hop["level"] == "INFO" and hop["logger"] == "orchestration.orchestrator"
