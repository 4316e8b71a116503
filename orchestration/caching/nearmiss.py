"""The near-miss guard of the semantic cache: a lexical check run on every candidate above the threshold.

A sentence embedding scores "What time does the store open on Monday?" against "... on Sunday?"
at 0.95, as high as real paraphrases: the shared frame outweighs the one word that decides the
answer. So a candidate is refused when the two questions differ in what a lexical reading can
see for certain (tests/data/semantic_pairs.jsonl measures the effect):

- ``numbers``: a different multiset of numbers (digits, number words, Roman numerals II..XII);
- ``negation``: one is negated and the other is not ("can I" / "can't I", "safe" / "not safe");
- ``direction``: the same two words on either side of "to"/"into"/"from", swapped
  ("Fahrenheit to Celsius" / "Celsius to Fahrenheit");
- ``substitution``: every content word in the same order except some swapped for others
  ("sort by value" / "sort by key"); a synonym swapped alone costs a hit, which is the cheap error;
- ``specific``: each side has a word of its own that names a specific thing: a capitalised name,
  a word the model's vocabulary does not hold, or a member of a closed class (weekdays, months,
  units, directions, opposites).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache


def _word_list(text: str) -> list[str]:
    return text.split()


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _word_set(
    """a an the is are was were be been being am do does did doing done have has had having i me my mine myself
    we our ours us you your yours he him his she her it its they them their theirs this that these those what
    which who whom whose when where why how there here can could would should will shall may might must to of
    in on at by for with about from into onto over as and or but if so then also just please tell explain
    give show know let want like get got some any all way possible able one th st nd rd s t ll re ve d m o
    long many much really actually exactly currently right now again thing things something anything"""
)
NEGATIONS = _word_set("not no never cannot without none nor neither nothing nobody nowhere impossible unable unsafe")
NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        _word_list(
            "zero _ two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen twenty"
        )
    )
    if word != "_"
} | {
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
    "seventy": "70",
    "eighty": "80",
    "ninety": "90",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
    "dozen": "12",
    "half": "0.5",
}
ROMAN = {"II": "2", "III": "3", "IV": "4", "VI": "6", "VII": "7", "VIII": "8", "IX": "9", "XI": "11", "XII": "12"}
DIRECTED = frozenset({"to", "into", "from"})
# Closed classes whose members answer different questions; swapping one for another is a new question.
CONTRAST_WORDS = _word_set(
    """monday tuesday wednesday thursday friday saturday sunday weekday weekend
    january february march april may june july august september october november december
    second minute hour day week month year decade century morning afternoon evening night today tomorrow
    yesterday daily weekly monthly yearly annual annually
    inch foot feet yard mile meter metre kilometer kilometre centimeter millimeter gram kilogram pound ounce
    ton liter litre gallon celsius fahrenheit kelvin percent dollar euro
    north south east west northern southern eastern western left right up down top bottom front back
    vertical vertically horizontal horizontally inside outside off
    open close closed opening closing start end begin finish first last before after early late
    enable disable on off add remove create delete install uninstall upload download import export
    buy sell increase decrease raise lower min max minimum maximum high low higher lower highest lowest
    big small bigger smaller biggest smallest large largest long short longest shortest hot cold warm
    good bad best worst better worse more less most least fewest many few hard soft easy difficult
    private public input output true false yes no male female adult child children teenager baby
    domestic international local global online offline upgrade downgrade"""
)
_CONTRACTIONS = (
    (re.compile(r"\b(can)'?t\b", re.I), r"\1 not"),
    (re.compile(r"\bwon'?t\b", re.I), "will not"),
    (re.compile(r"n't\b", re.I), " not"),
    (re.compile(r"'(s|re|m|ll|ve|d)\b", re.I), r" \1"),
)
_TOKEN = re.compile(r"[A-Za-z]+|\d+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"[.?!:;]\s+")
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


@dataclass(frozen=True, slots=True)
class Terms:
    """What the guard compares of one question."""

    numbers: tuple[str, ...]
    negated: bool
    content: tuple[str, ...]  # stems of the content words, in order
    specific: frozenset[str]  # stems of the content words that name a specific thing
    relations: frozenset[tuple[str, str]]  # (left, right) around "to" / "into" / "from"


def stem(word: str) -> str:
    """A crude stem: enough that "vaccines"/"vaccine" and "closing"/"closed" compare equal."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
            break
    return word.rstrip("e")[:7] if len(word) > 3 else word


def _words(text: str) -> list[tuple[str, bool]]:
    """Lower-cased tokens, each with whether it was written as a name (capitalised mid-sentence)."""
    text = text.replace("\u2019", "'")
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    text = re.sub(r"(\d),(\d{3})\b", r"\1\2", text).replace("%", " percent ")
    words: list[tuple[str, bool]] = []
    for sentence in _SENTENCE_END.split(text):
        for position, token in enumerate(_TOKEN.findall(sentence)):
            if token in ROMAN:
                words.append((ROMAN[token], False))
                continue
            acronym = len(token) > 1 and token.isupper()
            named = acronym or (position > 0 and token[0].isupper() and token != "I")
            words.append((token if acronym else token.lower(), named))
    return words


def _number(word: str) -> str | None:
    if word[0].isdigit():
        return word
    return NUMBER_WORDS.get(word)


@lru_cache(maxsize=4096)
def question_terms(text: str) -> Terms:
    words = _words(text)
    numbers = tuple(sorted(n for n in (_number(word) for word, _ in words) if n is not None))
    content: list[str] = []
    specific: set[str] = set()
    for word, named in words:
        if word.isupper():  # an acronym: GET / POST, US, SQL
            content.append(word)
            specific.add(word)
            continue
        if word in STOPWORDS or word in NEGATIONS or _number(word) is not None:
            continue
        stemmed = stem(word)
        content.append(stemmed)
        if named or word in CONTRAST_WORDS or not _in_vocabulary(word):
            specific.add(stemmed)
    return Terms(
        numbers=numbers,
        negated=any(word in NEGATIONS for word, _ in words),
        content=tuple(content),
        specific=frozenset(specific),
        relations=_relations([word for word, _ in words]),
    )


def _relations(words: list[str]) -> frozenset[tuple[str, str]]:
    found = set()
    for index, word in enumerate(words):
        if word not in DIRECTED:
            continue
        left = [stem(w) for w in words[:index] if w not in STOPWORDS]
        right = [stem(w) for w in words[index + 1 :] if w not in STOPWORDS]
        if left and right and left[-1] != right[0]:
            found.add((left[-1], right[0]))
    return frozenset(found)


def _aligned_substitution(query: tuple[str, ...], candidate: tuple[str, ...]) -> bool:
    operations = {op for op, *_ in difflib.SequenceMatcher(a=query, b=candidate, autojunk=False).get_opcodes()}
    return "replace" in operations and operations <= {"equal", "replace"}


def near_miss_reason(query: str, candidate: str) -> str | None:
    """Why ``candidate`` must not answer ``query`` although their vectors are close, or None."""
    q, c = question_terms(query), question_terms(candidate)
    if q.numbers != c.numbers:
        return "numbers"
    if q.negated != c.negated:
        return "negation"
    if any((right, left) in c.relations for left, right in q.relations):
        return "direction"
    if _aligned_substitution(q.content, c.content):
        return "substitution"
    only_query, only_candidate = set(q.content) - set(c.content), set(c.content) - set(q.content)
    if only_query & q.specific and only_candidate & c.specific:
        return "specific"
    if (only_query & q.specific and not only_candidate) or (only_candidate & c.specific and not only_query):
        return "qualifier"  # the same question narrowed by a specific word: "center a div" / "... vertically"
    return None


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    from orchestration.caching.embedders import VOCAB_PATH

    with open(VOCAB_PATH, encoding="utf-8") as vocabulary:
        return frozenset(line.rstrip("\n") for line in vocabulary if not line.startswith(("##", "[")))


def _in_vocabulary(word: str) -> bool:
    # A word the model's vocabulary splits into pieces is rare: a product, a library, a name.
    return word in _vocabulary()
