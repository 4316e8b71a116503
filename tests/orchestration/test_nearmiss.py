"""The near-miss guard's role-swap rule: the same words with the participants' roles exchanged.

The pairs are written here for the rule; none is taken from tests/data/semantic_eval.jsonl, whose
held-out parts only measure the guard (tests/bench/semantic_quality.py).
"""

from __future__ import annotations

import pytest

from orchestration.caching.nearmiss import near_miss_reason


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("Does Alice owe Bob money?", "Does Bob owe Alice money?"),
        ("Is Saturn heavier than Neptune?", "Is Neptune heavier than Saturn?"),
        ("Did Ali beat Frazier in 1971?", "Did Frazier beat Ali in 1971?"),
        ("Why did Rome attack Carthage?", "Why did Carthage attack Rome?"),
        ("Is my aunt's neighbour coming to the wedding?", "Is my neighbour's aunt coming to the wedding?"),
        ("Can I use a Dell adapter for a Lenovo?", "Can I use a Lenovo adapter for a Dell?"),
        ("Does New York have more people than Los Angeles?", "Does Los Angeles have more people than New York?"),
        ("Is 9 bigger than 7 in this puzzle?", "Is 7 bigger than 9 in this puzzle?"),
        ("What did the buyer promise the seller?", "What did the seller promise the buyer?"),
        ("Was Haydn a teacher of Beethoven?", "Was Beethoven a teacher of Haydn?"),
    ],
)
def test_a_question_with_its_participants_exchanged_is_refused(cached: str, asked: str) -> None:
    assert near_miss_reason(asked, cached) == "role_swap"


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("Who wrote Dune?", "Dune was written by whom?"),
        ("Who painted Guernica?", "Who was Guernica painted by?"),
        ("In Vienna, what is the best coffee house?", "What is the best coffee house in Vienna?"),
        ("Should I add salt and pepper to the soup?", "Should I add pepper and salt to the soup?"),
        ("Which is faster, Go vs Rust?", "Which is faster, Rust vs Go?"),
        ("What is Portugal's capital?", "What is the capital of Portugal?"),
        ("How do I reverse a string in Ruby?", "How do I reverse a Ruby string?"),
        ("What's the difference between a violin and a viola?", "What's the difference between a viola and a violin?"),
        ("What's the best laptop for students?", "For students, what's the best laptop?"),
        ("What is 6 times 8?", "What is 8 times 6?"),
    ],
)
def test_a_reordering_that_keeps_the_roles_is_not_a_swap(cached: str, asked: str) -> None:
    assert near_miss_reason(asked, cached) != "role_swap"
