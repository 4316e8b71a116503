"""Issue 20's experiment: a learned second stage that vetoes a candidate the near-miss guard lets through.

GPTCache scores an embedding search's candidate pair again with a second model; this tries the
cheapest such model that needs nothing new: a logistic regression (numpy, no PyTorch, nothing
downloaded) over pair features built from what the cache already computes:

- ``sentence``: the cosine of the two sentence vectors, and |u - v| and u * v (384 each);
- ``tokens``: how well each word piece of one question aligns with the other's (the ONNX model's
  token states, which the local embedder pools into the sentence vector): the worst and mean
  alignment each way and the share of pieces aligned below 0.6 / 0.8, and the similarity of the
  two worst-aligned pieces (a swapped word: "can" / "bottle");
- ``guard``: what the guard reads (``orchestration.caching.nearmiss``): content words on each
  side only, specific ones among them, the count of each side's content words, numbers,
  negations, whether it reads them as the same words.

It trains ONLY on the development parts of tests/data/semantic_eval.jsonl (``tune``, ``fresh2``,
``fresh3``, ``fresh4``). The feature set and the L2 strength are chosen by leaving one development
part out in turn; the veto threshold is the one at which the out-of-part predictions veto at most
3 points of the development paraphrases the cache serves. Then one model is trained on all four
parts and every part is scored once, before (the guard alone) and after (guard + veto).

Run: ``python -m tests.bench.semantic_verifier`` (the choice and the development parts, about 90 s on
one core); ``--score`` adds the never-tuned parts, the near misses the guard serves there with the
model's probability, and what other veto thresholds would have given. The result, and why the veto
is not wired into the cache, is in docs/benchmarks.md ("A learned veto after the guard").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from tests.bench.semantic_quality import SPLITS, default_policy, load_pairs, pair_vectors, served

DEV_SPLITS = ("tune", "fresh2", "fresh3", "fresh4")
NEVER_TUNED = ("held_out", "fresh", "fresh5", "fresh6")
MAX_PARAPHRASE_LOSS = 0.03


@cache
def _model() -> tuple[Any, Any]:
    """The local embedder's tokenizer and ONNX session, loaded once."""
    from orchestration.caching.embedders import LocalEmbedder

    embedder = LocalEmbedder()
    embedder._load()
    return embedder._tokenizer, embedder._session


def token_states(texts: list[str]) -> list[np.ndarray]:
    """Each text's L2-normalised token states (word pieces only: no [CLS], [SEP] or punctuation)."""
    tokenizer, session = _model()
    found: list[np.ndarray] = []
    for start in range(0, len(texts), 64):
        encodings = tokenizer.encode_batch(texts[start : start + 64])
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        for row, encoding in enumerate(encodings):
            keep = [
                position
                for position, (token, attended) in enumerate(zip(encoding.tokens, encoding.attention_mask, strict=True))
                if attended and token not in ("[CLS]", "[SEP]", "[PAD]") and any(ch.isalnum() for ch in token)
            ]
            states = hidden[row, keep] if keep else hidden[row, :1]
            found.append(states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12))
    return found


def token_features(a: np.ndarray, b: np.ndarray) -> list[float]:
    similarity = a @ b.T
    align_a, align_b = similarity.max(axis=1), similarity.max(axis=0)
    worst_a, worst_b = int(align_a.argmin()), int(align_b.argmin())
    return [
        float(align_a.min()),
        float(align_b.min()),
        float(align_a.mean()),
        float(align_b.mean()),
        float((align_a < 0.6).mean()),
        float((align_b < 0.6).mean()),
        float((align_a < 0.8).mean()),
        float((align_b < 0.8).mean()),
        float(similarity[worst_a, worst_b]),
        float(min(align_a.min(), align_b.min())),
        float(np.sort(align_a)[1]) if len(align_a) > 1 else 1.0,
        float(np.sort(align_b)[1]) if len(align_b) > 1 else 1.0,
        float((align_a < 0.5).sum() + (align_b < 0.5).sum()),
    ]


def guard_features(query: str, candidate: str) -> list[float]:
    from orchestration.caching.nearmiss import _aligned, _duration_unit_dropped, equivalent, question_terms

    q, c = _duration_unit_dropped(*_aligned(question_terms(query), question_terms(candidate)))
    only_q, only_c = set(q.content) - set(c.content), set(c.content) - set(q.content)
    union = set(q.content) | set(c.content)
    return [
        len(only_q),
        len(only_c),
        len(only_q & q.specific),
        len(only_c & c.specific),
        len(q.content),
        len(c.content),
        len(set(q.content) & set(c.content)) / max(len(union), 1),
        float(equivalent(query, candidate)),
        float(bool(q.numbers or c.numbers)),
        float(q.negations + c.negations),
        float(len(q.owners) + len(c.owners)),
        float(bool(q.quantifiers or c.quantifiers)),
    ]


@dataclass
class Features:
    sentence: np.ndarray  # cosine
    vectors: np.ndarray  # |u - v|, u * v
    tokens: np.ndarray
    guard: np.ndarray

    def matrix(self, kinds: tuple[str, ...]) -> np.ndarray:
        return np.hstack([getattr(self, kind) for kind in kinds])


def features(pairs: list[dict[str, Any]], vectors: list[tuple[np.ndarray, np.ndarray]]) -> Features:
    states = token_states([pair["b"] for pair in pairs] + [pair["a"] for pair in pairs])
    asked, cached = states[: len(pairs)], states[len(pairs) :]
    u = np.array([v[1] for v in vectors])
    v = np.array([v[0] for v in vectors])
    return Features(
        sentence=(u * v).sum(axis=1, keepdims=True),
        vectors=np.hstack([np.abs(u - v), u * v]),
        tokens=np.array([token_features(a, b) for a, b in zip(asked, cached, strict=True)]),
        guard=np.array([guard_features(pair["b"], pair["a"]) for pair in pairs]),
    )


@dataclass
class Model:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        """The probability that each pair is a near miss."""
        z = ((x - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))


def train(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 25) -> Model:
    """L2-regularised logistic regression by Newton's method; classes weighted to equal mass."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    sample = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1)) * len(y)
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        gradient = z.T @ (sample * (p - y)) + penalty * w
        hessian = (z * (sample * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        w -= np.linalg.solve(hessian, gradient)
    return Model(mean, scale, w[:-1], float(w[-1]))


def veto_threshold(probability: np.ndarray, is_paraphrase_served: np.ndarray) -> float:
    """The lowest veto threshold that vetoes at most MAX_PARAPHRASE_LOSS of the served paraphrases."""
    scores = np.sort(probability[is_paraphrase_served])[::-1]
    allowed = int(np.floor(MAX_PARAPHRASE_LOSS * len(scores)))
    # Veto when probability > threshold: the (allowed + 1)-th highest score is not vetoed.
    return float(scores[allowed]) if allowed < len(scores) else 0.0


FEATURE_SETS = {
    "cosine+guard": ("sentence", "guard"),
    "cosine+tokens": ("sentence", "tokens"),
    "cosine+tokens+guard": ("sentence", "tokens", "guard"),
    "all (with |u-v|, u*v)": ("sentence", "tokens", "guard", "vectors"),
}
L2_GRID = (0.01, 0.1, 1.0, 10.0)


def leave_one_part_out(x: np.ndarray, y: np.ndarray, splits: np.ndarray, usable: np.ndarray, l2: float) -> np.ndarray:
    """Out-of-part probabilities for every development pair."""
    out = np.full(len(y), np.nan)
    for part in DEV_SPLITS:
        train_rows = usable & (splits != part) & np.isin(splits, DEV_SPLITS)
        test_rows = splits == part
        out[test_rows] = train(x[train_rows], y[train_rows], l2).probability(x[test_rows])
    return out


def main() -> None:
    from tests.bench.environment import bench_environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--score", action="store_true", help="also score the never-tuned parts (once, when the choice is made)"
    )
    arguments = parser.parse_args()
    bench_environment()
    pairs = load_pairs()
    vectors = pair_vectors(pairs)
    policy = default_policy()
    guard = np.array([served(pair, vectors[i], policy) for i, pair in enumerate(pairs)])
    found = features(pairs, vectors)
    y = np.array([pair["label"] == "near_miss" for pair in pairs], dtype=float)
    splits = np.array([pair["split"] for pair in pairs])
    same_scope = np.array([pair["context_a"] == pair["context_b"] for pair in pairs])
    dev = np.isin(splits, DEV_SPLITS)
    usable = dev & same_scope  # another scope never reaches the cache's decision
    served_paraphrase = guard & (y == 0)

    print(f"policy {policy}; development pairs {int(usable.sum())} ({int(y[usable].sum())} near misses)")
    print("choice by leaving one development part out (out-of-part predictions on all four):")
    print(f"{'features':<24} {'l2':>6} {'AUC all':>8} {'veto t':>7} {'NM vetoed (all)':>16} {'NM>=thr vetoed':>15}")
    best: tuple[float, str, float, float] | None = None
    above = usable & (found.sentence[:, 0] >= policy.lowest)
    for name, kinds in FEATURE_SETS.items():
        x = found.matrix(kinds)
        for l2 in L2_GRID:
            oof = leave_one_part_out(x, y, splits, usable, l2)
            threshold = veto_threshold(oof[dev], served_paraphrase[dev])
            vetoed = oof > threshold
            near = usable & (y == 1)
            near_above = above & (y == 1)
            auc = _auc(oof[usable], y[usable])
            caught = vetoed[near_above].mean()
            print(
                f"{name:<24} {l2:>6} {auc:>8.3f} {threshold:>7.3f} "
                f"{vetoed[near].sum():>5}/{near.sum():<4} {vetoed[near].mean():>5.0%} "
                f"{vetoed[near_above].sum():>4}/{near_above.sum():<4} {caught:>5.0%}"
            )
            if best is None or caught > best[0]:
                best = (caught, name, l2, threshold)
    assert best is not None
    _, name, l2, threshold = best
    x = found.matrix(FEATURE_SETS[name])
    model = train(x[usable], y[usable], l2)
    vetoed = model.probability(x) > threshold
    after = guard & ~vetoed
    print(f"\nchosen: {name}, l2 {l2}, veto when p(near miss) > {threshold:.3f}; trained on {int(usable.sum())} pairs")
    print(f"{'split':<9} {'paraphrase hits before':>23} {'after':>13} {'wrong hits before':>18} {'after':>11}")
    for split in SPLITS if arguments.score else DEV_SPLITS:
        rows = splits == split
        para, near = rows & (y == 0), rows & (y == 1)
        print(
            f"{split:<9} {guard[para].sum():>10}/{para.sum():<4} {guard[para].mean():>6.1%} "
            f"{after[para].sum():>4}/{para.sum():<4} {after[para].mean():>4.0%} "
            f"{guard[near].sum():>9}/{near.sum():<4} {guard[near].mean():>4.1%} "
            f"{after[near].sum():>3}/{near.sum():<4} {after[near].mean():>4.1%}"
        )
    if not arguments.score:
        return
    probability = model.probability(x)
    blind = np.isin(splits, NEVER_TUNED)
    print("\nnear misses the guard serves on the never-tuned parts, with the model's p(near miss):")
    for i in np.flatnonzero(guard & (y == 1) & blind):
        print(f"  {splits[i]:<8} {probability[i]:.3f}  {pairs[i]['category']:<9} {pairs[i]['a']} / {pairs[i]['b']}")
    print("what other veto thresholds would have given (an analysis after the choice, not a choice):")
    wrong, kept = guard & (y == 1) & blind, guard & (y == 0)
    for other in (0.3, 0.5, 0.6, 0.7, threshold):
        left = int((wrong & (probability <= other)).sum())
        print(
            f"  veto > {other:.3f}: never-tuned wrong hits {left}/{int(wrong.sum())}, "
            f"served paraphrases kept: never-tuned {(probability[kept & blind] <= other).mean():.1%}, "
            f"development {(probability[kept & dev] <= other).mean():.1%}"
        )
    print("\nfresh6 per category (served before -> after / pairs):")
    rows = splits == "fresh6"
    for category in sorted({pair["category"] for pair in pairs if pair["split"] == "fresh6"}):
        picked = rows & np.array([pair["category"] == category for pair in pairs])
        label = pairs[int(np.flatnonzero(picked)[0])]["label"]
        print(f"  {label:<10} {category:<17} {guard[picked].sum():>3} -> {after[picked].sum():>3} / {picked.sum()}")


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


if __name__ == "__main__":
    main()
