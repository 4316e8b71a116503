"""Token counts: kept for the texts counted last (each call of a conversation brings its earlier
messages again), and a prompt counted message by message: never under the count of the whole
text, and under what the model reads (the chat format spends about four tokens a message)."""

from __future__ import annotations

import random

import pytest

from orchestration import tokens
from orchestration.calls import _tokens_of
from orchestration.tokens import COUNT_KEPT_FROM, cl100k, tokens_count, tokens_uncounted

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


def uncached(text: str) -> int:
    encoding = cl100k()
    return len(encoding.encode(text, disallowed_special=()))


def test_a_kept_count_is_the_count_and_the_text_is_not_counted_again() -> None:
    text = text_of(1, 400)
    assert tokens_uncounted([text]) == len(text)
    assert tokens_count(text) == uncached(text)
    assert tokens_uncounted([text]) == 0
    assert tokens_count(text) == uncached(text)
    # The same text in another string object (a new request's JSON) is the same text.
    assert tokens_uncounted(["".join(list(text))]) == 0


def test_a_short_text_is_counted_each_time_and_said_so() -> None:
    short = "a" * (COUNT_KEPT_FROM - 1)
    assert tokens_count(short) == uncached(short)
    assert tokens_uncounted([short]) == len(short)


def test_only_the_texts_counted_last_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "COUNTS_KEPT", 3)
    texts = [text_of(100 + seed, 60) for seed in range(4)]
    for text in texts[:3]:
        tokens_count(text)
    tokens_count(texts[0])  # used again: now the newest
    tokens_count(texts[3])  # one too many: the least recently used goes
    assert tokens_uncounted([texts[1]]) == len(texts[1])
    assert tokens_uncounted([texts[0], texts[2], texts[3]]) == 0


@pytest.mark.parametrize("seed", range(40))
def test_a_prompt_counted_by_message_is_between_the_whole_and_what_the_model_reads(seed: int) -> None:
    chooser = random.Random(seed)
    parts = [text_of(seed * 1000 + index, chooser.randint(0, 120)) for index in range(chooser.randint(1, 30))]
    whole = uncached("\n".join(parts))
    assert whole <= _tokens_of(parts) <= whole + len(parts)
