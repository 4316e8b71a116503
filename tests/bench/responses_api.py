"""What the Responses API costs over chat completions: the same call through ``/v1/chat/completions``
and ``/v1/responses`` (stored, the default, and with ``store: false``), non-streaming, cache off,
against a zero-latency simulator, at concurrency 8. The figure that matters is the CPU of the one
server process per call: the translation, the stored row (an insert and an update) and the bigger
body are what ``/v1/responses`` adds.

    python -m tests.bench responses_api
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.bench.gateway_throughput import (
    BODY,
    MODEL,
    WrkMissing,
    _ms,
    _registry_and_key,
    _start_server,
    _wrk_script,
    wrk,
)

SECONDS = 4
CONNECTIONS = 8
RESPONSE_BODY: dict[str, Any] = {
    "model": MODEL,
    "input": BODY["messages"][0]["content"],
    "max_output_tokens": BODY["max_tokens"],
    "temperature": BODY["temperature"],
}


def measure() -> dict[str, object]:
    from tests.bench.environment import bench_simulator

    simulator = bench_simulator()
    httpx.put(f"{simulator.url}/_sim/models/{MODEL}", json={"latency_ms": 0, "ttft_ms": 0, "tokens_per_s": 0})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {_registry_and_key(simulator.url)}"}
    runs = {
        "chat_completions": ("/v1/chat/completions", BODY),
        "responses_stored": ("/v1/responses", RESPONSE_BODY),
        "responses_store_false": ("/v1/responses", {**RESPONSE_BODY, "store": False}),
    }
    web = _start_server("daphne")
    figures: dict[str, object] = {"server": "daphne, one process", "concurrency": CONNECTIONS}
    try:
        for name, (path, body) in runs.items():
            result = wrk(
                f"{web.url}{path}", _wrk_script(body, headers), connections=CONNECTIONS, seconds=SECONDS, pid=web.pid
            )
            figures[f"{name}_rps"] = f"{result['rps']:.0f}"
            figures[f"{name}_cpu_per_call"] = _ms(result["cpu_per_request_s"])
    finally:
        web.stop()
    return figures


def run() -> dict[str, object]:
    try:
        return measure()
    except WrkMissing as missing:
        return {"skipped": str(missing)}
