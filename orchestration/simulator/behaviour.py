"""How each upstream model behaves, set at run time, and what each one has seen.

Behaviour is kept per upstream model name; ``"*"`` holds the defaults every model starts from.
A PUT merges its fields into the model's current behaviour, so knobs can be set one at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

ERROR_KINDS = ("context_window", "content_policy")


class BehaviourInvalid(ValueError):
    """A control request named an unknown knob or gave a knob a bad value."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0
    error_status: int | None = None
    error_rate: float | None = None
    error_kind: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    hang: bool = False
    # A failure's message quotes the key the request presented, masked as OpenAI's 401 does
    # ("sk-test-********1b2c"): an upstream that echoes what it was sent.
    error_echoes_key: bool = False
    # A stream without usage even when asked with stream_options.include_usage, as some
    # OpenAI-compatible servers answer (OpenAI wire only; a whole reply keeps its usage).
    stream_omits_usage: bool = False
    drop_after_tokens: int | None = None
    malformed_after_tokens: int | None = None
    reply: str | None = None
    max_tokens_default: int | None = None
    script: tuple[dict[str, Any], ...] | None = None

    def as_json(self) -> dict[str, Any]:
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data["script"] = list(self.script) if self.script is not None else None
        return data

    def fails(self, request_number: int) -> bool:
        """Whether the ``request_number``-th request (1-based) to this model fails.

        With a rate, failures are spread evenly and deterministically: exactly
        ``floor(n * rate)`` of the first ``n`` requests fail.
        """
        if self.error_status is None and self.error_kind is None:
            return False
        if self.error_rate is None:
            return True
        rate = self.error_rate
        return math.floor(request_number * rate + 1e-9) > math.floor((request_number - 1) * rate + 1e-9)

    def failure_status(self) -> int:
        if self.error_status is not None:
            return self.error_status
        return 400 if self.error_kind else 500


def _number(name: str, value: Any, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not minimum <= value <= maximum:
        raise BehaviourInvalid(f"{name} must be a number between {minimum} and {maximum}")
    return float(value)


def _count(name: str, value: Any, *, minimum: int = 0, maximum: int = 10**9) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise BehaviourInvalid(f"{name} must be an integer between {minimum} and {maximum}")
    return value


def _script_turn(index: int, turn: Any) -> dict[str, Any]:
    if (
        not isinstance(turn, dict)
        or not ({"content", "tool_calls"} & turn.keys())
        or turn.keys()
        - {
            "content",
            "tool_calls",
        }
    ):
        raise BehaviourInvalid(f"script[{index}] must be an object with content and/or tool_calls")
    if "content" in turn and not isinstance(turn["content"], str):
        raise BehaviourInvalid(f"script[{index}].content must be a string")
    calls = turn.get("tool_calls", [])
    if not isinstance(calls, list) or not all(
        isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("arguments", {}), dict)
        for call in calls
    ):
        raise BehaviourInvalid(f"script[{index}].tool_calls must be a list of {{name, arguments}} objects")
    return turn


def _validated(name: str, value: Any) -> Any:
    if value is None:
        return DEFAULTS[name]
    if name in ("latency_ms", "ttft_ms", "tokens_per_s", "retry_after", "retry_after_ms"):
        return _number(name, value)
    if name == "error_status":
        return _count(name, value, minimum=400, maximum=599)
    if name == "error_rate":
        return _number(name, value, maximum=1.0)
    if name == "error_kind":
        if value not in ERROR_KINDS:
            raise BehaviourInvalid(f"error_kind must be one of {', '.join(ERROR_KINDS)} or null")
        return value
    if name in ("hang", "error_echoes_key", "stream_omits_usage"):
        if not isinstance(value, bool):
            raise BehaviourInvalid(f"{name} must be true or false")
        return value
    if name in ("drop_after_tokens", "malformed_after_tokens"):
        return _count(name, value)
    if name == "max_tokens_default":
        return _count(name, value, minimum=1)
    if name == "reply":
        if not isinstance(value, str):
            raise BehaviourInvalid("reply must be a string")
        return value
    if not isinstance(value, list) or not value:
        raise BehaviourInvalid("script must be a non-empty list of turns")
    return tuple(_script_turn(index, turn) for index, turn in enumerate(value))


KNOBS = frozenset(item.name for item in fields(Behaviour))
DEFAULTS = Behaviour().as_json()


def behaviour_merged(current: Behaviour, changes: Any) -> Behaviour:
    """``current`` with ``changes`` (a JSON object of knobs) applied; raises ``BehaviourInvalid``."""
    if not isinstance(changes, dict):
        raise BehaviourInvalid("the body must be a JSON object of behaviour fields")
    unknown = sorted(changes.keys() - KNOBS)
    if unknown:
        raise BehaviourInvalid(f"unknown behaviour field(s): {', '.join(unknown)}")
    return replace(current, **{name: _validated(name, value) for name, value in changes.items()})


@dataclass
class BehaviourBook:
    """Current behaviour per upstream model; ``"*"`` is the default for models without their own."""

    models: dict[str, Behaviour] = field(default_factory=dict)
    # Requests per model since its behaviour last changed: error_rate counts from the change.
    counters: dict[str, int] = field(default_factory=dict)

    def get(self, upstream: str) -> Behaviour:
        return self.models.get(upstream) or self.models.get("*") or Behaviour()

    def next_request_number(self, upstream: str) -> int:
        number = self.counters.get(upstream, 0) + 1
        self.counters[upstream] = number
        return number

    def update(self, upstream: str, changes: Any) -> Behaviour:
        base = self.models.get(upstream) or (self.get("*") if upstream != "*" else Behaviour())
        self.models[upstream] = behaviour_merged(base, changes)
        if upstream == "*":
            self.counters.clear()
        else:
            self.counters.pop(upstream, None)
        return self.models[upstream]

    def remove(self, upstream: str) -> None:
        self.models.pop(upstream, None)
        self.counters.pop(upstream, None)

    def clear(self) -> None:
        self.models.clear()
        self.counters.clear()


@dataclass(slots=True)
class ModelStats:
    requests: int = 0
    completed: int = 0
    disconnects: int = 0
    in_flight: int = 0
    # The W3C trace context the last request carried (tests check that traces reach upstream).
    last_traceparent: str = ""

    def as_json(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "disconnects": self.disconnects,
            "in_flight": self.in_flight,
        }


@dataclass
class StatsBook:
    """Counters per upstream model. ``completed``: the simulator finished its answer (errors
    included); ``disconnects``: the client went away first; a deliberate drop counts as neither."""

    models: dict[str, ModelStats] = field(default_factory=dict)

    def of(self, upstream: str) -> ModelStats:
        stats = self.models.get(upstream)
        if stats is None:
            stats = self.models[upstream] = ModelStats()
        return stats

    def reset(self) -> None:
        # Requests still running keep counting down, so their in_flight survives the reset.
        self.models = {name: ModelStats(in_flight=s.in_flight) for name, s in self.models.items() if s.in_flight}

    def as_json(self) -> dict[str, Any]:
        book: dict[str, Any] = {"models": {name: stats.as_json() for name, stats in self.models.items()}}
        traced = {name: stats.last_traceparent for name, stats in self.models.items() if stats.last_traceparent}
        if traced:  # the W3C trace context of each model's last request, when one came with it
            book["traceparents"] = traced
        return book
