"""How often the semantic cache serves a paraphrase, and how rarely a near miss, on labelled pairs.

tests/data/semantic_eval.jsonl holds 3,204 question pairs in categories (see
tests/bench/semantic_quality.py, which prints the per-category table). The ``tune`` split shaped
the guard and the calibration; the ``held_out`` split is only measured. Each pair goes through the
cache's own decision at the default error budget; ``fresh`` pairs were written after the rest had been
measured, ``fresh2`` pairs after ``fresh`` had been, ``fresh3`` pairs before the guard's degree,
wh-word and verb-form rules, ``fresh4`` pairs before its negation-count, clock-time and
pronoun-role rules (``fresh2``, ``fresh3`` and ``fresh4`` have since shaped the guard too), and
``fresh5`` pairs before its owner, relation-verb, "every other", request and duration rules, and
``fresh6`` pairs before a learned second stage was tried (not adopted: docs/benchmarks.md);
``fresh5`` and ``fresh6`` then shaped the container, plural-possessive and how-to verb rules, and
``fresh7`` pairs were written before those rules, and ``fresh8`` pairs before the number-phrase,
route-ellipsis, moved-owner, asker-subject, "good"/"best", "stop X from" and acronym-floor rules that
``fresh8``'s own misses and ``fresh7``'s last wrong hit then shaped: ``fresh8`` was blind only for
its before figure (docs/benchmarks.md). Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from orchestration.caching.policy import (
    CALIBRATION_PATH,
    DEFAULT_ERROR_BUDGET,
    NO_HIT_THRESHOLD,
    CalibrationPoint,
    calibration,
    policy_for,
    threshold_for_budget,
)
from tests.bench.semantic_quality import (
    SPLITS,
    calibration_document,
    category_table,
    default_policy,
    load_pairs,
    outcomes,
    pair_vectors,
    report_lines,
)

PARAPHRASE_KINDS = {
    "verb_noun",
    "action_synonym",
    "abbreviation",
    "number_word",
    "turned_around",
    "reworded",
    "register",
    "imperative",
    "multi_turn_same",
}
NEAR_MISS_KINDS = {"numbers", "negation", "direction", "entity", "time", "quantity", "unit", "action"} | {
    "multi_turn_other"
}


@pytest.fixture(scope="module")
def vectors() -> list[Any]:
    """Every pair embedded once for the module: the local model over 3,500 questions takes a while."""
    return pair_vectors(load_pairs())


@pytest.fixture(scope="module")
def table(vectors: list[Any]) -> dict[tuple[str, str, str], tuple[int, int]]:
    pairs = load_pairs()
    policy = default_policy()
    found = category_table(pairs, outcomes(pairs, policy, vectors))
    print("\n" + "\n".join(report_lines(found, policy)))
    return found


def rate(table: dict[tuple[str, str, str], tuple[int, int]], label: str, split: str) -> float:
    served, total = table[(label, "*", split)]
    return served / total


def test_the_labelled_set_has_600_written_pairs_in_every_category_in_both_splits() -> None:
    pairs = load_pairs()
    written = [pair for pair in pairs if pair["source"] == "written"]
    assert len(written) >= 600
    kinds = Counter((pair["label"], pair["category"], pair["split"]) for pair in written)
    for category in PARAPHRASE_KINDS:
        assert kinds[("paraphrase", category, "tune")] >= 10 and kinds[("paraphrase", category, "held_out")] >= 10
    for category in NEAR_MISS_KINDS:
        assert kinds[("near_miss", category, "tune")] >= 10 and kinds[("near_miss", category, "held_out")] >= 10
    assert len({pair["id"] for pair in pairs}) == len(pairs)
    assert len({(pair["a"], pair["b"], json.dumps(pair["context_b"])) for pair in pairs}) == len(pairs)


def test_at_the_default_budget_most_held_out_paraphrases_hit_and_tuned_near_misses_do_not(
    table: dict[tuple[str, str, str], tuple[int, int]],
) -> None:
    assert rate(table, "paraphrase", "held_out") >= 0.70
    assert rate(table, "paraphrase", "fresh") >= 0.70
    assert rate(table, "paraphrase", "fresh2") >= 0.80
    assert rate(table, "paraphrase", "fresh3") >= 0.80
    # fresh4: 114/153 (75%) with the WordNet synonyms (110/153 before them).
    assert rate(table, "paraphrase", "fresh4") >= 0.74
    assert rate(table, "paraphrase", "fresh5") >= 0.80
    assert rate(table, "paraphrase", "fresh6") >= 0.75
    assert rate(table, "paraphrase", "fresh7") >= 0.80
    # fresh8: 110/162 (68%) after its round's rules (96/162 before them, blind), 115/162 (71%) with the
    # WordNet synonyms.
    assert rate(table, "paraphrase", "fresh8") >= 0.70
    # fresh9, fresh10 and fresh11 were written by engineers who never read the cache's code. Blind, each
    # scored 74/162, 75/162 and 76/162 paraphrases and served 3 of 168 near misses; the rules written from
    # them since serve 87, 78 and 76 and refuse all but one near miss of fresh10 and of fresh11
    # (docs/benchmarks.md, "Blind parts written by someone else").
    assert rate(table, "paraphrase", "fresh9") >= 0.53
    assert rate(table, "paraphrase", "fresh10") >= 0.47
    assert rate(table, "paraphrase", "fresh11") >= 0.46
    assert table[("near_miss", "*", "fresh9")][0] == 0
    assert table[("near_miss", "*", "fresh10")][0] <= 1  # "how long after diving can I fly" swapped
    assert table[("near_miss", "*", "fresh11")][0] <= 1  # "my wife inherit if I die" / "I inherit if my wife dies"
    # fresh12 and fresh13, written the same way, were scored once and nothing was tuned on them: 63/162
    # and 68/162 paraphrases, 10/168 and 6/167 near misses served (docs/benchmarks.md, "The never-tuned
    # parts fresh12 and fresh13"). These bounds say only that the cache got no worse on them.
    assert rate(table, "paraphrase", "fresh12") >= 0.38
    assert rate(table, "paraphrase", "fresh13") >= 0.41
    assert table[("near_miss", "*", "fresh12")][0] <= 10
    assert table[("near_miss", "*", "fresh13")][0] <= 6
    assert rate(table, "near_miss", "tune") <= DEFAULT_ERROR_BUDGET
    assert rate(table, "near_miss", "held_out") <= 0.01
    for split in ("fresh", "fresh2", "fresh3", "fresh4", "fresh5"):
        assert table[("near_miss", "*", split)][0] == 0, split
    # fresh6 (a development part now) still serves one possessive role swap: "Does a cat's mother
    # recognise her kittens?" / "Do kittens recognise their mother?" (see docs/benchmarks.md).
    assert table[("near_miss", "*", "fresh6")][0] <= 1
    # fresh7 served 1 of its 96 near misses until the asker-subject rule of the fresh8 round ("Can my
    # kids' school see my medical records?" / "Can I see my kids' school medical records?"); fresh8
    # served 2 of 168 before its round (a route with a word left out, an owner that acts in the other
    # question) and none after.
    for split in ("fresh7", "fresh8"):
        assert table[("near_miss", "*", split)][0] == 0, split


def test_every_near_miss_kind_is_refused(table: dict[tuple[str, str, str], tuple[int, int]]) -> None:
    for category in NEAR_MISS_KINDS:
        # fresh10 and fresh11 each still serve one near miss, and the never-tuned parts several: asserted above.
        for split in (split for split in SPLITS if split not in ("fresh10", "fresh11", "fresh12", "fresh13")):
            assert table[("near_miss", category, split)][0] == 0, (category, split)
    for split in ("fresh2", "fresh3", "fresh4"):
        assert table[("near_miss", "role_swap", split)][0] == 0, split
    for category in ("comparative", "scope"):
        assert table[("near_miss", category, "fresh4")][0] == 0, category
        assert table[("near_miss", category, "fresh5")][0] == 0, category
        assert table[("near_miss", category, "fresh6")][0] == 0, category
        assert table[("near_miss", category, "fresh7")][0] == 0, category
        assert table[("near_miss", category, "fresh8")][0] == 0, category
    assert table[("near_miss", "role_swap", "fresh5")][0] == 0
    assert table[("near_miss", "role_swap", "fresh6")][0] <= 1  # the possessive above
    assert table[("near_miss", "role_swap", "fresh7")][0] == 0
    assert table[("near_miss", "role_swap", "fresh8")][0] == 0


def test_the_shipped_calibration_is_what_the_labelled_set_gives_today(vectors: list[Any]) -> None:
    shipped = json.loads(CALIBRATION_PATH.read_text(encoding="utf-8"))
    assert calibration_document(load_pairs(), vectors) == shipped


def test_a_tighter_budget_never_lowers_the_threshold_and_an_impossible_one_serves_nothing() -> None:
    points = tuple(
        CalibrationPoint(threshold=t, near_misses=200, wrong=w, paraphrases=200, hits=h)
        for t, w, h in ((0.5, 9, 190), (0.6, 3, 180), (0.7, 1, 170), (0.8, 0, 150), (0.9, 0, 120))
    )
    assert threshold_for_budget(0.05, points) == 0.6  # 0.5 fits too (10/202), but it has no lower neighbour
    assert threshold_for_budget(0.02, points) == 0.7  # 0.6 is at 2.0%: it fits, so 0.7 has slack below
    assert threshold_for_budget(0.01, points) == 0.8  # 0.7 is at 1.0%: it fits, 0.8 has slack
    assert threshold_for_budget(0.004, points) == NO_HIT_THRESHOLD


def test_a_raw_threshold_still_wins_and_another_embedder_falls_back_to_the_measured_default() -> None:
    shipped = calibration()
    assert shipped is not None
    assert policy_for(0.93, 0.01, shipped.embedder).threshold == 0.93
    assert policy_for(None, 0.01, "provider:text-embedding-3-small").threshold == 0.85
    budget_policy = policy_for(None, 0.01, shipped.embedder)
    assert budget_policy.threshold == threshold_for_budget(0.01)
    assert policy_for(None, 0.001, shipped.embedder).threshold >= budget_policy.threshold


def _served(pair: dict[str, Any]) -> bool:
    return outcomes([pair], default_policy())[0]


@pytest.mark.parametrize(
    ("cached", "asked", "hit"),
    [
        ("What is the capital of France?", "What is the capital of Spain?", False),
        ("How do I cancel my order?", "How do I place an order?", False),
        ("How do I cancel my subscription?", "How do I end my subscription?", True),
        ("What is the GDP of Peru?", "What is the gross domestic product of Peru?", True),
        ("Who founded Netflix?", "Who is the founder of Netflix?", True),
        ("How do I delete one photo?", "How do I delete all photos?", False),
        ("What is the bus schedule from Leeds to York?", "What is the bus schedule from York to Leeds?", False),
    ],
)
def test_the_issues_examples_decide_as_a_person_would(cached: str, asked: str, hit: bool) -> None:
    pair = {"a": cached, "b": asked, "context_a": [], "context_b": []}
    assert _served(pair) is hit


def test_wrong_hit_reports_raise_the_floor_only_past_the_budget_and_just_above_the_lowest_ones() -> None:
    from orchestration.caching.feedback import FLOOR_STEP, learned_floor

    assert learned_floor([0.7], served=100, budget=0.01) == 0.0  # 1 of 100 fits a 1% budget
    assert learned_floor([0.7, 0.9], served=100, budget=0.01) == 0.7 + FLOOR_STEP  # the lowest one goes
    assert learned_floor([0.7, 0.8, 0.9], served=100, budget=0.01) == 0.8 + FLOOR_STEP
    assert learned_floor([0.99], served=1, budget=0.01) == 0.99 + FLOOR_STEP
