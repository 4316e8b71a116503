"""The near-miss guard of the semantic cache: a lexical check run on every candidate above the threshold.

A sentence embedding scores "What time does the store open on Monday?" against "... on Sunday?"
at 0.95, as high as real paraphrases: the shared frame outweighs the one word that decides the
answer. So a candidate is refused when the two questions differ in what a lexical reading can
see for certain (tests/data/semantic_pairs.jsonl measures the effect):

- ``numbers``: a different multiset of numbers (digits, number words, Roman numerals II..XII);
- ``numbers`` also compares clock times, read on a 24-hour clock: "6 am", "6:00" and "six in the
  morning" are one time, "6 pm" and "18:00" another, "noon" is "12 pm";
- ``numbers`` reads a number spelled in several words as one ("twenty-four" is 24, "five hundred"
  500, "ten thousand" 10000), "the second" before a noun as 2 ("the 2nd"), a decade as a decade
  ("thirties" / "30s"; "the seventies" / "the 1970s", while "1860s" / "1960s" differ) and a unit
  abbreviation after a number as its unit ("5 km" / "five kilometres");
- ``negation``: the two hold a different count of negations ("can I" / "can't I", "safe" / "not
  safe"); a double negation is not read as none ("survive without" / "can't survive without");
  "stop X from V-ing", "prevent X V-ing" and "keep X from V-ing" are read as "X not V-ing"
  ("What stops a dishwasher from draining?" / "Why is my dishwasher not draining?");
- ``direction``: the same two words on either side of "to"/"into"/"from", swapped
  ("Fahrenheit to Celsius" / "Celsius to Fahrenheit"), also when a word both ends share is left out
  of one end ("from this year to next" / "from next year to this year"), with the target read after
  the source ("the way to send it from A to B") and the words both targets end with left out;
- ``role_swap``: the same words, but two participants exchange places around a relation, a verb
  or a small word, "that" included, also once the words of one side only are left out ("Can a class
  inherit from a dataclass?" / "Can a dataclass inherit from a plain class?"), ("Is Mars bigger than
  Venus?" / "Is Venus bigger than Mars?", "my wife's boss" /
  "my boss's wife", "Is Jupiter's moon bigger than Earth's moon?" swapped), or a leading wh-word is
  the verb's object in one and its subject in the other ("Who did Ali beat?" / "Who beat Ali?");
  but the participants exchanged around the other end of the same scale are the same question
  ("Is X healthier than Y?" / "Is Y less healthy than X?", "before Y" / "Y ... after"); passive for
  active, a fronted phrase, "X and Y" / "Y and X" and "X vs Y" / "Y vs X" are not swaps;
  over the same words, a pronoun that is the subject in one and the object in the other is one
  ("my landlord owes me" / "I owe my landlord"), unless it is the asker of the request ("tell me"),
  and so is a thing owned by another owner on each side ("my messages" / "my employer's
  messages", "my parents take my car" / "my parents' car", "my wife's will" / "my will"); "give",
  "tell", "show", "get" and "want" stay in the frame as relations ("Can a dog give a human fleas?"
  swapped); whatever else differs, a thing owned on both sides by an owner that does something else
  in the other question is one too ("Can my grandparents pay into my kids' fund?" / "Can I pay into
  my grandparents' fund?"), and so, over the same words, is a yes/no question opened by a modal or
  "do" whose subject is the asker in one and someone else in the other ("Can my kids' school see my
  records?" / "Can I see my kids' school records?");
- ``quantity``: other quantifiers ("one row" / "all rows", "every other row" / "every row") or
  another grade of a degree word ("charge it halfway" / "fully", "slightly" / "very", "partly" /
  "completely", "a little" / "a lot"); "partly" / "partially" are one grade, and "completely" or
  "some" on one side only is no difference;
- ``scope``: one side asks about everywhere or everything ("worldwide", "overall") where the other
  names a part of its own ("Asian countries", "downtown Chicago");
- ``substitution``: every content word in the same order except some swapped for others
  ("sort by value" / "sort by key"); a synonym swapped alone costs a hit, which is the cheap error;
- ``specific``: each side has a word of its own that names a specific thing: a capitalised name,
  a word the model's vocabulary does not hold, or a member of a closed class (weekdays, months,
  units, directions, opposites); a container or portion before "of" ("a can of", "a handful of")
  is read as such a unit, "can" included; ``qualifier``: such a word on one side only, but for
  "good", "best" and "great", which a request for advice implies ("Suggest names for a bakery" /
  "What are some good names for a bakery?");
- ``action``: two how-to questions about one thing, each with a verb of its own, one of them of a
  closed class ("How do I freeze my credit?" / "How do I dispute my credit report?").

Before comparing, a question typed in capitals throughout is read in small letters, a dotted acronym
("U.S.") as the acronym, an acronym as the initials of its long form, a word written from two
("homeowners association" for "HOA") giving two, short forms
typed without the apostrophe ("dont", "whos") as with it, "the best way to" / "a good way to" as
"the way to" (what "How do I" asks), and a leading request verb is read as the question it opens ("Summarize the plot of
X" / "What is the plot of X?", "Compare X and Y" / "the differences between X and Y"), and the
unit of "how many weeks" is left out when the other side asks "how long" (one duration asked two
ways; "how many days" / "how many weeks" still differ).
Both sides are read in one vocabulary (``orchestration.caching.lexicon``):
synonyms, the past forms of irregular verbs ("wrote" / "write"), and nouns made from verbs
("composer" / "composed", "discoverer" / "discovered"; "employee" stays apart from "employer").
Beyond its synonym groups, a word of one side missing from the other is read as a word of the
other side with which it shares a WordNet synset among the first two senses of each, as a noun or a
verb ("sofa" / "couch", "architect" / "designer"; ``lexicon.WORDNET_PATH``), or that WordNet derives
from it in the first sense of each ("die" / "death", "acquire" / "acquisition"), but for the closed
classes above and for the two verbs two how-to questions ask about ("print" / "publish").
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from orchestration.caching.lexicon import (
    IRREGULAR_VERBS,
    PAST_PARTICIPLES,
    SYNONYM_GROUPS,
    rewrite_phrases,
    root,
    wordnet_synsets,
)


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
# Greetings, politeness and casual spellings: they change the register of a question, not what it asks.
FILLERS = _word_set(
    """hi hey hello hiya yo dear ok okay so um uh well oh lol thanks thank thx pls plz kindly sorry excuse pardon
    quick quickly asap wondering curious curiously appreciate grateful assistant someone anyone question q
    whats wat u ur wanna gonna hmm ugh help trouble bother mind possibly perhaps simple simply terms
    omg dude sooo soo btw tbh"""
)
NEGATIONS = _word_set(
    "not no never cannot without none nor neither nothing nobody nowhere impossible unable unsafe avoid illegal"
)
NUMBER_WORDS = (
    {
        word: str(value)
        for value, word in enumerate(
            _word_list(
                "zero _ two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
                "seventeen eighteen nineteen twenty"
            )
        )
        if word != "_"
    }
    | {
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
    | {
        word: str(value)
        for value, word in enumerate(
            _word_list(
                "_ first _ third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
                "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
            )
        )
        if word != "_"
    }
    | {
        "thirtieth": "30",
        "fortieth": "40",
        "fiftieth": "50",
        "sixtieth": "60",
        "seventieth": "70",
        "eightieth": "80",
        "ninetieth": "90",
        "hundredth": "100",
    }
)
# Number words that multiply what comes before them: "five hundred" is 500, "ten thousand" 10000.
MULTIPLIERS = {"hundred": 100, "thousand": 1000, "million": 1000000, "billion": 1000000000, "dozen": 12}
# Decades written as words: "in my thirties" is "in my 30s", "the seventies" "the 70s".
DECADE_WORDS = {
    word: f"{value}s"
    for value, word in zip(
        range(20, 100, 10),
        _word_list("twenties thirties forties fifties sixties seventies eighties nineties"),
        strict=True,
    )
}
# Unit abbreviations read as the unit when a number comes right before: "5 km" is "five kilometres".
UNIT_ABBREVIATIONS = {
    "km": "kilometre",
    "kms": "kilometres",
    "kg": "kilogram",
    "kgs": "kilograms",
    "cm": "centimeter",
    "mm": "millimeter",
    "ml": "milliliter",
    "mi": "mile",
    "lb": "pound",
    "lbs": "pounds",
    "oz": "ounce",
    "ft": "foot",
    "hr": "hour",
    "hrs": "hours",
    "min": "minute",
    "mins": "minutes",
    "sec": "second",
    "secs": "seconds",
    "mph": "miles per hour",
    "kph": "kilometres per hour",
    "tbsp": "tablespoon",
    "tbsps": "tablespoons",
    "tsp": "teaspoon",
    "tsps": "teaspoons",
}
# ... and these read as their unit anywhere: none is a common word or name ("how many ml in a tbsp").
UNAMBIGUOUS_UNITS = _word_set("km kms kg kgs ml cm lbs oz mph kph tbsp tbsps tsp tsps")
_ORDINAL_WORDS = _word_set(
    """third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth fifteenth
    sixteenth seventeenth eighteenth nineteenth twentieth thirtieth fortieth fiftieth sixtieth seventieth
    eightieth ninetieth hundredth"""
)
ROMAN = {"II": "2", "III": "3", "IV": "4", "VI": "6", "VII": "7", "VIII": "8", "IX": "9", "XI": "11", "XII": "12"}
DIRECTED = frozenset({"to", "into", "from"})
# Small words that tie two participants of a question to their roles: "Mars is bigger *than* Venus",
# "my wife*'s* boss", "a charger *for* a Samsung". The role-swap rule keeps them in the frame it compares.
RELATION_WORDS = _word_set("than s for to from into onto of by on at about against with over under in that")
# Verbs the guard reads as stopwords that still relate two participants: "Can a dog give a human
# fleas?" / "Can a human give a dog fleas?". Kept in the frame, by the verb they are a form of.
RELATION_VERBS = {
    **dict.fromkeys(_word_list("give gives gave given giving"), "~give"),
    **dict.fromkeys(_word_list("tell tells told telling"), "~tell"),
    **dict.fromkeys(_word_list("show shows showed shown showing"), "~show"),
    **dict.fromkeys(_word_list("get gets got getting"), "~get"),
    **dict.fromkeys(_word_list("want wants wanted wanting"), "~want"),
}
# Words that join two participants without giving either a role: "Python vs Java" asks what
# "Java vs Python" asks, as "salt and pepper" does "pepper and salt" and "7 times 9" does "9 times 7".
# Left out of the frame, like "and" and "or", so the two stand side by side with no relation between them.
SYMMETRIC_WORDS = _word_set("vs versus v plus times")
# Words that say how many things a question is about: "delete one row" / "delete all rows".
QUANTIFIERS = _word_set("all every entire whole many several multiple both single everyone everything")
# Words that widen a question to everywhere or everything: "the crime rate in Chicago overall" is
# not "in downtown Chicago", nor "countries worldwide" "Asian countries".
SCOPE_WORDS = _word_set("worldwide overall globally nationwide nationally internationally everywhere altogether")
# Words that say to what degree or extent, each with its grade: "charge it halfway" / "fully", "a
# slightly high" / "a very high heart rate" ask different questions. Words of one grade are
# interchangeable ("partly" / "partially"), so the grades are compared, not the words, and the words
# are left out of the content the other rules compare. "some" and "fully"-words add nothing to an
# unmarked question ("remove X" / "completely remove X"); any other grade on one side only does.
DEGREES = {
    **dict.fromkeys(_word_list("half halfway midway"), "half"),
    **dict.fromkeys(_word_list("partly partially partial"), "part"),
    **dict.fromkeys(_word_list("mostly largely mainly"), "most"),
    **dict.fromkeys(_word_list("fully completely entirely totally wholly"), "full"),
    **dict.fromkeys(_word_list("slightly mildly somewhat lightly"), "slight"),
    **dict.fromkeys(_word_list("very extremely highly heavily severely badly seriously lots"), "very"),
    **dict.fromkeys(_word_list("barely hardly scarcely"), "barely"),
    **dict.fromkeys(_word_list("almost nearly"), "almost"),
    "some": "some",
}
# Degrees written as "a" and a noun: "a little", "a bit", "a lot".
DEGREE_AFTER_A = {"little": "slight", "bit": "slight", "lot": "very"}
UNMARKED_DEGREES = frozenset({"some", "full"})
# Containers and portions: "a can of Coke" / "a bottle of Coke" / "a crate of Coke" hold other amounts.
# Before "of", each is read as a unit (a content word that names a specific thing), "can" included.
CONTAINERS = _word_set(
    """can cans tin tins bottle bottles jar jars crate crates case cases carton cartons box boxes pack packs
    packet packets bag bags handful handfuls cup cups glass glasses mug mugs pot pots pint pints slice slices
    bar bars tub tubs bowl bowls spoonful spoonfuls tablespoon tablespoons teaspoon teaspoons scoop scoops
    sachet sachets pinch bunch loaf loaves portion portions serving servings shot shots punnet keg barrel
    barrels tray trays roll rolls sheet sheets stick sticks clove cloves"""
)
# Closed classes whose members answer different questions; swapping one for another is a new question.
CONTRAST_WORDS = _word_set(
    """monday tuesday wednesday thursday friday saturday sunday weekday weekend
    january february march april may june july august september october november december
    second minute hour day week month year decade century morning afternoon evening night today tomorrow
    yesterday daily weekly monthly yearly annual annually
    inch foot feet yard mile meter metre kilometer kilometre centimeter millimeter gram kilogram pound ounce
    ton liter litre gallon celsius fahrenheit kelvin percent dollar euro
    pint quart cup tablespoon teaspoon stone milliliter millilitre byte kilobyte megabyte gigabyte terabyte
    north south east west northern southern eastern western left right up down top bottom front back
    vertical vertically horizontal horizontally inside outside off
    open close closed opening closing start end begin finish first last before after early late
    enable disable on off add remove create delete install uninstall upload download import export
    buy sell increase decrease raise lower min max minimum maximum high low higher lower highest lowest
    big small bigger smaller biggest smallest large largest long short longest shortest hot cold warm
    good bad best worst better worse more less most least fewest many few hard soft easy difficult
    private public input output true false yes no male female adult child children teenager baby
    domestic international local global online offline upgrade downgrade push pull next previous this
    lock unlock zip unzip block unblock freeze unfreeze follow unfollow mount unmount pin unpin pause resume
    subscribe unsubscribe connect disconnect in out join leave hire fire accept decline encrypt decrypt
    single double full partial entire whole all every everyone one each"""
)
# The positive pole of a grade, which a question asking for advice implies whether it says it or not.
EVALUATIVES = frozenset({"good", "best", "great"})
_SHORT_FORMS = (
    (re.compile(r"\b(can)'?t\b", re.I), r"\1 not"),
    (re.compile(r"\bwon'?t\b", re.I), "will not"),
    (re.compile(r"n't\b", re.I), " not"),
    (re.compile(r"'(s|re|m|ll|ve|d)\b", re.I), r" \1"),
    # The same short forms typed without the apostrophe: "dont", "cant", "whos", "im", "youre".
    (re.compile(r"\b(do|does|did|is|are|was|were|has|have|had|could|would|should)nt\b", re.I), r"\1 not"),
    (re.compile(r"\bcant\b", re.I), "can not"),
    (re.compile(r"\bwont\b", re.I), "will not"),
    (re.compile(r"\b(who|what|where|when|why|how|there)s\b", re.I), r"\1 s"),
    (re.compile(r"\b(i)(m|ve)\b", re.I), r"\1 \2"),
    (re.compile(r"\b(you|they)re\b", re.I), r"\1 re"),
)
# "the best way to", "a good way to": the way asked for is the good one either way, as in "How do I".
_GOOD_WAY = re.compile(r"\b(?:best|good|right|proper|correct)\s+(?=ways?\b)", re.I)
# "stop X from V-ing", "prevent X V-ing", "keep X from V-ing" ask how X does not V: read as "X not V-ing".
# "stop" and "prevent" need an X ("stop smoking" is "quit smoking"), one that is owned or a pronoun if "from"
# is left out ("stop my glasses fogging up", not "stop a running container"); "keep" needs "from" ("keep X running").
_KEEP_FROM = re.compile(
    r"\b(?:(?:stop|prevent)(?:s|ped|ping|ed|ing)?\s+((?:[\w']+\s+){1,4}?)from\s+"
    r"|keep(?:s|ing)?\s+((?:[\w']+\s+){0,4}?)from\s+"
    r"|(?:stop|prevent)(?:s|ped|ping|ed|ing)?\s+((?:my|your|his|her|our|their|him|them|it|me|us)\s+(?:[\w']+\s+){0,3}?))"
    r"(?=\w+ing\b)",
    re.I,
)
# A question typed in capitals throughout: its capitals mark no names.
_LOWER_CASE = re.compile(r"[a-z]")
_COUNTRY_IN_SMALL_LETTERS = re.compile(r"\b((?:in|to|from|of|across|for|outside|throughout) the )(us|uk|eu|uae)\b")
# Words that place a time from today: "this Friday" and "last Friday" are two days.
DEICTIC_WORDS = _word_set("this last next past previous coming")
DEICTIC_PAST = _word_set("last past previous")
_DOTTED_ACRONYM = re.compile(r"\b(?:[A-Z]\.){2,}")
_TOKEN = re.compile(r"\d\d:\d\d(?!\d)|[A-Za-z]+|\d+(?:\.\d+)?")
_HOUR_WORDS = "|".join(_word_list("one two three four five six seven eight nine ten eleven twelve"))
# "6 pm", "6:30 p.m.", "7.30am" (digits only: "which one am I" is no time); "six in the morning", "9 at night".
_CLOCK_MERIDIEM = re.compile(r"\b(\d{1,2})(?:[:.](\d\d))?\s*(?:o'?clock\s*)?([ap])\.?m\b\.?", re.I)
_CLOCK_PART_OF_DAY = re.compile(
    r"\b(\d{1,2}|" + _HOUR_WORDS + r")(?:[:.](\d\d))?\s+(?:o'?clock\s+)?"
    r"(in the morning|in the afternoon|in the evening|at night)\b",
    re.I,
)
_CLOCK_24H = re.compile(r"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_CLOCK_WORDS = ((re.compile(r"\bnoon\b|\bmidday\b", re.I), "12:00"), (re.compile(r"\bmidnight\b", re.I), "00:00"))
_SENTENCE_END = re.compile(r"[.?!:;]\s+")
# A plural possessive, "my parents' car": read as "parents 's car", like "my son's car".
_PLURAL_POSSESSIVE = re.compile(r"(?<=[A-Za-z]s)'(?=\s+[A-Za-z])")
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


@dataclass(frozen=True, slots=True)
class Terms:
    """What the guard compares of one question."""

    numbers: tuple[str, ...]
    negations: int  # how many negation words: "survive without" has one, "can't survive without" two
    content: tuple[str, ...]  # stems of the content words, in order
    specific: frozenset[str]  # stems of the content words that name a specific thing
    relations: frozenset[tuple[str, str]]  # (left, right) around "to" / "into" / "from"
    route: tuple[tuple[str, ...], tuple[str, ...]]  # (after "from", after "to"): "from Boston to New York"
    quantifiers: frozenset[str]
    degrees: frozenset[str]  # the grades of its degree words ("halfway", "slightly", "a lot")
    wh_role: str | None  # "object" ("Who did Ali beat?"), "subject" ("Who beat Ali?"), else None
    passive: bool  # "be" and a past participle: "Can milk be frozen?"
    around_to: tuple[frozenset[str], frozenset[str]]  # the runs of words just before and after "to"
    ones: int  # how often the word "one" appears: a number or a pronoun, decided against the other side
    frame: tuple[str, ...]  # content terms, numbers and relation words ("~than", "~s"), in order
    pronoun_cases: frozenset[tuple[str, str]]  # (person, "subject" | "object"): "I owe" (1, subject), "owes me"
    owners: frozenset[tuple[str, str]]  # (owner, thing): "my car" (1, car), "my son's car" (son, car)
    how_long: bool  # asks "how long"
    duration_unit: str | None  # the unit a duration is asked in: "how many weeks" -> "week"
    action: str | None  # the verb a how-to question asks about: "How do I freeze my credit?" -> "freez"
    subject: str | None = None  # who a yes/no question's opening names: "asker" ("Can I ..."), "other", or None
    deixis: frozenset[tuple[str, str]] = frozenset()  # ("last", "friday"): a time said from today


# A word's stem depends on the word alone; questions repeat words, so each is worked out once.
@lru_cache(maxsize=16384)
def stem(word: str) -> str:
    """A crude stem: enough that "vaccines"/"vaccine" and "closing"/"closed" compare equal."""
    return _shortened(_ending(_unsuffixed(word)))


def _unsuffixed(word: str) -> str:
    if word.endswith(("ee", "ees")) and len(word) > 5:
        # "employee", "trainee": the one the verb acts on keeps its "ee", apart from "employer" -> "employ".
        return word.removesuffix("s")
    for suffix in _SUFFIXES:
        # "-ly" is an adverb's only after a stem of four letters: "quickly", not "apply" or "reply".
        if word.endswith(suffix) and len(word) - len(suffix) >= (4 if suffix == "ly" else 3):
            word = word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
            break
    return word.rstrip("e") if len(word) > 3 else word


def _ending(word: str) -> str:
    """A stem's last letters read one way: a final "e" left out ("measurement" -> "measure" ->
    "measur", where "measured" ends) but for "-ee" ("employee"), a final "y" as "i" ("calories" /
    "calorie", "cities" / "city")."""
    if len(word) <= 3 or word.endswith("ee"):
        return word
    word = word.rstrip("e")
    return word[:-1] + "i" if word.endswith("y") else word


def _shortened(word: str) -> str:
    if word.endswith("ee") and len(word) > 5:
        return word  # "employee" stays apart from "employer", cut short to "employe"
    return word[:7] if len(word) > 3 else word


def _hour(written: str) -> int:
    return int(written) if written.isdigit() else int(NUMBER_WORDS[written.lower()])


def _on_24h_clock(hour: int, minutes: str | None, afternoon: bool) -> str:
    """The time "HH:MM" of ``hour`` (1..12) and ``minutes`` in the morning or the afternoon half of the day."""
    return f"{hour % 12 + (12 if afternoon else 0):02d}:{minutes or '00'}"


def _clock_times(text: str) -> str:
    """``text`` with each clock time written as "HH:MM" on a 24-hour clock, one token the guard reads as a number.

    "6 am" and "6 pm" share the number 6 but ask about different hours; "9 pm" and "21:00" are one.
    """

    def clock(found: re.Match[str]) -> str:
        hour = _hour(found[1])
        if not 1 <= hour <= 12:
            return found[0]
        afternoon = found[3].lower() not in ("a", "in the morning")
        return " " + _on_24h_clock(hour, found[2], afternoon) + " "

    text = _CLOCK_MERIDIEM.sub(clock, text)
    text = _CLOCK_PART_OF_DAY.sub(clock, text)
    text = _CLOCK_24H.sub(lambda found: f"{int(found[1]):02d}:{found[2]}", text)
    for pattern, time_of_day in _CLOCK_WORDS:
        text = pattern.sub(time_of_day, text)
    return text


def _words(text: str) -> list[tuple[str, bool]]:
    """Lower-cased tokens, each with whether it was written as a name (capitalised mid-sentence)."""
    if not _LOWER_CASE.search(text) and len(text.split()) > 2:
        text = text.lower()
    text = _clock_times(text.replace("\u2019", "'"))
    text = _DOTTED_ACRONYM.sub(lambda found: found[0].replace(".", ""), text)  # "the U.S." is "the US"
    text = _COUNTRY_IN_SMALL_LETTERS.sub(lambda found: found[1] + found[2].upper(), text)  # "in the us"
    text = _GOOD_WAY.sub("", text)
    text = _KEEP_FROM.sub(lambda found: (found[1] or found[2] or found[3] or "") + "not ", text)
    text = _PLURAL_POSSESSIVE.sub(" s", text)
    for pattern, replacement in _SHORT_FORMS:
        text = pattern.sub(replacement, text)
    text = re.sub(r"(\d),(\d{3})\b", r"\1\2", text).replace("%", " percent ")
    text = rewrite_phrases(text)
    words: list[tuple[str, bool]] = []
    for sentence in _SENTENCE_END.split(text):
        for position, token in enumerate(_TOKEN.findall(sentence)):
            if token in ROMAN:
                words.append((ROMAN[token], False))
                continue
            acronym = len(token) > 1 and token.isupper() and token.lower() not in FILLERS  # "OK so ..." is no name
            named = acronym or (position > 0 and token[0].isupper() and token != "I")
            words.append((token if acronym else token.lower(), named))
    return _number_phrases(words)


def _cardinal(word: str) -> int | None:
    """The value of a cardinal number word ("four", "twenty"), or None ("first", "half", "hundred")."""
    value = NUMBER_WORDS.get(word)
    if value is None or word in MULTIPLIERS or word in ("half", "first"):
        return None
    return int(value) if value.isdigit() and word not in _ORDINAL_WORDS else None


def _number_phrases(words: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """``words`` with each number written in several words or with a unit abbreviation read as one.

    "twenty-four" is 24, "five hundred" 500, "10 thousand" 10000 (a number run of words, as a
    reader adds and multiplies them); "the second" (an ordinal before a noun) is 2, like "2nd";
    "1970s", "70s" and "seventies" are decades ("1970s" is kept whole: it says the century); a unit
    abbreviation right after a number is the unit ("5 km", "3 lbs").
    """
    merged: list[tuple[str, bool]] = []
    index = 0
    while index < len(words):
        word, named = words[index]
        following = words[index + 1][0] if index + 1 < len(words) else ""
        if word in DECADE_WORDS:
            merged.append((DECADE_WORDS[word], False))
        elif word.isdigit() and word.endswith("0") and following == "s" and len(word) in (2, 4):
            merged.append((word + "s", False))
            index += 1
        elif word == "second" and merged and merged[-1][0] == "the" and following and following not in STOPWORDS:
            merged.append(("2", False))
        elif word == "original" and merged and merged[-1][0] == "the" and _first_of_a_series(words, index + 1):
            merged.append(("1", False))  # "the original Toy Story" is the first one; "the original singer" is not
        elif word in UNIT_ABBREVIATIONS and (
            word in UNAMBIGUOUS_UNITS or (merged and _number(merged[-1][0]) is not None)
        ):
            merged.extend((unit, False) for unit in UNIT_ABBREVIATIONS[word].split())
        else:
            run, value = _number_run(words, index)
            if run > 1:
                merged.append((value, False))
                index += run
                continue
            merged.append((word, named))
        index += 1
    return merged


# After "the original", words that name one of a series: "the original version", "the original film".
SERIES_WORDS = _word_set("version one edition release series season film movie book game model")


def _first_of_a_series(words: list[tuple[str, bool]], index: int) -> bool:
    """Whether the word at ``index`` names a work or a thing of a series (a name, or "version", "film" ...)."""
    return index < len(words) and (words[index][1] or words[index][0] in SERIES_WORDS)


def _number_run(words: list[tuple[str, bool]], start: int) -> tuple[int, str]:
    """How many words from ``start`` spell one number, and its value: "twenty four", "five hundred"."""
    total, current, index, last = 0, 0, start, ""
    while index < len(words):
        word = words[index][0]
        if word in MULTIPLIERS and last:
            total, current = (
                (total, current * MULTIPLIERS[word])
                if word == "hundred"
                else (
                    total + current * MULTIPLIERS[word],
                    0,
                )
            )
            last = "multiplier"
        elif index == start and word.isdigit():
            current, last = int(word), "digits"  # "10 thousand", not "10 twenty"
        elif last == "tens" and not current % 10 and (word in _ORDINAL_WORDS or word == "first"):
            if int(NUMBER_WORDS[word]) < 10:  # "twenty-fifth" is the 25th; the run ends with it
                current += int(NUMBER_WORDS[word])
                index += 1
            break
        elif (value := _cardinal(word)) is not None and last != "digits":
            # "twenty four" adds; "two three" (two numbers side by side) and "four twenty" do not.
            if last == "unit" or (last == "tens" and (value >= 10 or current % 10)):
                break
            current, last = current + value, "tens" if value >= 20 else "unit"
        else:
            break
        index += 1
    return index - start, str(total + current)


def _number(word: str) -> str | None:
    if word[0].isdigit():
        return word
    return NUMBER_WORDS.get(word)


@lru_cache(maxsize=1)
def _synonyms() -> dict[str, str]:
    """The stem of each word of ``SYNONYM_GROUPS`` -> the stem naming its group."""
    table = {}
    for line in SYNONYM_GROUPS.splitlines():
        group = [_base(word) for word in line.split()]
        table.update({member: group[0] for member in group})
    return table


@lru_cache(maxsize=1)
def _wordnet() -> dict[str, tuple[int, ...]]:
    """Each term of a WordNet synset (``lexicon.wordnet_synsets``), read as its group -> the synsets it is in."""
    synonyms = _synonyms()
    found: dict[str, list[int]] = {}
    for number, terms in enumerate(wordnet_synsets()):
        for term in {synonyms.get(term, term) for term in terms}:
            found.setdefault(term, []).append(number)
    # Tuples: most terms are in one or two synsets, and a set of one costs four times the memory.
    return {term: tuple(numbers) for term, numbers in found.items()}


def wordnet_term(lemma: str) -> str:
    """What the WordNet table holds of a lemma: the stem the guard compares (tests/bench/wordnet_synonyms.py)."""
    return _base(lemma)


def closed_class(word: str) -> bool:
    """Whether ``word`` is of a closed class whose members answer different questions: "minute" / "second"."""
    return word in CONTRAST_WORDS or stem(word) in _contrast_stems()


def _base(word: str) -> str:
    """The stem of the verb ``word`` comes from: "wrote" -> "writ", "composer" -> "compos"."""
    # The noun's suffix goes before the stem is cut short ("composer" and "composed" both end as "compos").
    return _shortened(_ending(root(_unsuffixed(IRREGULAR_VERBS.get(word, word)))))


# A word's stem depends on the word alone; questions repeat words, so each is worked out once.
@lru_cache(maxsize=16384)
def _term(word: str) -> str:
    """What the guard compares of a content word: its stem, read as the verb it comes from, as its group."""
    stemmed = _base(word)
    return _synonyms().get(stemmed, stemmed)


@lru_cache(maxsize=4096)
def question_terms(text: str) -> Terms:
    every_word = _words(text)
    words = [(word, named) for word, named in every_word if word not in FILLERS]
    numbers = tuple(sorted(n for n in (_number(word) for word, _ in words) if n is not None))
    content: list[str] = []
    specific: set[str] = set()
    words = _without_leading_request(words)
    for index, (word, named) in enumerate(words):
        if _container(words, index):
            content.append(_term(word))
            specific.add(_term(word))
            continue
        if word.isupper():  # an acronym: GET / POST, US, SQL
            content.append(word)
            specific.add(word)
            continue
        if word in STOPWORDS or word in NEGATIONS or word in DEGREES or _number(word) is not None:
            continue
        term = _term(word)
        content.append(term)
        if named or word in CONTRAST_WORDS or stem(word) in _contrast_stems() or not _in_vocabulary(word):
            specific.add(term)
    plain = [word for word, _ in words]
    return Terms(
        numbers=numbers,
        negations=sum(word in NEGATIONS for word in plain),
        content=tuple(content),
        specific=frozenset(specific),
        relations=_relations(plain),
        # A route's target follows its source: "the way to send a parcel from A to B" goes to B.
        route=(_span_after(plain, "from"), _span_after(plain, "to", plain.index("from") if "from" in plain else 0)),
        around_to=_around_to(plain),
        quantifiers=_quantifiers(plain),
        degrees=_degrees(plain),
        wh_role=_wh_role(plain),
        passive=_passive(plain),
        ones=plain.count("one"),
        frame=_frame(words),
        pronoun_cases=_pronoun_cases([word for word, _ in every_word]),
        owners=_owners(plain),
        how_long=("how", "long") in pairwise(plain),
        action=_action(plain),
        subject=_subject(plain),
        deixis=_deixis(plain),
        duration_unit=next(
            (
                _term(unit)
                for how, many, unit in zip(plain, plain[1:], plain[2:], strict=False)
                if how == "how" and many == "many" and unit in DURATION_UNITS
            ),
            None,
        ),
    )


def _container(words: list[tuple[str, bool]], index: int) -> bool:
    """Whether the word at ``index`` is a container or a portion of what follows: "a can of", "two slices of"."""
    return (
        words[index][0] in CONTAINERS
        and index + 1 < len(words)
        and words[index + 1][0] == "of"
        and index > 0
        and (
            words[index - 1][0] in ("a", "an", "the", "one", "per", "each", "this", "that", "my")
            or _number(words[index - 1][0]) is not None
        )
    )


HOW_TO_AUXILIARIES = _word_set("do does can could should would")
HOW_TO_SUBJECTS = _word_set("i you we one")


def _action(words: list[str]) -> str | None:
    """The verb a how-to question asks about: "How do I freeze ...", "How can we ...", "How to ..."."""
    if not words or words[0] != "how":
        return None
    index = 1
    if index < len(words) and words[index] in HOW_TO_AUXILIARIES:
        index += 1
        if index < len(words) and words[index] in HOW_TO_SUBJECTS:
            index += 1
    elif index < len(words) and words[index] == "to":
        index += 1
    else:
        return None
    if index >= len(words) or words[index] in STOPWORDS or words[index] in NEGATIONS:
        return None
    return _term(words[index])


def _other_action(q: Terms, c: Terms) -> bool:
    """Two how-to questions about one thing with other verbs of their own: "How do I freeze my credit?" /
    "How do I dispute my credit report?". Each verb is absent from the other side, the object is shared,
    and one verb is of a closed class, so that a verb without a synonym in the lexicon ("speed up" /
    "make faster") still costs no hit."""
    return (
        q.action is not None
        and c.action is not None
        and q.action != c.action
        and q.action not in c.content
        and c.action not in q.content
        and bool(set(q.content) & set(c.content))
        and (q.action in q.specific or c.action in c.specific)  # a closed-class verb: "freeze", "lock", "pause"
    )


DURATION_UNITS = _word_set("seconds minutes hours days weeks months years decades")


def _duration_unit_dropped(q: Terms, c: Terms) -> tuple[Terms, Terms]:
    """Both sides with the unit left out of "how many weeks" when the other side asks "how long".

    "How long does a visa take?" and "How many weeks does a visa take?" ask for one duration;
    "how many days" and "how many weeks" still differ.
    """

    def dropped(terms: Terms) -> Terms:
        content = list(terms.content)
        content.remove(terms.duration_unit or "")
        specific = terms.specific if terms.duration_unit in content else terms.specific - {terms.duration_unit}
        return dataclasses.replace(terms, content=tuple(content), specific=frozenset(specific))

    if q.how_long and not c.how_long and c.duration_unit in c.content:
        return q, dropped(c)
    if c.how_long and not q.how_long and q.duration_unit in q.content:
        return dropped(q), c
    return q, c


# Verbs that open a request and ask what the question after them asks: "Summarize the plot of X"
# is "What is the plot of X?". "compare" asks for the differences. "list" and "name" count only
# before a small word ("List the planets", not "List comprehension vs map").
LEADING_REQUESTS = {
    **dict.fromkeys(_word_list("summarize summarise describe outline define recommend suggest"), None),
    **dict.fromkeys(("list", "name"), "before a small word"),
    "compare": "differences",
}


def _without_leading_request(words: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    for index, (word, _) in enumerate(words):
        if word in STOPWORDS:
            continue  # "Could you please ..."
        if word not in LEADING_REQUESTS:
            return words
        after = words[index + 1][0] if index + 1 < len(words) else ""
        meaning = LEADING_REQUESTS[word]
        if meaning == "before a small word":
            return words[:index] + words[index + 1 :] if after in STOPWORDS or _number(after) else words
        return words[:index] + ([(meaning, False)] if meaning else []) + words[index + 1 :]
    return words


# Stopwords that are nouns after a possessive: "my wife's will", "my can".
OWNED_STOPWORDS = _word_set("will can")
POSSESSIVES = {"my": "1", "our": "1", "his": "he", "their": "they", "your": "you"}


def _owners(words: list[str]) -> frozenset[tuple[str, str]]:
    """Who owns what: each possessive ("my", "his", "the employer's") and the word right after it."""
    found = set()
    for index, word in enumerate(words[:-1]):
        following = words[index + 1]
        if word in POSSESSIVES:
            owner = POSSESSIVES[word]
        elif following == "s" and index > 0 and word not in STOPWORDS and index + 2 < len(words):
            owner, following = _term(word), words[index + 2]  # "the employer 's messages", read apart
        else:
            continue
        if following not in STOPWORDS or following in OWNED_STOPWORDS:
            found.add((owner, _term(following)))
    return frozenset(found)


def _swapped_owners(q: Terms, c: Terms) -> bool:
    """The same words, but a thing owned on both sides has another owner on each.

    "Can my employer read my messages?" / "Can I read my employer's messages?": the messages are
    mine in one and the employer's in the other.
    """
    if _moved_owner(q, c) or _moved_owner(c, q):
        return True
    if Counter(q.content) != Counter(c.content):
        return False
    # An owner named in other words on each side ("the WHO's" / "the World Health Organization's",
    # aligned in the content only) is no other owner.
    known = (set(q.content) & set(c.content)) | set(POSSESSIVES.values())
    q_owners: dict[str, set[str]] = {}
    c_owners: dict[str, set[str]] = {}
    for owner, thing in q.owners:
        if owner in known:
            q_owners.setdefault(thing, set()).add(owner)
    for owner, thing in c.owners:
        if owner in known:
            c_owners.setdefault(thing, set()).add(owner)
    return any(thing in c_owners and c_owners[thing] != owners for thing, owners in q_owners.items())


def _moved_owner(q: Terms, c: Terms) -> bool:
    """A thing owned on both sides whose owner in ``c`` is in ``q`` too, there doing something else.

    "Can my grandparents pay into my kids' college fund?" / "Can I pay into my grandparents' college
    fund?": the grandparents give in one and own the fund in the other, whatever else the two ask.
    """
    q_owners: dict[str, set[str]] = {}
    for owner, thing in q.owners:
        q_owners.setdefault(thing, set()).add(owner)
    # Named right before the thing, the owner still owns it: "the UK's debt" / "the United Kingdom's
    # debt" (aligned as "UK debt" in the content only).
    owning = set(pairwise(q.content))
    return any(
        thing in q_owners
        and owner not in q_owners[thing]
        and owner != "1"
        and owner in q.content
        and (owner, thing) not in owning
        for owner, thing in c.owners
    )


# Personal pronouns whose form says the role: "I" / "we" do, "me" / "us" are done to. "you", "it"
# and "her" have one form for both roles and say nothing.
PRONOUN_CASES = {
    **dict.fromkeys(("i", "we"), ("1", "subject")),
    **dict.fromkeys(("me", "us", "myself", "ourselves"), ("1", "object")),
    "he": ("he", "subject"),
    **dict.fromkeys(("him", "himself"), ("he", "object")),
    "she": ("she", "subject"),
    "they": ("they", "subject"),
    **dict.fromkeys(("them", "themselves"), ("they", "object")),
}
# Verbs of the request itself: "tell me", "help me find", "walk me through" ask, they give the asker no role.
REQUEST_VERBS = _word_set("tell show give let help teach walk remind guide advise explain recommend suggest")


def _pronoun_cases(words: list[str]) -> frozenset[tuple[str, str]]:
    found = set()
    for index, word in enumerate(words):
        case = PRONOUN_CASES.get(word)
        if case is None:
            continue
        if case[1] == "object" and _asker(words, index):
            continue
        found.add(case)
    return frozenset(found)


def _asker(words: list[str], index: int) -> bool:
    """Whether the object pronoun at ``index`` is the asker of the request: "(Can you) tell me",
    "explain to me"; not "Should my teacher tell me", where the verb has a subject of its own."""
    verb = index - 2 if words[index - 2 : index] == ["explain", "to"] else index - 1
    return verb >= 0 and words[verb] in REQUEST_VERBS and all(w in STOPWORDS or w in FILLERS for w in words[:verb])


# A modal or "do" opening a yes/no question; "Is a visa required?" (a form of "be") names what is acted on.
YES_NO_OPENINGS = _word_set("can could should may might must will would do does did")


def _subject(words: list[str]) -> str | None:
    """Who acts in a yes/no question: the asker ("Can I see ...?") or someone else ("Can my school see ...?")."""
    if words[:1] and words[0] in YES_NO_OPENINGS:
        words = [word for word in words[1:] if word != "not"]  # "Can't I ...?" is "Can I not ...?"
    else:
        return None
    if len(words) < 2:
        return None
    if words[0] in ("i", "we"):
        return "asker"
    if words[0] in POSSESSIVES or words[0] in ("the", "a", "an") or words[0] not in STOPWORDS:
        return "other"
    return None


def _swapped_subject(q: Terms, c: Terms) -> bool:
    """The same words, the asker acting in one and someone else in the other: "Can my kids' school see my
    medical records?" / "Can I see my kids' school medical records?"."""
    return (
        q.passive == c.passive
        and {q.subject, c.subject} == {"asker", "other"}
        and Counter(q.content) == Counter(c.content)
    )


def _swapped_pronoun_roles(q: Terms, c: Terms) -> bool:
    """The same words, but a person is the one acting in one and the one acted on in the other.

    "How much does my landlord owe me?" / "How much do I owe my landlord?": both read "landlord
    owe", the asker is the object of "owe" in one and its subject in the other.
    """
    if Counter(q.content) != Counter(c.content):
        return False
    q_roles: dict[str, set[str]] = {}
    c_roles: dict[str, set[str]] = {}
    for person, case in q.pronoun_cases:
        q_roles.setdefault(person, set()).add(case)
    for person, case in c.pronoun_cases:
        c_roles.setdefault(person, set()).add(case)
    return any(person in c_roles and c_roles[person] != cases for person, cases in q_roles.items())


def _frame(words: list[tuple[str, bool]]) -> tuple[str, ...]:
    """The question's content terms and numbers in order, with the relation words between them marked."""
    frame: list[str] = []
    previous = ""
    for word, _ in words:
        if word.isupper() or _number(word) is not None:
            frame.append(word)
        elif word in RELATION_WORDS:
            # "Australia's" is a possessive; "what's", "it's" are "is".
            if word != "s" or (previous and previous not in STOPWORDS):
                frame.append("~" + word)
        elif word in RELATION_VERBS and frame:
            frame.append(RELATION_VERBS[word])  # a leading "Give me ..." or "Show me ..." relates nothing
        elif word not in STOPWORDS and word not in NEGATIONS and word not in SYMMETRIC_WORDS and word not in DEGREES:
            frame.append(_term(word))
        previous = word
    return tuple(frame)


def _deixis(words: list[str]) -> frozenset[tuple[str, str]]:
    """Each time word placed from today by the word before it: "this friday", "last week", "next year"."""
    return frozenset(
        (before, stem(word))
        for before, word in pairwise(words)
        if before in DEICTIC_WORDS and (word in CONTRAST_WORDS and word not in DEICTIC_WORDS)
    )


def _other_time_from_today(q: Terms, c: Terms) -> bool:
    """Whether one asks about another day than the other, as said from today ("this Friday" / "last
    Friday"), or one places it in the past where the other does not say ("on Friday" / "last Friday")."""
    if q.deixis == c.deixis:
        return False
    if q.deixis and c.deixis:
        return True
    placed = q.deixis or c.deixis
    return any(before in DEICTIC_PAST for before, _ in placed)


def _quantifiers(words: list[str]) -> frozenset[str]:
    # "how many" asks for a count; it does not say how many things the question is about.
    found = {
        word for index, word in enumerate(words) if word in QUANTIFIERS and (index == 0 or words[index - 1] != "how")
    }
    # "every other row" is half of "every row".
    found |= {"every other" for before, word in pairwise(words) if before == "every" and word == "other"}
    return frozenset(found)


def _degrees(words: list[str]) -> frozenset[str]:
    found = {DEGREES[word] for word in words if word in DEGREES}
    found |= {DEGREE_AFTER_A[word] for before, word in pairwise(words) if before == "a" and word in DEGREE_AFTER_A}
    return frozenset(found)


def _other_degree(q: Terms, c: Terms) -> bool:
    """Whether the two questions ask to different degrees ("halfway" / "fully", "slightly" / "very")."""
    if q.degrees == c.degrees:
        return False
    if q.degrees and c.degrees:
        return True
    return not (q.degrees | c.degrees) <= UNMARKED_DEGREES


WH_WORDS = _word_set("who whom what which")
DO_FORMS = _word_set("do does did")
# Right after a wh-phrase, these leave the wh-word's role to the words after ("Who was beaten?",
# "Who can beat him?", "What kind of ...").
NOT_A_MAIN_VERB = _word_set(
    "is are was were be been am s re m ll d has have had will would can could should shall may might must of a an the"
)


def _wh_role(words: list[str]) -> str | None:
    """Whether a leading wh-word is the object of the verb or its subject.

    "Who did Ali beat?" asks for the one beaten ("object": the wh-phrase is followed by "do"/"does"/
    "did"), "Who beat Ali?" for the winner ("subject": a verb follows at once). "Which team" and
    "what company" are one wh-phrase. A form of "be" or "have", a modal or a passive with "by"
    leaves the role open.
    """
    if len(words) < 3 or words[0] not in WH_WORDS:
        return None
    head = words[1:3] if words[0] in ("what", "which") else words[1:2]
    if head[0] in DO_FORMS or head[-1] in DO_FORMS:
        return "object"
    if any(word in NOT_A_MAIN_VERB for word in head) or "by" in words:
        return None
    return "subject"


BE_FORMS = _word_set("be been being is are was were am")


def _passive(words: list[str]) -> bool:
    # A passive puts the object first ("Can cheese be frozen?" asks "Can you freeze cheese?"): the
    # order of its words says nothing of roles, so the role-swap rule only compares like with like.
    return any(
        before in BE_FORMS and (word.endswith("ed") or word in PAST_PARTICIPLES) for before, word in pairwise(words)
    )


def _swapped_wh_roles(q: Terms, c: Terms) -> bool:
    """The same words, the wh-word the verb's object in one and its subject in the other ("Who did X beat?")."""
    return (
        {q.wh_role, c.wh_role} == {"object", "subject"}
        and q.content != c.content
        and Counter(q.content) == Counter(c.content)
    )


def _span_after(words: list[str], directed: str, start: int = 0) -> tuple[str, ...]:
    """The content words after the first ``directed`` from ``start`` up to the next "to" / "into" / "from"."""
    if directed not in words[start:]:
        return ()
    span = []
    for word in words[words.index(directed, start) + 1 :]:
        if word in DIRECTED:
            break
        if word not in STOPWORDS:
            span.append(stem(word))
    return tuple(span)


def _around_to(words: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The words right before the first "to" / "into" and right after it, each up to a small word."""
    for index, word in enumerate(words):
        if word in ("to", "into"):
            before = _run(reversed(words[:index]))
            after = _run(iter(words[index + 1 :]))
            return frozenset(before), frozenset(after)
    return frozenset(), frozenset()


def _run(words: Iterator[str]) -> list[str]:
    found = []
    for word in words:
        if word in STOPWORDS or word in DIRECTED:
            break
        found.append(stem(word))
    return found


def _reversed_route(q: Terms, c: Terms) -> bool:
    (q_from, q_to), (c_from, c_to) = q.route, c.route
    # What both targets end with is not the route's: "to B after brexit" / "to A after brexit".
    while q_to and c_to and len(q_to) > 1 and len(c_to) > 1 and q_to[-1] == c_to[-1]:
        q_to, c_to = q_to[:-1], c_to[:-1]
    if q_from and q_to and q_from == c_to and q_to == c_from:
        return True
    if _ellipsis_reversed(q.route, c.route) or _ellipsis_reversed(c.route, q.route):
        return True
    # "US dollars to euros" / "euros to US dollars": each side's target is among the other's sources.
    (q_before, q_after), (c_before, c_after) = q.around_to, c.around_to
    return bool(q_after and c_after) and q_after != c_after and q_after <= c_before and c_after <= q_before


def _ellipsis_reversed(
    one: tuple[tuple[str, ...], tuple[str, ...]], other: tuple[tuple[str, ...], tuple[str, ...]]
) -> bool:
    """A route whose two ends share a word left out of one end: "from this year to next" / "from next
    year to this year". The words that set ``one``'s target apart from its source set ``other``'s
    source apart from its target."""
    (one_from, one_to), (other_from, other_to) = one, other
    if not (one_from and one_to and other_from and other_to):
        return False
    target = set(one_to) - set(one_from)
    return bool(target) and target <= set(other_from) - set(other_to)


@lru_cache(maxsize=1)
def _contrast_stems() -> frozenset[str]:
    # "centimeters", "Mondays": the plural of a closed-class word is as specific as the word.
    return frozenset(stem(word) for word in CONTRAST_WORDS)


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


def _swapped_roles(query: tuple[str, ...], candidate: tuple[str, ...]) -> bool:
    """Whether ``candidate`` is ``query`` with two runs of content words exchanged around a relation.

    "Is Mars bigger than Venus?" / "Is Venus bigger than Mars?": the frames agree but for "Mars" and
    "Venus", which trade places across "bigger than". Active and passive ("Who wrote X?" / "X was
    written by whom?"), a fronted phrase ("In Paris, what ...?" / "What ... in Paris?") and the
    possessive turned into "of" change the frame itself, and two words side by side ("salt and
    pepper") or across "vs" have no relation between them to take a role from: none of these is a swap.
    """
    if len(query) != len(candidate) or query == candidate:
        return False
    _, q_span, c_span = _differing_spans(query, candidate)
    return next(_exchanges(q_span, c_span), None) is not None


# Comparatives that read one scale from its two ends: "X is higher than Y" is "Y is lower than X".
# Each pair is (the end that is "more", the end that is "less"); their "-er" forms and irregular
# comparatives read the same.
_OPPOSITE_COMPARATIVES = (
    ("high higher", "low lower"),
    ("big bigger large larger", "small smaller little"),
    ("long longer", "short shorter"),
    ("fast faster quick quicker", "slow slower"),
    ("old older", "young younger"),
    ("heavy heavier", "light lighter"),
    ("hot hotter warm warmer", "cold colder cool cooler"),
    ("strong stronger", "weak weaker"),
    ("good better", "bad worse"),
    ("early earlier before", "late later after"),
    ("expensive pricier", "cheap cheaper"),
    ("rich richer", "poor poorer"),
    ("wide wider", "narrow narrower"),
    ("more", "less fewer"),
)


@lru_cache(maxsize=1)
def _comparative_ends() -> dict[str, tuple[str, int]]:
    """term -> (the scale it names, +1 for its "more" end or -1 for its "less" end)."""
    ends: dict[str, tuple[str, int]] = {}
    for more, less in _OPPOSITE_COMPARATIVES:
        scale = more.split()[0]
        for words, sign in ((more, 1), (less, -1)):
            for word in words.split():
                ends.setdefault(_term(word), (scale, sign))
                ends.setdefault(word, (scale, sign))
    return ends


def _graded(frame: tuple[str, ...]) -> tuple[tuple[str, ...], int] | None:
    """``frame`` with its one comparison written as a scale and a sign, and the sign; None without one.

    "brown rice healthier than white rice" -> (brown rice <healthi> ~than white rice, +1); "white rice
    less healthy than brown rice" -> (white rice <healthi> ~than brown rice, -1); "X played before Y"
    -> (X played <early> Y, +1).
    """
    ends = _comparative_ends()
    marks = [index for index, term in enumerate(frame) if term == "~than" or ends.get(term, ("", 0))[0] == "early"]
    if len(marks) != 1:
        return None
    mark = marks[0]
    if frame[mark] != "~than":  # "before" / "after" compare two times by themselves
        scale, sign = ends[frame[mark]]
        return (*frame[:mark], f"<{scale}>", *frame[mark + 1 :]), sign
    graded = [index for index in range(mark) if frame[index] in ends]
    if graded:  # "higher in Denmark than in Sweden": the comparative need not come right before "than"
        start = graded[-1]
        scale, sign = ends[frame[start]]
        end = start + 1
        if scale == "more" and end < mark and not frame[end].startswith("~"):  # "less healthy", "more expensive"
            inner_scale, inner_sign = ends.get(frame[end], (frame[end], 1))
            scale, sign, end = inner_scale, sign * inner_sign, end + 1
        elif start and scale != "more" and ends.get(frame[start - 1], ("", 0))[0] == "more":
            start, sign = start - 1, sign * ends[frame[start - 1]][1]  # "more expensive": on "expensive"'s scale
    elif mark > 0 and not frame[mark - 1].startswith("~"):
        start, end = mark - 1, mark
        scale, sign = frame[start], 1  # "healthier": the "more" end of its own scale
    else:
        return None
    return (*frame[:start], f"<{scale}>", *frame[end:]), sign


def _turned_around(q: Terms, c: Terms) -> bool:
    """Whether one question compares the same two things from the other end of the same scale.

    "Is brown rice healthier than white rice?" / "Is white rice less healthy than brown rice?", "Is
    income tax higher in Denmark than in Sweden?" / "... lower in Sweden than in Denmark?", "Is the
    final played before Y?" / "Is Y played after the final?": the same answer. Without the exchange
    ("Is X higher than Y?" / "Is X lower than Y?") or without the other end ("Is Y higher than X?")
    it is another question, which the rules after this one refuse.
    """
    q_graded, c_graded = _graded(q.frame), _graded(c.frame)
    if q_graded is None or c_graded is None or q_graded[1] == c_graded[1]:
        return False
    return _swapped_roles(q_graded[0], c_graded[0])


def _swapped_across_relation(q: Terms, c: Terms) -> bool:
    """Whether, leaving out the content words of one side only, two participants exchange places across a
    relation word: "Can a class inherit from a dataclass?" / "Can a dataclass inherit from a regular class?"."""
    q_terms, c_terms = set(q.frame), set(c.frame)
    query = tuple(term for term in q.frame if term.startswith("~") or term in c_terms)
    candidate = tuple(term for term in c.frame if term.startswith("~") or term in q_terms)
    if (query, candidate) == (q.frame, c.frame) or len(query) != len(candidate) or query == candidate:
        return False
    start, q_span, c_span = _differing_spans(query, candidate)
    before = query[start - 1] if start else ""
    # The relation between the two is a word other than "to" (an infinitive as often as a direction), and
    # other than the one both follow ("in 2025 in the US" / "in the US in 2025" only reorders).
    return any(
        any(term.startswith("~") and term not in ("~to", before) for term in q_span[first:-second])
        for first, second in _exchanges(q_span, c_span)
    )


def _differing_spans(
    query: tuple[str, ...], candidate: tuple[str, ...]
) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """Where two different frames of one length differ: the index of their first difference, and each
    one's terms from there to their last difference."""
    start = next(i for i, (one, other) in enumerate(zip(query, candidate, strict=True)) if one != other)
    end = len(query) - next(
        i for i, (one, other) in enumerate(zip(query[::-1], candidate[::-1], strict=True)) if one != other
    )
    return start, query[start:end], candidate[start:end]


def _exchanges(query: tuple[str, ...], candidate: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    """Each ``(first, second)`` for which ``candidate`` is ``query`` with its first ``first`` and last
    ``second`` terms exchanged, two participants with at least one term between them: the relation."""
    size = len(query)
    for first in range(1, size - 1):
        for second in range(1, size - first):
            if _exchanged(query, candidate, first, second):
                yield first, second


def _exchanged(query: tuple[str, ...], candidate: tuple[str, ...], first: int, second: int) -> bool:
    """Whether ``candidate`` is ``query`` with its first ``first`` and last ``second`` terms exchanged."""
    size = len(query)
    before, middle, after = query[:first], query[first : size - second], query[size - second :]
    return candidate == after + middle + before and _participant(before) and _participant(after)


def _participant(run: tuple[str, ...]) -> bool:
    """Whether ``run`` names one participant: content words, a possessive only inside ("Jupiter's moon")."""
    return not any(
        term.startswith("~") and (term != "~s" or index in (0, len(run) - 1)) for index, term in enumerate(run)
    )


@lru_cache(maxsize=1)
def _scope_terms() -> frozenset[str]:
    return frozenset(_term(word) for word in SCOPE_WORDS)


def _narrowed_against_wide(wide: Terms, narrow: Terms) -> bool:
    """Whether ``wide`` asks about everywhere ("worldwide", "overall") where ``narrow`` names a part of its own.

    "Which countries worldwide ...?" / "Which Asian countries ...?" differ; "How many people speak
    Portuguese worldwide?" / "... speak Portuguese?" do not: the wide word alone adds nothing.
    """
    scope = _scope_terms()
    widened = (set(wide.content) & scope) - set(narrow.content)
    return bool(widened) and bool(set(narrow.content) - set(wide.content) - scope)


def _aligned_substitution(query: tuple[str, ...], candidate: tuple[str, ...]) -> bool:
    operations = {op for op, *_ in difflib.SequenceMatcher(a=query, b=candidate, autojunk=False).get_opcodes()}
    return "replace" in operations and operations <= {"equal", "replace"}


def _initials_of(acronym: str, words: list[str]) -> tuple[int, int] | None:
    """Where in ``words`` a run of words starts with the letters of ``acronym`` ("GDP": gross domestic product,
    "HOA": homeowners association)."""
    letters = acronym.lower()
    for start in range(len(words)):
        spelled = _spelling(letters, words[start:])
        if spelled is not None:
            return start, start + spelled
    return None


def _spelling(letters: str, words: list[str]) -> int | None:
    """How many of the first ``words`` give ``letters`` as their initials, or None.

    A word gives its first letter, or, when it is two words of the model's vocabulary written as one
    ("homeowners"), the first letter of each.
    """
    if not letters:
        return 0
    if not words or not words[0] or words[0][0].lower() != letters[0]:
        return None
    rest = _spelling(letters[1:], words[1:])
    if rest is None and len(letters) > 1 and _second_part(words[0].lower()).startswith(letters[1]):
        rest = _spelling(letters[2:], words[1:])
    return None if rest is None else rest + 1


@lru_cache(maxsize=4096)
def _second_part(word: str) -> str:
    """The second of the two words ``word`` is written from ("homeown" -> "own"), or ""."""
    vocabulary = _vocabulary()
    for split in range(4, len(word) - 2):
        if word[:split] in vocabulary and word[split:] in vocabulary:
            return word[split:]
    return ""


def _with_acronyms(content: tuple[str, ...], acronyms: set[str]) -> tuple[str, ...]:
    """``content`` with each spelled-out name of one of ``acronyms``, or the acronym in small letters,
    replaced by the acronym."""
    words = list(content)
    for acronym in sorted(acronyms - set(words)):
        # Typed in small letters ("my roth ira" / "my Roth IRA"), an acronym is still the acronym.
        words = [acronym if word == _term(acronym.lower()) else word for word in words]
        found = _initials_of(acronym, words)
        if found is not None:
            words[found[0] : found[1]] = [acronym]
    return tuple(words)


def _aligned(q: Terms, c: Terms) -> tuple[Terms, Terms]:
    """Both sides with an acronym of one side written as the acronym in the other as well."""
    q_acronyms = {word for word in q.content if word.isupper() and len(word) > 1}
    c_acronyms = {word for word in c.content if word.isupper() and len(word) > 1}
    q_content, c_content = _with_acronyms(q.content, c_acronyms), _with_acronyms(c.content, q_acronyms)
    acronyms = q_acronyms | c_acronyms
    return (
        dataclasses.replace(q, content=q_content, specific=q.specific | (acronyms & set(q_content))),
        dataclasses.replace(c, content=c_content, specific=c.specific | (acronyms & set(c_content))),
    )


def _read_alike(q: Terms, c: Terms) -> tuple[Terms, Terms]:
    """Both sides with each word of ``c`` that shares a line of the WordNet table (a synset, or a word derived
    from the other) with a word of ``q`` missing from ``c`` written as that word: "How do I get wine out of
    a sofa?" / "... out of a couch?"."""
    only_q = Counter(q.content) - Counter(c.content)
    only_c = Counter(c.content) - Counter(q.content)
    if not only_q or not only_c:
        return q, c
    synsets = _wordnet()
    renamed: dict[str, str] = {}
    for term in only_c:
        found = synsets.get(term)
        if not found:
            continue
        match = next(
            (other for other in only_q if only_q[other] and not set(found).isdisjoint(synsets.get(other, ()))), None
        )
        # Not the two verbs two how-to questions ask about: WordNet's verbs are broader than an action
        # ("print" is "publish"), and another action is another question.
        if match is not None and not (term == c.action and match == q.action):
            renamed[term] = match
            only_q[match] = 0
    if not renamed:
        return q, c

    def read(term: str) -> str:
        return renamed.get(term, term)

    return q, dataclasses.replace(
        c,
        content=tuple(map(read, c.content)),
        specific=frozenset(map(read, c.specific)),
        frame=tuple(map(read, c.frame)),
        owners=frozenset((read(owner), read(thing)) for owner, thing in c.owners),
        action=None if c.action is None else read(c.action),
        duration_unit=None if c.duration_unit is None else read(c.duration_unit),
    )


def _compared(query: str, candidate: str) -> tuple[Terms, Terms]:
    """What the guard compares of the two: acronyms aligned, WordNet synonyms read as one, "how many weeks"
    read as "how long"."""
    return _duration_unit_dropped(*_read_alike(*_aligned(question_terms(query), question_terms(candidate))))


def _same_with_one(q: Terms, c: Terms) -> bool:
    """Whether the numbers agree once the word "one" of one side is read as the other side's "1"."""
    extra_q, extra_c = Counter(q.numbers) - Counter(c.numbers), Counter(c.numbers) - Counter(q.numbers)
    if extra_q and not extra_c:
        return set(extra_q) == {"1"} and extra_q["1"] <= c.ones
    if extra_c and not extra_q:
        return set(extra_c) == {"1"} and extra_c["1"] <= q.ones
    return False


def _same_decades(q: Terms, c: Terms) -> bool:
    """Whether the numbers agree once a decade without its century ("the 70s") is read as the other side's
    ("the 1970s")."""
    extra_q, extra_c = Counter(q.numbers) - Counter(c.numbers), Counter(c.numbers) - Counter(q.numbers)
    if sum(extra_q.values()) != 1 or sum(extra_c.values()) != 1:
        return False
    (one,), (other,) = extra_q, extra_c
    short, full = sorted((one, other), key=len)
    return short.endswith("s") and len(short) == 3 and len(full) == 5 and full.endswith(short)


def equivalent(query: str, candidate: str) -> bool:
    """Whether the two questions use the same content words (in any order), once synonyms are read as one."""
    q, c = _compared(query, candidate)
    return bool(q.content) and Counter(q.content) == Counter(c.content)


def spelled_out(query: str, candidate: str) -> bool:
    """Whether the two read as the same words only once an acronym of one is spelled out in the other."""
    q, c = question_terms(query), question_terms(candidate)
    q_aligned, c_aligned = _aligned(q, c)
    return (q_aligned.content, c_aligned.content) != (q.content, c.content) and equivalent(query, candidate)


def near_miss_reason(query: str, candidate: str) -> str | None:
    """Why ``candidate`` must not answer ``query`` although their vectors are close, or None."""
    q, c = _compared(query, candidate)
    if q.numbers != c.numbers and not _same_with_one(q, c) and not _same_decades(q, c):
        return "numbers"
    if q.negations != c.negations:
        return "negation"
    if _turned_around(q, c):
        return None
    if any((right, left) in c.relations for left, right in q.relations) or _reversed_route(q, c):
        return "direction"
    if q.passive == c.passive and (_swapped_roles(q.frame, c.frame) or _swapped_across_relation(q, c)):
        return "role_swap"
    if _swapped_wh_roles(q, c):
        return "role_swap"
    if q.passive == c.passive and (_swapped_pronoun_roles(q, c) or _swapped_owners(q, c)):
        return "role_swap"
    if _swapped_subject(q, c):
        return "role_swap"
    if q.quantifiers != c.quantifiers or _other_degree(q, c):
        return "quantity"
    if _narrowed_against_wide(q, c) or _narrowed_against_wide(c, q):
        return "scope"
    if _other_time_from_today(q, c):
        return "time"
    if _aligned_substitution(q.content, c.content):
        return "substitution"
    if _other_action(q, c):
        return "action"
    only_query, only_candidate = set(q.content) - set(c.content), set(c.content) - set(q.content)
    if only_query & q.specific and only_candidate & c.specific:
        return "specific"
    # "good" or "best" on one side only asks for what the other side asks for ("Suggest names" /
    # "Suggest some good names"); "good" against "bad" still differs, by the rules above.
    only_query, only_candidate = only_query - EVALUATIVES, only_candidate - EVALUATIVES
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
