"""The normalized types every layer speaks.

Providers turn these into their wire format and back; the Orchestrator, the APIs, chat and
agents only ever see these. They are plain dataclasses: no Django, no httpx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from orchestration.errors import ServiceError, kind_of_status

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


@dataclass(slots=True)
class Message:
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None  # for role == "tool"
    name: str | None = None


@dataclass(slots=True)
class ChatRequest:
    """One generation request. ``model`` is the public model name until the Orchestrator
    routes it; a provider receives a copy whose ``model`` is the upstream id."""

    model: str
    messages: list[Message]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI "function" tool objects
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool = False  # OpenAI-wire providers only; the /v1 door refuses it for the others
    top_logprobs: int | None = None


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"  # stop | length | tool_calls | content_filter
    usage: Usage = field(default_factory=Usage)
    logprobs: list[dict[str, Any]] | None = None  # OpenAI's ``choice.logprobs.content``, when asked for


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # a fragment of the JSON arguments


@dataclass(slots=True)
class Chunk:
    """One streamed piece. The last chunk of a stream carries ``finish_reason``; ``usage``
    arrives on whichever chunk the provider sends it with (often the last)."""

    delta: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: list[dict[str, Any]] | None = None  # the logprobs of this chunk's tokens, when asked for


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    vectors: list[list[float]]
    usage: Usage = field(default_factory=Usage)


class ErrorKind(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    SERVER = "server"
    MALFORMED = "malformed"


_RETRYABLE = {ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.RATE_LIMITED, ErrorKind.SERVER, ErrorKind.MALFORMED}
# What says "this provider is unhealthy" (docs/operations.md, "Circuit breakers"): 5xx, timeouts,
# connection errors, 401/403 and 429.
_BREAKER_FAILURES = _RETRYABLE | {ErrorKind.AUTH}


class ProviderError(Exception):
    """Any failure of one provider call, with what kind it was and whether retrying can help."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.provider = provider

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE

    @property
    def counts_against_breaker(self) -> bool:
        return self.kind in _BREAKER_FAILURES

    def __repr__(self) -> str:
        return f"ProviderError({self.kind.value!r}, {self.message!r}, status={self.status})"


class OrchestrationError(ServiceError):
    """What the Orchestrator raises to its callers once retries and fallbacks are spent.

    ``code`` is the public error code and ``message`` a plain sentence for the caller; ``status``
    the HTTP status of its kind (a 503 with ``retry_after`` when waiting may help). ``cause`` and
    ``detail`` keep what the provider said, for the request log only.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        cause: ProviderError | None = None,
        detail: str = "",
    ) -> None:
        meta = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
        super().__init__(code, message, meta=meta, kind=kind_of_status(status))
        self.retry_after = retry_after
        self.cause = cause
        self.detail = detail  # for staff (request log, server log), never for the caller


@dataclass
class CallContext:
    """Who makes a call and how: what the Orchestrator logs, meters and caches it by."""

    endpoint: str  # "completion" | "chat" | "agent" | "embedding"
    request_id: str = ""
    api_key_id: int | None = None
    user_id: int | None = None
    deadline_s: float | None = None  # seconds from now; None = the endpoint's/model's default
    cache_control: str = "default"  # "default" | "no-cache" | "no-store"
    prompt_template: str = ""
    prompt_version: int | None = None
    conversation_id: int | None = None  # chat calls: what experiments can stick to
    message_id: int | None = None  # chat calls: the reply being written (feedback names it)
    # Set when a prompt experiment chose the prompt version (orchestration/prompts.py).
    experiment: str = ""
    variant: str = ""


CacheStatus = Literal["HIT", "SEMANTIC-HIT", "STALE", "MISS", "BYPASS"]


@dataclass(slots=True)
class FallbackHop:
    reason: str  # the ErrorKind value or "breaker_open"
    from_model: str
    to_model: str


@dataclass(slots=True)
class Served:
    """How a call was served: what the edge puts in X-Served-* headers and the request log."""

    model: str = ""
    provider: str = ""
    simulated: bool = False
    attempts: int = 0
    fallbacks: list[FallbackHop] = field(default_factory=list)
    cache: CacheStatus = "MISS"
    cache_entry: str = ""  # a semantic hit's signed token (X-Cache-Entry), to report it wrong
    cost_usd: Decimal = Decimal("0")
    usage: Usage = field(default_factory=Usage)
    usage_estimated: bool = False  # the provider did not report the usage: counted from the text (orchestrator.py)
    ttft_ms: float | None = None
    deployment: str = ""  # the deployment of ``model`` that served (orchestration/routing/)
    experiment: str = ""
    variant: str = ""

    @property
    def fallback_from(self) -> str | None:
        return self.fallbacks[0].from_model if self.fallbacks else None
