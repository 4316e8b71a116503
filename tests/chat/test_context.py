from __future__ import annotations

from dataclasses import replace

import pytest

from chat.context import ContextTooLong, Turn, context_fit, reply_room, tokens_exact
from tests.orchestration.harness import ROUTE as BASE_ROUTE

# An OpenAI model with caching off: context counting uses the exact OpenAI tokenizer.
ROUTE = replace(
    BASE_ROUTE, provider_kind="openai", upstream="m", cache_exact_enabled=False, cache_exact_ttl_s=0, simulated=False
)


def conversation(pairs: int, words: int) -> list[Turn]:
    turns = []
    for i in range(pairs):
        turns.append(Turn("user", f"question {i} " + "lorem " * words))
        turns.append(Turn("assistant", f"answer {i} " + "ipsum " * words))
    return turns


def test_the_tokenizer_is_openais_cl100k() -> None:
    assert tokens_exact("Hello, world!") == 4
    assert tokens_exact("tiktoken is great!") == 6


def test_a_short_conversation_is_sent_whole_with_the_system_prompt_first() -> None:
    turns = conversation(3, 5)
    fitted = context_fit(system_prompt="Be brief.", turns=turns, route=ROUTE)
    assert [m.role for m in fitted.messages] == ["system", *[t.role for t in turns]]
    assert fitted.messages[0].content == "Be brief."
    assert fitted.dropped_turns == 0
    assert fitted.reply_tokens == 4096


def test_the_oldest_turns_are_dropped_to_fit_and_the_system_prompt_stays() -> None:
    route = replace(ROUTE, context_window=1000, max_output_tokens=200)
    turns = [*conversation(20, 40), Turn("user", "the newest question")]
    fitted = context_fit(system_prompt="You are terse.", turns=turns, route=route)
    assert fitted.messages[0].role == "system"
    assert fitted.messages[1].role == "user"
    assert fitted.messages[-1].content == "the newest question"
    assert fitted.dropped_turns > 0
    kept = fitted.messages[1:]
    assert [m.content for m in kept] == [t.content for t in turns[fitted.dropped_turns :]]
    assert fitted.input_tokens <= route.context_window - fitted.reply_tokens


def test_the_count_is_in_tokens_not_bytes() -> None:
    # 3000 bytes of "lorem " is far fewer tokens: with a byte count the history would be cut.
    route = replace(ROUTE, context_window=2400, max_output_tokens=200)
    turns = [Turn("user", "lorem " * 500), Turn("assistant", "ok"), Turn("user", "and?")]
    fitted = context_fit(system_prompt="", turns=turns, route=route)
    assert fitted.dropped_turns == 0


def test_vendors_without_an_offline_tokenizer_are_counted_with_a_margin() -> None:
    turns = [Turn("user", "lorem " * 500)]
    openai = context_fit(system_prompt="", turns=turns, route=replace(ROUTE, context_window=2000))
    anthropic = context_fit(
        system_prompt="", turns=turns, route=replace(ROUTE, context_window=2000, provider_kind="anthropic")
    )
    assert anthropic.input_tokens > openai.input_tokens


def test_a_message_too_long_for_the_model_alone_is_refused() -> None:
    route = replace(ROUTE, context_window=300, max_output_tokens=100)
    with pytest.raises(ContextTooLong):
        context_fit(system_prompt="", turns=[Turn("user", "lorem ipsum dolor " * 200)], route=route)


def test_the_reply_never_gets_more_than_half_the_window() -> None:
    assert reply_room(replace(ROUTE, context_window=4000, max_output_tokens=4096)) == 2000
