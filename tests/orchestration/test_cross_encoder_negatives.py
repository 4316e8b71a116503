"""The negatives the cross-encoder experiment adds to the labelled pairs (tests/bench/semantic_cross_encoder.py)."""

from __future__ import annotations

import random

import numpy as np

from tests.bench.semantic_cross_encoder import FILLERS, informal, negatives, opposite, other_questions


def test_an_opposite_turns_one_word_round_and_keeps_its_case() -> None:
    # A word with two opposites takes the one listed last ("start" / "stop", then "start" / "end").
    assert opposite("How do I start a subscription?") == "How do I end a subscription?"
    assert opposite("Best time to visit Japan?") == "Worst time to visit Japan?"
    assert opposite("Is it cheaper to buy or to rent?") == "Is it cheaper to sell or to rent?"


def test_a_question_with_both_words_or_none_has_no_opposite() -> None:
    assert opposite("Should I stretch before or after a run?") is None
    assert opposite("What is the capital of Peru?") is None
    assert opposite("Is a cold contagious?") is None  # "cold" is a noun too: left out


def test_negatives_come_from_paraphrases_only() -> None:
    pairs = [
        {"a": "How do I begin a diet?", "b": "How do I start a diet?", "label": "paraphrase"},
        {"a": "How do I start a blog?", "b": "How do I start a vlog?", "label": "near_miss"},
    ]
    assert negatives(pairs) == [("How do I begin a diet?", "How do I end a diet?")]


def _pair(pair_id: int, a: str, b: str, context: list[str] | None = None) -> dict[str, object]:
    return {"id": pair_id, "a": a, "b": b, "context_a": context or [], "context_b": context or []}


def test_other_questions_are_other_pairs_cached_questions_in_the_same_conversation_most_alike() -> None:
    unit = np.eye(4, dtype=np.float32)
    pairs = [
        _pair(1, "What is the capital of Peru?", "Capital of Peru?"),
        _pair(2, "Tell me the capital of Peru.", "What's Peru's capital?"),  # the same question again
        _pair(3, "How big is Peru?", "What is the area of Peru?"),
        _pair(4, "Who runs it?", "Who leads it?", context=["Tell me about Peru."]),
    ]
    repeat = np.array([0.96, 0.0, 0.28, 0.0], dtype=np.float32)
    vectors = {
        1: (unit[0], unit[0]),
        2: (repeat, unit[0]),
        3: ((unit[0] + unit[1]) / np.sqrt(2), (unit[0] + unit[1]) / np.sqrt(2)),
        4: (unit[0], unit[0]),
    }
    found = other_questions(pairs, vectors, each=4, floor=0.35)  # type: ignore[arg-type]
    # Pair 1: pair 2's question is written otherwise, so it is another pair's (a repeat: the ceiling
    # is what keeps repeats out of training); pair 4's comes after other turns: another scope.
    assert found[1] == ["Tell me the capital of Peru.", "How big is Peru?"]
    assert other_questions(pairs, vectors, each=4, floor=0.35, ceiling=0.9)[1] == ["How big is Peru?"]  # type: ignore[arg-type]
    assert other_questions(pairs, vectors, each=1, floor=0.35)[3] == ["What is the capital of Peru?"]  # type: ignore[arg-type]
    assert found[4] == []


def test_an_informal_reading_keeps_the_question_and_varies_how_it_is_typed() -> None:
    rng = random.Random(7)
    question = "What is the author of Pride and Prejudice called? Please tell me."
    readings = [informal(question, rng) for _ in range(200)]
    assert all("pride and prejudice" in reading.lower() for reading in readings)
    assert any(reading == reading.lower() for reading in readings)
    assert any(reading.lower().startswith(FILLERS) for reading in readings)
    assert any("what's" in reading.lower() and "pls" in reading for reading in readings)
    assert len(set(readings)) > 20
