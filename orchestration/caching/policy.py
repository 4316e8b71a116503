"""When the semantic cache may serve a candidate: a similarity threshold derived from an error budget.

An operator sets, per model, the largest share of wrong semantic hits they accept (the error
budget, default 1%). The threshold follows from a calibration of the local embedder with the
near-miss guard on the ``tune`` split of tests/data/semantic_eval.jsonl, stored in
``data/semantic_calibration.json`` (``python -m tests.bench.semantic_quality --calibrate`` writes
it): for each threshold on a grid, how many near misses and paraphrases that split serves.

The threshold for a budget is the lowest on the grid whose estimated wrong-hit rate, and that of
the next lower grid step (slack against a cliff in the curve), stay within the budget. The
estimate is (wrong + 1) / (near misses + 2): a handful of labelled pairs with no wrong hit does
not prove a rate of zero. A budget no threshold meets gets ``NO_HIT_THRESHOLD``.

A candidate then answers when the guard lets it through and it is at least that similar, or when
the guard finds it is the same question in other words (``nearmiss.equivalent``) and it clears
the lower ``equivalent_floor`` (``acronym_floor`` when it is the same question only once an acronym
is spelled out, ``nearmiss.spelled_out``). Feedback (``orchestration.caching.feedback``) raises a model's
threshold after wrong hits are reported.

A model with a raw ``cache_semantic_threshold`` keeps it (the older setting), and so does any
embedder other than the calibrated one: its scores mean something else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CALIBRATION_PATH = Path(__file__).resolve().parent / "data" / "semantic_calibration.json"
DEFAULT_ERROR_BUDGET = 0.01
# The threshold of a model without budget or calibration: the project's measured default before budgets.
UNCALIBRATED_THRESHOLD = 0.85
NO_HIT_THRESHOLD = 1.01  # above any cosine similarity: nothing is served
# A pair the guard reads as the same words may be served from this similarity on.
EQUIVALENT_FLOOR = 0.5
# ... and from this one when it reads them so only once an acronym is spelled out ("What is an IPO?" /
# "What is an initial public offering?"): the embedder knows few acronyms, and scores such pairs from
# 0.41 to 0.49 on all parts of tests/data/semantic_eval.jsonl, where no near miss reads as the same words
# below 0.5.
ACRONYM_FLOOR = 0.35


@dataclass(frozen=True, slots=True)
class SemanticPolicy:
    threshold: float
    equivalent_floor: float
    acronym_floor: float = NO_HIT_THRESHOLD  # off unless the policy comes from a calibration

    @property
    def lowest(self) -> float:
        """The lowest similarity any candidate may have."""
        return min(self.threshold, self.equivalent_floor, self.acronym_floor)


@dataclass(frozen=True, slots=True)
class CalibrationPoint:
    threshold: float
    near_misses: int
    wrong: int
    paraphrases: int
    hits: int

    @property
    def wrong_estimate(self) -> float:
        return (self.wrong + 1) / (self.near_misses + 2)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.paraphrases if self.paraphrases else 0.0


@dataclass(frozen=True, slots=True)
class Calibration:
    embedder: str
    equivalent_floor: float
    tune: tuple[CalibrationPoint, ...]
    held_out: tuple[CalibrationPoint, ...]


def _points(rows: list[dict[str, Any]]) -> tuple[CalibrationPoint, ...]:
    return tuple(sorted((CalibrationPoint(**row) for row in rows), key=lambda point: point.threshold))


@cache
def calibration() -> Calibration | None:
    """The shipped calibration, or None when the file is missing."""
    if not CALIBRATION_PATH.exists():
        return None
    document = json.loads(CALIBRATION_PATH.read_text(encoding="utf-8"))
    return Calibration(
        embedder=document["embedder"],
        equivalent_floor=float(document["equivalent_floor"]),
        tune=_points(document["tune"]),
        held_out=_points(document["held_out"]),
    )


def threshold_for_budget(budget: float, points: tuple[CalibrationPoint, ...] | None = None) -> float:
    """The lowest calibrated threshold whose wrong-hit estimate, and its lower neighbour's, fit ``budget``."""
    if points is None:
        found = calibration()
        points = found.tune if found else ()
    if not points:
        return UNCALIBRATED_THRESHOLD
    fits = [point.wrong_estimate <= budget for point in points]
    for index, point in enumerate(points):
        if fits[index] and all(fits[index:]) and index > 0 and fits[index - 1]:
            return point.threshold
    return NO_HIT_THRESHOLD


def measured_at(threshold: float) -> CalibrationPoint | None:
    """The held-out figures at the calibrated threshold nearest ``threshold`` (for the admin)."""
    found = calibration()
    if found is None or not found.held_out or threshold > 1.0:
        return None
    return min(found.held_out, key=lambda point: abs(point.threshold - threshold))


def policy_for(
    raw_threshold: float | None, error_budget: float, embedder: str, learned_floor: float = 0.0
) -> SemanticPolicy:
    """The policy of a model: its raw threshold if it has one, else the one its error budget gives."""
    found = calibration()
    if raw_threshold is not None:
        return SemanticPolicy(max(raw_threshold, learned_floor), NO_HIT_THRESHOLD)
    if found is None or found.embedder != embedder:
        return SemanticPolicy(max(UNCALIBRATED_THRESHOLD, learned_floor), NO_HIT_THRESHOLD)
    threshold = max(threshold_for_budget(error_budget), learned_floor)
    return SemanticPolicy(
        threshold, max(found.equivalent_floor, learned_floor), acronym_floor=max(ACRONYM_FLOOR, learned_floor)
    )


def operating_point_text(
    raw_threshold: float | None, error_budget: float, embedder: str, learned_floor: float = 0.0
) -> str:
    """The threshold a model runs at and what it measured on the held-out pairs, for the admin."""
    policy = policy_for(raw_threshold, error_budget, embedder, learned_floor)
    if policy.threshold > 1.0:
        return f"no threshold meets an error budget of {error_budget:.2%}: nothing is served"
    source = "raw threshold" if raw_threshold is not None else f"from an error budget of {error_budget:.2%}"
    if learned_floor > policy.threshold - 1e-9 and learned_floor > 0:
        source = "learned floor, raised by wrong-hit reports"
    text = f"{policy.threshold:.2f} ({source})"
    found = calibration()
    point = measured_at(policy.threshold) if found is not None and found.embedder == embedder else None
    if point is None:
        return f"{text}; not measured for embedder {embedder}"
    return (
        f"{text}; on held-out labelled pairs: {point.hit_rate:.0%} of paraphrases served, "
        f"{point.wrong}/{point.near_misses} near misses served ({point.wrong / max(point.near_misses, 1):.1%})"
    )
