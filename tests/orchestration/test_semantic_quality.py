"""How often the semantic cache serves a paraphrase, and how rarely a near miss, on labelled pairs.

tests/data/semantic_pairs.jsonl holds a few hundred question pairs over ten domains, labelled
``paraphrase`` (the cached answer is right) or ``near_miss`` (it would be wrong). The ``design``
split was used to shape the near-miss guard; the ``held_out`` split was written after it was
frozen. Each pair goes through the cache's own decision: the default local embedder, the model's
default threshold, the scope index and the guard. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orchestration.caching.embedders import LocalEmbedder
from orchestration.caching.semantic import ScopeIndex, matches
from orchestration.models import LanguageModel

PAIRS = Path(__file__).resolve().parent.parent / "data" / "semantic_pairs.jsonl"
THRESHOLD = float(LanguageModel._meta.get_field("cache_semantic_threshold").get_default())


def load_pairs() -> list[dict[str, str]]:
    with open(PAIRS, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def served(cached: str, cached_vector: np.ndarray, asked: str, asked_vector: np.ndarray) -> bool:
    index = ScopeIndex("pair")
    index.add("cached", cached_vector, expires_at=2.0, stale_until=3.0, question=cached)
    return bool(matches(index, asked, asked_vector, THRESHOLD, 1.0, stale=False))


@pytest.fixture(scope="module")
def outcomes() -> list[tuple[dict[str, str], bool]]:
    pairs = load_pairs()
    embedder = LocalEmbedder()
    cached = embedder.embed_sync([pair["a"] for pair in pairs])
    asked = embedder.embed_sync([pair["b"] for pair in pairs])
    return [(pair, served(pair["a"], cached[i], pair["b"], asked[i])) for i, pair in enumerate(pairs)]


def rates(outcomes: list[tuple[dict[str, str], bool]], split: str | None = None) -> tuple[float, float, int, int]:
    chosen = [(pair, hit) for pair, hit in outcomes if split is None or pair["split"] == split]
    paraphrases = [hit for pair, hit in chosen if pair["label"] == "paraphrase"]
    near_misses = [hit for pair, hit in chosen if pair["label"] == "near_miss"]
    return sum(paraphrases) / len(paraphrases), sum(near_misses) / len(near_misses), len(paraphrases), len(near_misses)


def test_the_labelled_set_is_a_few_hundred_pairs_of_both_kinds_over_many_domains() -> None:
    pairs = load_pairs()
    assert len(pairs) >= 300
    assert {pair["label"] for pair in pairs} == {"paraphrase", "near_miss"}
    assert len({pair["domain"] for pair in pairs}) >= 8
    assert all(pair["a"] != pair["b"] for pair in pairs)


def test_near_misses_almost_never_hit_while_most_paraphrases_do(outcomes: list[tuple[dict[str, str], bool]]) -> None:
    for split in (None, "design", "held_out"):
        hit_rate, false_rate, paraphrases, near_misses = rates(outcomes, split)
        print(
            f"\nsemantic cache at threshold {THRESHOLD} [{split or 'all'}]: paraphrase hits {hit_rate:.1%} "
            f"of {paraphrases}, near-miss false hits {false_rate:.1%} of {near_misses}"
        )
    for pair, hit in outcomes:
        if hit and pair["label"] == "near_miss":
            print(f"false hit: {pair['a']!r} answered {pair['b']!r}")
    hit_rate, false_rate, _, _ = rates(outcomes)
    assert false_rate < 0.01
    assert hit_rate > 0.60


def test_the_capital_and_order_examples_of_the_design_do_not_hit(outcomes: list[tuple[dict[str, str], bool]]) -> None:
    by_pair = {(pair["a"], pair["b"]): hit for pair, hit in outcomes}
    assert by_pair[("What is the capital of France?", "What is the capital of Spain?")] is False
    assert by_pair[("How do I cancel my order?", "How do I place an order?")] is False
