"""Words that ask the same thing, for the near-miss guard (``orchestration.caching.nearmiss``).

A sentence embedding scores "How do I cancel my plan?" against "How do I track my plan?" about as
high as against "How do I end my plan?", and the guard, reading words, cannot tell a synonym from
another action. These tables say which words and phrases are the same question, so that the guard
reads both sides in one vocabulary: synonyms of common actions and attributes, phrases that name
the same action, questions about a measure ("how tall" / "height"), and words made from a verb
("founder" / "founded") and the past forms of irregular verbs ("wrote" / "write"). They are written
from general English usage, not from the labelled pairs: tests/data/semantic_eval.jsonl measures
what they gain and what they cost.

A pair left out costs a cache hit (the cheap error); a pair of non-synonyms put in can serve a
wrong answer, so every group holds only words that are interchangeable in a how-to question.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

# Each line is one group; the first word names it. Words are compared after the guard's stemming.
SYNONYM_GROUPS = """
cancel end terminate stop quit halt abort discontinue kill resign
remove delete erase wipe eliminate clear
buy purchase
fix repair mend
get obtain acquire receive
change modify alter amend adjust convert switch
choose pick select
hide conceal
start begin commence launch open
contact reach
make create build construct assemble
find locate
show display
restore recover
merge combine
improve boost enhance increase raise
reduce lower decrease lessen
book reserve
need require
allow permit
use utilize utilise
try attempt
answer reply respond
ask inquire enquire
recommend suggest
understand comprehend
calculate compute
clean wash
restart reboot
relocate move
send ship
own owner
write author
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
often frequently
annual annually yearly
produce generate
""".strip()

# Synonyms from WordNet, beyond the groups above: each line a synset and the guard's stems of the words for
# which it is one of their most frequent senses, or two words one derived from the other ("die" / "death");
# tests/bench/wordnet_synonyms.py writes it and says which.
WORDNET_PATH = Path(__file__).resolve().parent / "data" / "wordnet_synonyms.txt"


def wordnet_synsets() -> Iterator[list[str]]:
    """The stems of each synset of ``WORDNET_PATH``."""
    with open(WORDNET_PATH, encoding="utf-8") as lines:
        for line in lines:
            if not line.startswith("#"):  # WordNet's notice
                yield line.split()[1:]


# Phrases that name one word of a group above, rewritten before the words are read.
PHRASES = (
    (r"\bget in touch with\b", "contact"),
    (r"\blook(?:ing)? for\b|\btrack down\b", "find"),
    (r"\bput together\b", "assemble"),
    (r"\b(?:come|came|coming) up with\b", "invent"),
    (r"^\s*good (?:morning|afternoon|evening)\b\s*[!,.]*", ""),
    (r"\bdiff between\b", "difference between"),
    (r"\bcut (?:down|back) on\b", "reduce"),
    (r"\bbring down\b", "lower"),
    (r"\bpass(?:ed)? away\b", "die"),
    (r"\b(?:in )?what year\b", "when"),
    (r"\bset up\b", "start"),
    (r"\b(?:switch|turn|power|shut) (?:off|down)\b", "stop"),
    (r"\b(?:send|give|hand) back\b", "return"),
    # "costs more to run than" is "is more expensive to run than", so a comparison turned around to
    # "cheaper" reads on one scale.
    (r"\b(?:costs?|costing) more\b", "is more expensive"),
    (r"\b(?:costs?|costing) less\b", "is cheaper"),
    (r"\b(?:take|get) out\b(?= (?:a|an|the|my|your|his|her|their|its|this|that)\b)", "remove"),
    (r"\bget ((?:[\w']+ ){1,3})off\b", r"remove \1from"),
    # How often, said five ways: "every year", "each year", "per year", "twice a year", "yearly" ("every
    # other year", "in a year", "a year ago" stay).
    (r"\b(?:every|each|per) (day|week|month|year)\b", r"\1ly"),
    (
        r"(?<!\bin )(?<!\bfor )(?<!\bwithin )(?<!\bafter )(?<!\bthan )(?<!\bover )(?<!\bjust )"
        r"\ba (day|week|month|year)\b(?! ago| later| earlier| from| old| or| and| before| after)",
        r"\1ly",
    ),
    (r"\bdayly\b", "daily"),
    (r"\b(?:a|one) fortnight\b|\bfortnight\b", "two weeks"),
    # "won't stop running" is "keeps running" (short forms are written out before these phrases).
    (
        r"\b(?:will|would|does|do|did|can|could) not ((?:[\w']+ ){0,3}?)stop (\w+ing)\b|\bnever stops (\w+ing)\b",
        r"\1keeps \2\3",
    ),
    (r"\bopt out of\b", "unsubscribe from"),
    (r"\bthrow away\b", "discard"),
    (r"\bget rid of\b", "remove"),
    (r"\bmoney back\b", "refund"),
    # "How old do you have to be to X?" and "At what age can you X?" ask the least age that allows X:
    # "the minimum age to X" ("At what age do babies walk?" asks no such thing). Unlike the rest, written
    # after this kind of pair was seen missed in tests/data/semantic_eval.jsonl (docs/benchmarks.md).
    (r"\bat what age (?=can\b|may\b|could\b)", "minimum age "),
    (r"\bhow old (?:do|does|must|would) (?:[\w']+ ){1,3}?(?:have|need|got) to be\b", "minimum age"),
    (r"\bhow tall (?:do|does|must|would) (?:[\w']+ ){1,3}?(?:have|need|got) to be\b", "minimum height"),
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

# Suffixes that make a noun of a verb ("founder", "discovery", "payment"), stripped before the guard's
# stem is cut short, so that "composer" and "composed" meet.
DERIVED_SUFFIXES = ("ers", "er", "ors", "or", "ery", "ments", "ment", "ions", "ion")

# Past forms of common irregular verbs -> the verb, so that "Who wrote X?" reads as "write" and so
# as "writer"/"author". Left out where the form is also another word the guard must keep apart:
# "found" (to found a company), "left" (a direction), "saw" (a tool), "bit" (a degree: "a bit").
_IRREGULAR_FORMS = (
    ("write", "wrote written"),
    ("build", "built"),
    ("buy", "bought"),
    ("sell", "sold"),
    ("sing", "sang sung"),
    ("run", "ran"),
    ("win", "won"),
    ("lose", "lost"),
    ("begin", "began begun"),
    ("break", "broke broken"),
    ("bring", "brought"),
    ("catch", "caught"),
    ("choose", "chose chosen"),
    ("drive", "drove driven"),
    ("eat", "ate eaten"),
    ("fall", "fell fallen"),
    ("feel", "felt"),
    ("fly", "flew flown"),
    ("forget", "forgot forgotten"),
    ("give", "gave given"),
    ("go", "went gone"),
    ("grow", "grew grown"),
    ("hold", "held"),
    ("keep", "kept"),
    ("know", "knew known"),
    ("lead", "led"),
    ("make", "made"),
    ("mean", "meant"),
    ("meet", "met"),
    ("pay", "paid"),
    ("say", "said"),
    ("see", "seen"),
    ("send", "sent"),
    ("spend", "spent"),
    ("stand", "stood"),
    ("steal", "stole stolen"),
    ("swim", "swam swum"),
    ("teach", "taught"),
    ("think", "thought"),
    ("take", "took taken"),
    ("wear", "wore worn"),
    ("draw", "drew drawn"),
    ("drink", "drank drunk"),
    ("freeze", "froze frozen"),
    ("hide", "hid hidden"),
    ("ride", "rode ridden"),
    ("rise", "rose risen"),
    ("speak", "spoke spoken"),
    ("throw", "threw thrown"),
    ("understand", "understood"),
    ("sleep", "slept"),
    ("shoot", "shot"),
    ("fight", "fought"),
    ("seek", "sought"),
)
IRREGULAR_VERBS = {form: verb for verb, forms in _IRREGULAR_FORMS for form in forms.split()}
# The last form given is the past participle ("written"), or the one form for both ("built").
PAST_PARTICIPLES = frozenset(forms.split()[-1] for _, forms in _IRREGULAR_FORMS)


def rewrite_phrases(text: str) -> str:
    """``text`` with each multi-word phrase above replaced by its one word."""
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text


def root(word: str) -> str:
    """The verb a noun is made from ("founder" -> "found", "invention" -> "invent"), or the word itself."""
    # Twice: "discoverer" -> "discover" -> "discov", where "discovered" ends.
    return _underived(_underived(word))


def _underived(word: str) -> str:
    for suffix in DERIVED_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word
