"""What reading a request body costs, by the size of the conversation it carries: every
``/v1/chat/completions`` call brings the whole conversation, so this is paid per call.

For each body, the CPU of (best of seven runs, this process pinned to the server core):
- ``orjson.loads`` alone, the floor;
- ``json_document`` as the doors read a body (orjson, then the depth walk);
- the standard parser with the walk over every string, as every body was read before orjson;
- ``completion_input_from``: the parsed body checked field by field into a ``ChatRequest``.

    python -m tests.bench request_parse

Figures: docs/benchmarks.md, "Request bodies read by orjson".
"""

from __future__ import annotations

import json
import os
import random
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from tests.bench.streaming import SERVER_CORE

_TEXT = "the quick brown fox jumps over a lazy dog while seven wizards judge café über 2026 42 tokens"
_WORDS = _TEXT.split()


def conversation(turns: int, words: int = 40) -> list[dict[str, str]]:
    """A system prompt, then ``turns`` messages of ``words`` words, user and assistant in turn."""
    chooser = random.Random(turns)
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for index in range(turns):
        text = " ".join(chooser.choice(_WORDS) for _ in range(words))
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": text})
    return messages


def _body(turns: int, words: int = 40) -> bytes:
    document = {"model": "gpt-4o-mini", "messages": conversation(turns, words), "stream": True, "max_tokens": 256}
    return json.dumps(document).encode()


BODIES = {
    "one message": json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi."}]}).encode(),
    "10 turns": _body(10),
    "100 turns": _body(100),
    "400 turns": _body(400, 60),
}


def _standard(body: bytes) -> Any:
    from orchestration.validation import _check_document, _refuse_constant

    data = json.loads(body, parse_constant=_refuse_constant)
    _check_document(data, "The request body")
    return data


def _best_us(call: Callable[[], Any], body: bytes) -> float:
    number = 2000 if len(body) < 10_000 else 200
    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6


def run() -> dict[str, str]:
    from orchestration.validation import completion_input_from, json_document

    if hasattr(os, "sched_setaffinity") and SERVER_CORE in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {SERVER_CORE})
    figures = {}
    for name, body in BODIES.items():
        floor = _best_us(lambda body=body: orjson.loads(body), body)
        ours = _best_us(lambda body=body: json_document(body), body)
        before = _best_us(lambda body=body: _standard(body), body)
        data = json_document(body)
        checked = _best_us(lambda data=data: completion_input_from(data), body)
        figures[f"{name} ({len(body):,} bytes)"] = (
            f"json_document {ours:.1f} µs, orjson alone {floor:.1f} µs,"
            f" the standard parser and its walk {before:.1f} µs ({before / ours:.1f}x ours);"
            f" completion_input_from {checked:.1f} µs"
        )
    return figures
