"""Token counts: kept for the texts counted last (each call of a conversation brings its earlier
messages again), and a prompt counted message by message: never under the count of the whole
text, and under what the model reads (the chat format spends about four tokens a message)."""

from __future__ import annotations

import asyncio
import random

import pytest

from orchestration import tokens
from orchestration.calls import _prompt_tokens
from orchestration.tokens import COUNT_KEPT_FROM, cl100k, tokens_count, tokens_kept, utf8_size

pytestmark = pytest.mark.skipif(cl100k() is None, reason="no offline tokenizer installed")

WORDS = ["the", "model", "reads", "café", "über", "naïve", "2026", "```python\n", "def f(x):\n\treturn x```"]
WORDS += ["😀", "Ελληνικά", "日本語", "\n\n", "--", "", "  "]


@pytest.fixture(autouse=True)
def no_counts_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no count kept (another test's texts may be this one's)."""
    monkeypatch.setattr(tokens, "_kept_counts", tokens._KeptCounts())


def text_of(seed: int, words: int) -> str:
    chooser = random.Random(seed)
    return " ".join(chooser.choice(WORDS) for _ in range(words))


def uncounted(texts: list[str]) -> int:
    """The characters of ``texts`` whose count is not kept."""
    return sum(len(text) for text in tokens_kept(texts)[1])


def uncached(text: str) -> int:
    encoding = cl100k()
    return len(encoding.encode(text, disallowed_special=()))


def test_a_kept_count_is_the_count_and_the_text_is_not_counted_again() -> None:
    text = text_of(1, 400)
    assert uncounted([text]) == len(text)
    assert tokens_count(text) == uncached(text)
    assert uncounted([text]) == 0
    assert tokens_count(text) == uncached(text)
    # The same text in another string object (a new request's JSON) is the same text.
    assert uncounted(["".join(list(text))]) == 0


def test_a_short_text_is_counted_each_time_and_said_so() -> None:
    short = "a" * (COUNT_KEPT_FROM - 1)
    assert tokens_count(short) == uncached(short)
    assert uncounted([short]) == len(short)


def test_only_the_texts_counted_last_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "COUNTS_KEPT", 3)
    texts = [text_of(100 + seed, 60) for seed in range(4)]
    for text in texts[:3]:
        tokens_count(text)
    tokens_count(texts[0])  # used again: now the newest
    tokens_count(texts[3])  # one too many: the least recently used goes
    assert uncounted([texts[1]]) == len(texts[1])
    assert uncounted([texts[0], texts[2], texts[3]]) == 0


@pytest.mark.parametrize("seed", range(40))
def test_a_prompt_counted_by_message_is_between_the_whole_and_what_the_model_reads(seed: int) -> None:
    chooser = random.Random(seed)
    parts = [text_of(seed * 1000 + index, chooser.randint(0, 120)) for index in range(chooser.randint(1, 30))]
    whole = uncached("\n".join(parts))
    assert whole <= asyncio.run(_prompt_tokens(parts)) <= whole + len(parts)


def test_the_kept_counts_of_a_prompt_are_summed_and_the_rest_named() -> None:
    texts = [text_of(7, 80), text_of(8, 80), "short", text_of(9, 80)]
    tokens_count(texts[0])
    tokens_count(texts[3])
    known, rest = tokens_kept(texts)
    assert known == uncached(texts[0]) + uncached(texts[3])
    assert rest == [texts[1], "short"]


@pytest.mark.parametrize("text", ["", "plain ascii", "café", "😀 and more", "\x00\x7f", "日本語" * 50])
def test_a_texts_utf8_size_is_its_encoded_length(text: str) -> None:
    assert utf8_size(text) == len(text.encode())
