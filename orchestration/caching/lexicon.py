"""Words that ask the same thing, for the near-miss guard (``orchestration.caching.nearmiss``).

A sentence embedding scores "How do I cancel my plan?" against "How do I track my plan?" about as
high as against "How do I end my plan?", and the guard, reading words, cannot tell a synonym from
another action. These tables say which words and phrases are the same question, so that the guard
reads both sides in one vocabulary: synonyms of common actions and attributes, phrases that name
the same action, questions about a measure ("how tall" / "height"), and words made from a verb
("founder" / "founded"). They are written from general English usage, not from the labelled
pairs: tests/data/semantic_eval.jsonl measures what they gain and what they cost.

A pair left out costs a cache hit (the cheap error); a pair of non-synonyms put in can serve a
wrong answer, so every group holds only words that are interchangeable in a how-to question.
"""

from __future__ import annotations

import re

# Each line is one group; the first word names it. Words are compared after the guard's stemming.
SYNONYM_GROUPS = """
cancel end terminate stop quit halt abort discontinue
remove delete erase wipe
buy purchase
fix repair mend
get obtain acquire receive
change modify alter amend adjust
choose pick select
hide conceal
start begin commence launch
contact reach
make create build construct
find locate
show display
restore recover
merge combine
improve boost enhance increase
reduce lower decrease lessen
big large huge
small little tiny
fast quick rapid speedy
price cost
shut close
enlarge upscale
inspect examine evaluate assess check
suspend pause
grow cultivate
cool chill
revoke invalidate
car automobile vehicle
kid child
movie film
picture photo photograph image
weight weigh
salary wage earn earnings income
colleague coworker
speak talk
learn study
home house
""".strip()

# Phrases that name one word of a group above, rewritten before the words are read.
PHRASES = (
    (r"\bget in touch with\b", "contact"),
    (r"\bset up\b", "start"),
    (r"\b(?:switch|turn|power|shut) (?:off|down)\b", "stop"),
    (r"\bsend back\b", "return"),
    (r"\bopt out of\b", "unsubscribe from"),
    (r"\bthrow away\b", "discard"),
    (r"\bget rid of\b", "remove"),
    (r"\bmoney back\b", "refund"),
    (r"\bhow tall\b|\bhow high\b", "height"),
    (r"\bhow old\b", "age"),
    (r"\bhow deep\b", "depth"),
    (r"\bhow far(?: away)?\b", "distance"),
    (r"\bhow fast\b|\btop speed\b", "speed"),
    (r"\bhow heavy\b", "weight"),
    (r"\bhow (?:hot|cold|warm)\b", "temperature"),
    (r"\bhow (?:big|large)\b", "size"),
    (r"\bhow long is\b", "length"),
    (r"\bhow many people live in\b", "population"),
    (r"\bhow long do (?:\w+ )?(?:usually |typically )?live\b", "lifespan"),
)
_PHRASES = tuple((re.compile(pattern, re.I), replacement) for pattern, replacement in PHRASES)

# Suffixes that make a noun of a verb ("founder", "payment"), stripped after the guard's stemming.
DERIVED_SUFFIXES = ("ers", "er", "ors", "or", "ment", "ion")


def rewrite_phrases(text: str) -> str:
    """``text`` with each multi-word phrase above replaced by its one word."""
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text


def root(stemmed: str) -> str:
    """The verb a stemmed noun is made from ("founder" -> "found"), or the stem itself."""
    for suffix in DERIVED_SUFFIXES:
        if stemmed.endswith(suffix) and len(stemmed) - len(suffix) >= 4:
            return stemmed[: -len(suffix)]
    return stemmed
