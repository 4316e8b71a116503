"""Turning a provider's HTTP failure into one ``ProviderError`` with the right kind.

Every service says "your prompt is too long" or "this was refused" in its own words, so the
adapters pass the status, the error's text (message, type and code joined) and the headers
here, and this module decides the kind the same way for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from orchestration.types import ErrorKind, ProviderError

# Lower-case fragments providers use for "the prompt does not fit the model": OpenAI and vLLM
# ("maximum context length", "context_length_exceeded"), Anthropic ("prompt is too long"),
# Gemini ("input token count ... exceeds the maximum"), llama.cpp ("exceed_context_size"),
# OpenRouter ("context length").
CONTEXT_WINDOW_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "context_window",
    "exceed_context_size",
    "prompt is too long",
    "input is too long",
    "too many tokens",
    "input token count",
    "exceeds the maximum number of tokens",
)

# OpenAI ("content_policy_violation", "safety system"), Anthropic ("content filtering policy"),
# Azure ("content_filter", "ResponsibleAIPolicyViolation"), Gemini ("PROHIBITED_CONTENT"),
# OpenRouter's moderation 403 ("your input was flagged").
CONTENT_POLICY_MARKERS = (
    "content_policy",
    "content policy",
    "content_filter",
    "content filtering",
    "content management policy",
    "safety system",
    "responsibleaipolicyviolation",
    "prohibited_content",
    "input was flagged",
    "flagged by moderation",
)

# Quota exhausted for the account: a 429 that waiting a few seconds will not fix. Treated
# like a bad key, so the breaker opens and traffic moves to another provider.
BILLING_MARKERS = ("insufficient_quota", "billing", "enforced_spend_limit_reached", "credit balance")


def has_marker(text: str, markers: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in markers)


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def kind_for_status(status: int, text: str) -> ErrorKind:
    """The kind of an HTTP error ``status`` whose body says ``text``."""
    if status == 429:
        return ErrorKind.AUTH if has_marker(text, BILLING_MARKERS) else ErrorKind.RATE_LIMITED
    if status in (401, 402, 403):
        return ErrorKind.CONTENT_POLICY if has_marker(text, CONTENT_POLICY_MARKERS) else ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status >= 500:
        return ErrorKind.SERVER
    if has_marker(text, CONTEXT_WINDOW_MARKERS):
        return ErrorKind.CONTEXT_WINDOW
    if has_marker(text, CONTENT_POLICY_MARKERS):
        return ErrorKind.CONTENT_POLICY
    return ErrorKind.BAD_REQUEST


def status_error(
    status: int,
    message: str,
    *,
    detail: str = "",
    headers: Mapping[str, str] | None = None,
    provider: str,
    retry_after: float | None = None,
) -> ProviderError:
    """The ``ProviderError`` for an HTTP error answer.

    ``message`` is the provider's human-readable text; ``detail`` the machine-readable parts of
    the body (error type, code, status name) that the markers are matched against as well.
    """
    kind = kind_for_status(status, f"{message} {detail}")
    if retry_after is None and headers is not None:
        retry_after = retry_after_s(headers)
    text = message or f"HTTP {status}"
    return ProviderError(kind, text, status=status, retry_after=retry_after, provider=provider)


def refusal_error(provider: str, reason: str) -> ProviderError:
    """A reply that stopped for a content filter before saying anything: the request was
    refused, which callers handle as a content-policy error (e.g. by trying another model)."""
    message = f"{provider} refused to answer ({reason})"
    return ProviderError(ErrorKind.CONTENT_POLICY, message, status=200, provider=provider)


def untranslatable_error(provider: str, error: Exception) -> ProviderError:
    """A request whose tools, tool choice or response format do not have the shape the
    OpenAI format gives them, so it cannot be put into this provider's format."""
    message = f"the request cannot be sent to {provider}: malformed tools or response format ({error!r})"
    return ProviderError(ErrorKind.BAD_REQUEST, message, provider=provider)


# What reading an answer of an unexpected shape raises (a list where an object belongs, text
# where a number belongs): the answer is malformed, whatever the detail.
UNREADABLE = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def unreadable_error(provider: str, error: Exception) -> ProviderError:
    message = f"{provider} sent an answer of an unexpected shape ({error!r})"
    return ProviderError(ErrorKind.MALFORMED, message, provider=provider)
