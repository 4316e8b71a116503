"""The one admission every door calls: authenticate, model access, RPM/TPM, budget reservation.

A door (``/v1``, a chat post, a task post, a WebSocket ``start_task``) first finds its ``Caller``:
the API key presented (``caller_for_secret``), or the signed-in person (``caller_for_user``), whose
limits come from their access policy. ``admit`` then checks that the caller may use the model, and
asks the limiter for the call: one request, the tokens it may use, and a reservation of its
worst-case cost (the prompt's tokens plus the most it may write, at the highest prices of its
fallback chain). A refusal is a ``ServiceError`` carrying the same code and the same rate-limit
headers whichever door asked. The ``Admission`` that comes back is settled when the call ends
(``settle``), with the real usage and cost, or released when it failed (``release``).

Every function has a sync twin (``_sync``) for the doors whose work runs in a thread.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orchestration.access.budgets import seconds_to_next_month, units_to_usd, usd_to_units
from orchestration.access.credentials import api_key_secret_from_scope
from orchestration.access.keycache import AuthenticatedKey, key_authenticate, key_authenticate_sync, key_authenticated
from orchestration.access.keys import REFUSALS, REVOKED, account_refusal, api_key_refusal_by_id
from orchestration.access.limits import (
    LimitAsk,
    Limits,
    Verdict,
    limit_headers,
    limits_admit,
    limits_admit_all_sync,
    limits_settle,
    limits_settle_sync,
)
from orchestration.access.models import ApiKey
from orchestration.access.policy import UserPolicy, auser_policy, user_policy
from orchestration.database import database_call
from orchestration.errors import Forbidden, InvalidRequest, LimitReached, NotFound, ServiceError, Unauthenticated
from orchestration.metrics import metrics_refusal
from orchestration.registry import ModelRoute, Snapshot, asnapshot, snapshot
from orchestration.telemetry.logs import log_caller
from orchestration.types import Usage

# Roughly four characters per token for English text: the estimate only has to hold until the
# real usage corrects it after the call.
CHARS_PER_TOKEN = 4
# Output counted against tokens per minute for a request that names no max_tokens (its budget
# reservation counts the model's whole output cap).
DEFAULT_OUTPUT_ESTIMATE = 1024
# While calls in flight hold the rest of a budget, a refused caller may look again this soon.
_HELD_RETRY_S = 2

MISSING_KEY = "missing_api_key"
NOT_AUTHENTICATED = "not_authenticated"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls, and what limits them: an API key's, or (without one) the person's policy."""

    user_id: int
    limits: Limits
    key: AuthenticatedKey | None = None
    allowed_models: frozenset[str] = frozenset()

    @property
    def api_key_id(self) -> int | None:
        return self.key.id if self.key is not None else None

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models

    def without_rate_limits(self) -> Caller:
        """The same payer for the later calls of work already admitted (an agent's steps): only
        its budget applies, the request and token limits were spent at the door."""
        return dataclasses.replace(self, limits=dataclasses.replace(self.limits, rpm=None, tpm=None))


def caller_for_key(key: AuthenticatedKey) -> Caller:
    log_caller(key.user_id, key.prefix)
    return Caller(user_id=key.user_id, limits=key.limits, key=key, allowed_models=key.allowed_models)


def _caller_for_policy(user_id: int, policy: UserPolicy) -> Caller:
    log_caller(user_id)
    return Caller(user_id=user_id, limits=policy.limits, allowed_models=policy.allowed_models)


async def caller_for_secret(secret: str) -> Caller:
    """The caller of an API key; ``Unauthenticated`` with the reason when it cannot be used."""
    return caller_for_key(await key_authenticate(secret))


def caller_for_secret_sync(secret: str) -> Caller:
    return caller_for_key(key_authenticate_sync(secret))


async def caller_for_user(user: Any) -> Caller:
    """The caller of a signed-in person without a key (their access policy's limits)."""
    _require_signed_in(user)
    return _caller_for_policy(user.pk, await auser_policy(user.pk))


def caller_for_user_sync(user: Any) -> Caller:
    _require_signed_in(user)
    return _caller_for_policy(user.pk, user_policy(user.pk))


async def caller_for_scope(scope: dict[str, Any]) -> Caller | None:
    """The caller of a Channels connection, as it is now: its API key's, else its signed-in
    person's; None when it has neither. ``Unauthenticated`` when the key or account cannot be used."""
    secret = api_key_secret_from_scope(scope)
    if secret is not None:
        return await caller_for_secret(secret)
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return None
    return await caller_for_user(user)


def _require_signed_in(user: Any) -> None:
    if user is None or not user.is_authenticated:
        raise Unauthenticated(NOT_AUTHENTICATED, "Authentication credentials were not provided.")
    if not user.is_active:
        raise Unauthenticated("account_disabled", "This account is disabled.")


def payer_of(*, user_id: int, api_key_id: int | None) -> Caller:
    """Who pays for work admitted earlier (a task's steps, in a worker): the key it was started
    with, else the person's policy; budgets only (its rate limits were spent at its door). Sync."""
    if api_key_id is not None:
        key = ApiKey.objects.select_related("user").filter(pk=api_key_id).first()
        if key is None:
            raise Unauthenticated(REVOKED, REFUSALS[REVOKED])
        return caller_for_key(key_authenticated(key)).without_rate_limits()
    return _caller_for_policy(user_id, user_policy(user_id)).without_rate_limits()


async def payer_recheck(caller: Caller) -> None:
    """Before each later call of admitted work: refuse when its key or account was stopped since."""
    if caller.api_key_id is not None:
        code = await database_call(api_key_refusal_by_id)(caller.api_key_id)
    else:
        code = await database_call(account_refusal)(caller.user_id)
    if code is not None:
        raise Unauthenticated(code, REFUSALS[code])


def missing_credentials() -> Unauthenticated:
    message = "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key'."
    return Unauthenticated(MISSING_KEY, message)


# --- model access ----------------------------------------------------------------------------------


def route_of(caller: Caller, model: str, registry: Snapshot) -> ModelRoute:
    """The model's route, if it exists and the caller may use it."""
    route = registry.models.get(model)
    shown = model if len(model) <= 100 else f"{model[:100]}…"
    if route is None:
        message = f"The model '{shown}' does not exist or you do not have access to it."
        raise NotFound("model_not_found", message, param="model")
    if not caller.may_use(model):
        whose = "This API key" if caller.key is not None else "You"
        raise Forbidden("model_not_allowed", f"{whose} may not use the model '{shown}'.", param="model")
    return route


# --- the call ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a call may use, before it is made."""

    input_tokens: int
    tpm_tokens: int  # counted against tokens per minute until the real usage is known
    worst_case_usd: Decimal  # reserved of the budget until the call settles


def prompt_tokens_from_chars(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate(route: ModelRoute, registry: Snapshot, *, input_tokens: int, max_tokens: int | None) -> Estimate:
    """The call's token count for the rate limit, and its worst-case cost: the prompt plus the
    most it may write, priced at the dearest prices of what may serve it (``_dearest_prices``)."""
    cap = route.max_output_tokens
    if max_tokens is not None and max_tokens > cap:
        message = (
            f"max_tokens is too large: {max_tokens}. The model '{route.name}' writes at most {cap} tokens "
            f"in one answer; send max_tokens (or max_completion_tokens) of {cap} or less."
        )
        raise InvalidRequest("invalid_value", message, param="max_tokens")
    written = min(max_tokens, cap) if max_tokens is not None else min(DEFAULT_OUTPUT_ESTIMATE, cap)
    most = min(max_tokens, cap) if max_tokens is not None else cap
    input_price, output_price = _dearest_prices(route, registry)
    worst = (input_price * input_tokens + output_price * most) / _PER_MILLION
    return Estimate(input_tokens=input_tokens, tpm_tokens=input_tokens + max(0, written), worst_case_usd=worst)


_PER_MILLION = Decimal(1_000_000)


def _chain(route: ModelRoute, registry: Snapshot) -> list[ModelRoute]:
    """The models that may serve a call to ``route``: itself, its fallback chain, and the
    content-policy fallback of any of them (orchestration/orchestrator.py, ``_candidates``)."""
    chain = [route, *(registry.models[name] for name in route.fallbacks if name in registry.models)]
    policy = [model.content_policy_fallback for model in chain if model.content_policy_fallback]
    return chain + [registry.models[name] for name in policy if name in registry.models]


def _dearest_prices(route: ModelRoute, registry: Snapshot) -> tuple[Decimal, Decimal]:
    """Over every model that may serve: the fallback chain, an experiment variant's model (and its
    chain), and each of their deployments (one may be priced apart, orchestration/registry.py)."""
    models = _chain(route, registry)
    experiment = registry.experiments.get(route.name)
    for variant in experiment.variants if experiment is not None else ():
        if variant.target in registry.models:
            models += _chain(registry.models[variant.target], registry)
    priced = [*models, *(deployment.route for model in models for deployment in model.deployments)]
    return max(c.input_per_mtok for c in priced), max(c.output_per_mtok for c in priced)


@dataclass(slots=True)
class Admission:
    """One admitted call: what it was admitted with, until it is settled."""

    caller: Caller
    route: ModelRoute
    estimate: Estimate
    verdict: Verdict
    settled: bool = False

    def headers(self) -> dict[str, str]:
        """The ``x-ratelimit-*`` and IETF headers of a successful response."""
        return limit_headers(self.verdict.states)

    async def settle(self, usage: Usage | None, cost: Decimal) -> None:
        """The call ended: count its real tokens and cost, release its reservation (once)."""
        if self.settled:
            return
        self.settled = True
        tokens = usage.total_tokens if usage is not None else 0
        await limits_settle(self.caller.limits, self.verdict, tokens_used=tokens, cost_usd=cost)

    def settle_sync(self, usage: Usage | None, cost: Decimal) -> None:
        if self.settled:
            return
        self.settled = True
        tokens = usage.total_tokens if usage is not None else 0
        limits_settle_sync(self.caller.limits, self.verdict, tokens_used=tokens, cost_usd=cost)

    def release_reservation_sync(self) -> None:
        """The admitted work goes on elsewhere (a task, run by a worker): keep what the door counted
        against the rate limits, give the budget reservation back (the work's own calls reserve theirs)."""
        if self.settled:
            return
        self.settled = True
        usage = Usage(input_tokens=self.verdict.token_cost)
        limits_settle_sync(self.caller.limits, self.verdict, tokens_used=usage.total_tokens, cost_usd=Decimal(0))

    async def release(self) -> None:
        """The call did not happen (or failed before using anything): give everything back."""
        await self.settle(None, Decimal(0))

    def release_sync(self) -> None:
        self.settle_sync(None, Decimal(0))


def _hold(hold_s: float) -> float:
    return max(1.0, hold_s)


async def admit(caller: Caller, *, model: str, input_tokens: int, max_tokens: int | None, hold_s: float) -> Admission:
    """Admit one call of ``caller`` on ``model``, or raise the refusal every door answers with.
    ``hold_s``: how long the call may take (its deadline); a reservation not settled by then lapses."""
    registry = await asnapshot()
    route = route_of(caller, model, registry)
    guess = estimate(route, registry, input_tokens=input_tokens, max_tokens=max_tokens)
    verdict = await limits_admit(
        caller.limits,
        token_cost=guess.tpm_tokens,
        reserve_units=usd_to_units(guess.worst_case_usd),
        hold_s=_hold(hold_s),
    )
    return _admitted(caller, route, guess, verdict)


def admit_sync(caller: Caller, *, model: str, input_tokens: int, max_tokens: int | None, hold_s: float) -> Admission:
    admitted = admit_all_sync([Call(caller, model, input_tokens, max_tokens, hold_s)])[0]
    if isinstance(admitted, Exception):
        raise admitted
    return admitted


@dataclass(frozen=True, slots=True)
class Call:
    """One call to admit: what ``admit_sync`` takes."""

    caller: Caller
    model: str
    input_tokens: int
    max_tokens: int | None
    hold_s: float


def admit_all_sync(calls: list[Call]) -> list[Admission | ServiceError]:
    """``admit_sync`` of each call, with the limiter asked about all of them in one round trip
    (``limits_admit_all_sync``); a call refused gets its refusal, and the others are admitted."""
    registry = snapshot()
    answers: dict[int, Admission | ServiceError] = {}
    asks: dict[int, tuple[ModelRoute, Estimate, LimitAsk]] = {}
    for index, call in enumerate(calls):
        try:
            route = route_of(call.caller, call.model, registry)
            guess = estimate(route, registry, input_tokens=call.input_tokens, max_tokens=call.max_tokens)
        except ServiceError as error:
            answers[index] = error
            continue
        reserve = usd_to_units(guess.worst_case_usd)
        asks[index] = (route, guess, LimitAsk(call.caller.limits, guess.tpm_tokens, reserve, _hold(call.hold_s)))
    verdicts = limits_admit_all_sync([ask for _, _, ask in asks.values()])
    for (index, (route, guess, _)), verdict in zip(asks.items(), verdicts, strict=True):
        try:
            answers[index] = _admitted(calls[index].caller, route, guess, verdict)
        except ServiceError as refused:
            answers[index] = refused
    return [answers[index] for index in range(len(calls))]


def _admitted(caller: Caller, route: ModelRoute, guess: Estimate, verdict: Verdict) -> Admission:
    if not verdict.allowed:
        metrics_refusal(verdict.status)
        raise refusal(caller, guess, verdict)
    return Admission(caller, route, guess, verdict)


# --- refusals ----------------------------------------------------------------------------------------


def refusal(caller: Caller, guess: Estimate, verdict: Verdict) -> InvalidRequest | LimitReached:
    """The error of a refused call, worded for its payer, with the rate-limit headers."""
    limits = caller.limits
    whose = "this API key's" if caller.key is not None else "your account's"
    headers = limit_headers(verdict.states)
    status = verdict.status
    if status == "too_large":
        message = (
            f"This request needs about {guess.tpm_tokens} tokens, more than {whose} limit of "
            f"{limits.tpm} tokens per minute, so it can never be admitted. "
            "Send a shorter prompt or a lower max_tokens."
        )
        return InvalidRequest("tokens_per_minute_exceeded", message, meta=headers)
    if status in ("requests", "tokens"):
        limit = limits.rpm if status == "requests" else limits.tpm
        message = f"Rate limit reached for {status}: {limit} per minute. Retry after the time in Retry-After."
        return _limited("rate_limit_exceeded", message, headers, verdict.retry_after_s)
    budget = limits.monthly_budget_usd
    worst = _usd(guess.worst_case_usd)
    left = _usd(max(Decimal(0), (budget or Decimal(0)) - units_to_usd(max(0, verdict.spent_units))))
    next_month = seconds_to_next_month(datetime.now(UTC))
    if status == "budget_too_small":
        message = (
            f"This call could cost up to {worst} USD, more than {whose} whole monthly budget of "
            f"{_usd(budget or Decimal(0))} USD. {_budget_advice(caller, wait=False)}"
        )
        return InvalidRequest("budget_exceeded", message, meta=headers)
    if status == "budget_short":
        message = (
            f"This call could cost up to {worst} USD, more than the {left} USD left of {whose} "
            f"monthly budget. {_budget_advice(caller, wait=True)}"
        )
        return _limited("budget_exceeded", message, headers, next_month)
    if status == "budget_held":
        message = (
            f"Calls in flight hold the rest of {whose} monthly budget ({left} USD left, this call "
            f"could cost up to {worst} USD). Retry when they finish."
        )
        return _limited("budget_exceeded", message, headers, _HELD_RETRY_S)
    message = f"{whose[0].upper()}{whose[1:]} monthly budget of {_usd(budget or Decimal(0))} USD is spent."
    if caller.key is None:
        message = f"{message} {_budget_advice(caller, wait=True)}"
    return _limited("budget_exceeded", message, headers, next_month)


def _budget_advice(caller: Caller, *, wait: bool) -> str:
    # An API client sets max_tokens itself; a person in the chat or the console cannot, and
    # only an administrator can raise their budget.
    if caller.key is not None:
        return "Lower max_tokens, or wait for next month." if wait else "Lower max_tokens."
    return "Wait for next month, or ask an administrator to raise it." if wait else "Ask an administrator to raise it."


# OpenAI's SDKs wait out a Retry-After of up to a minute; a longer one they ignore and retry within
# seconds, in vain (a budget spent until next month). Such a refusal tells them not to retry.
_LONGEST_CLIENT_WAIT_S = 60


def _limited(code: str, message: str, headers: dict[str, str], retry_after_s: float) -> LimitReached:
    meta = {**headers, "Retry-After": str(max(1, math.ceil(retry_after_s)))}
    if retry_after_s > _LONGEST_CLIENT_WAIT_S:
        meta["x-should-retry"] = "false"
    return LimitReached(code, message, meta=meta)


def _usd(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return text if "." not in text or len(text.split(".")[1]) >= 2 else format(amount, ".2f")
