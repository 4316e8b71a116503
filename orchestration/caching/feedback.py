"""Reports of wrong semantic hits: the entry goes, and the model's policy learns from it.

A semantic hit carries an ``X-Cache-Entry`` token (signed: entry, model, similarity), which a client
sends back to ``POST /v1/cache/wrong-hits``; staff mark an entry from the admin's cache entries.
Either way the entry is evicted, a ``SemanticWrongHit`` row is kept (the costs page counts them),
and the model's learned floor is recomputed.

The floor keeps the reported wrong hits within the model's error budget: of all semantic hits the
model served (the request log), at most ``budget`` may be wrong. When more were reported, the floor
rises just above the similarity of the lowest reported ones until the rest fit: those similarities
are where this model's questions were shown to go wrong. A report from the admin has no similarity;
it counts at the model's threshold in force, the lowest similarity a hit could have had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.core import signing
from django.db import transaction
from django.utils import timezone

from orchestration.caching.exact import cache_purge_entries
from orchestration.caching.policy import NO_HIT_THRESHOLD, policy_for
from orchestration.models import CacheEntry, LanguageModel, RequestLog, SemanticWrongHit

_SALT = "switchyard.semantic-hit"
FLOOR_STEP = 0.001  # the floor sits just above the similarity it excludes


@dataclass(frozen=True, slots=True)
class ServedHit:
    """What an ``X-Cache-Entry`` token says about one semantic hit."""

    entry_key: str
    model: str
    similarity: float


def semantic_hit_token(hit: ServedHit) -> str:
    """The signed token a semantic hit carries in ``X-Cache-Entry``."""
    return signing.dumps({"k": hit.entry_key, "m": hit.model, "s": round(hit.similarity, 4)}, salt=_SALT)


def semantic_hit_from_token(token: str) -> ServedHit | None:
    """The hit a token names, or None when it was not made here (or was altered)."""
    try:
        data = signing.loads(token, salt=_SALT)
        return ServedHit(entry_key=str(data["k"]), model=str(data["m"]), similarity=float(data["s"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


@transaction.atomic
def semantic_hit_report_wrong(
    *, entry_key: str, model: str, similarity: float | None, source: str, question: str = ""
) -> float:
    """Evict the entry, record the report and return the model's new learned floor."""
    cache_purge_entries([(entry_key, model)])
    SemanticWrongHit.objects.create(
        model=model,
        entry_key=entry_key,
        similarity=similarity,
        question_preview=question[:300],
        source=source,
        reported_at=timezone.now(),
    )
    return semantic_floor_relearn(model=model)


@transaction.atomic
def semantic_floor_relearn(*, model: str) -> float:
    """Recompute and store ``model``'s learned floor from its served hits and wrong-hit reports."""
    row = LanguageModel.objects.select_for_update().filter(name=model).first()
    if row is None:  # the model was removed since: nothing left to learn for
        return 0.0
    served = RequestLog.objects.filter(model_requested=model, cache_status="SEMANTIC-HIT").count()
    in_force = policy_for(row.cache_semantic_threshold, row.cache_semantic_error_budget, _embedder_name()).threshold
    wrong = sorted(
        similarity if similarity is not None else in_force
        for similarity in SemanticWrongHit.objects.filter(model=model).values_list("similarity", flat=True)
    )
    floor = learned_floor(wrong, served=max(served, len(wrong)), budget=row.cache_semantic_error_budget)
    if floor != row.cache_semantic_learned_floor:
        row.cache_semantic_learned_floor = floor
        row.save(update_fields=["cache_semantic_learned_floor", "updated_at"])
    return floor


def learned_floor(wrong: list[float], *, served: int, budget: float) -> float:
    """The lowest similarity floor that leaves at most ``budget`` of ``served`` hits among ``wrong`` (sorted)."""
    allowed = math.floor(budget * served)
    excess = len(wrong) - allowed
    if excess <= 0:
        return 0.0
    return min(wrong[excess - 1] + FLOOR_STEP, NO_HIT_THRESHOLD)


def semantic_entries_report_wrong(entries: list[CacheEntry]) -> int:
    """The admin's action: report each semantic entry as a wrong hit; returns how many."""
    reported = 0
    for entry in entries:
        if entry.kind != CacheEntry.Kind.SEMANTIC:
            continue
        semantic_hit_report_wrong(
            entry_key=entry.key, model=entry.model, similarity=None, source="admin", question=entry.question_preview
        )
        reported += 1
    return reported


def _embedder_name() -> str:
    from orchestration.caching.embedders import get_embedder

    return get_embedder().name
