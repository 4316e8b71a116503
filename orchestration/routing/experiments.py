"""Which variant of an experiment a call gets: a hash of the experiment and the call's subject
(user, conversation or key), so the same subject always lands in the same variant."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from orchestration.registry import ExperimentRoute, VariantRoute
from orchestration.types import CallContext, ChatRequest

# What a variant may change of a request (checked when the variant is saved).
VARIANT_PARAMETERS = {
    "temperature": float,
    "top_p": float,
    "max_tokens": int,
    "presence_penalty": float,
    "frequency_penalty": float,
    "seed": int,
}


def experiment_subject(sticky_by: str, ctx: CallContext) -> str:
    """The identity assignment sticks to; a call without it sticks to the next one that it has."""
    candidates = {
        "conversation": ("c", ctx.conversation_id),
        "user": ("u", ctx.user_id),
        "key": ("k", ctx.api_key_id),
    }
    preferred = candidates.get(sticky_by)
    for prefix, value in (preferred, candidates["user"], candidates["key"]) if preferred else candidates.values():
        if value is not None:
            return f"{prefix}{value}"
    return f"r{ctx.request_id}"


def experiment_bucket(experiment: str, subject: str) -> int:
    """0-99, uniform over subjects, independent between experiments."""
    digest = hashlib.blake2b(f"{experiment}:{subject}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def variant_for(experiment: ExperimentRoute, ctx: CallContext) -> VariantRoute | None:
    bucket = experiment_bucket(experiment.name, experiment_subject(experiment.sticky_by, ctx))
    return next((variant for variant in experiment.variants if bucket < variant.upper), None)


def request_varied(request: ChatRequest, parameters: dict[str, object]) -> ChatRequest:
    """The request with a variant's parameters; the caller's own values are replaced."""
    if not parameters:
        return request
    return replace(request, **{k: v for k, v in parameters.items() if k in VARIANT_PARAMETERS})  # type: ignore[arg-type]
