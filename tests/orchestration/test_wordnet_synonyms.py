"""The near-miss guard reads two words as one when WordNet puts them in a synset among their most
frequent senses, or derives one from the other in the first sense of each
(orchestration/caching/data/wordnet_synonyms.txt, written by tests/bench/wordnet_synonyms.py).

The pairs are written here for the reading; none is taken from tests/data/semantic_eval.jsonl.
"""

from __future__ import annotations

import pytest

from orchestration.caching.lexicon import WORDNET_PATH
from orchestration.caching.nearmiss import equivalent, near_miss_reason


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("How do I get red wine out of a sofa?", "How do I get red wine out of a couch?"),
        ("Who was the architect of the Chrysler Building?", "Who was the designer of the Chrysler Building?"),
        ("What papers do I need to rent a flat?", "What documents do I need to rent a flat?"),
        ("Is a necktie required at the gala?", "Is a tie required at the gala?"),
        ("Can the sensor be deactivated from the app?", "Can the sensor be inactivated from the app?"),
        # A word derived from the other in a first sense of each.
        ("When did Google acquire YouTube?", "When was the acquisition of YouTube by Google?"),
    ],
)
def test_words_that_share_a_frequent_synset_read_as_one(cached: str, asked: str) -> None:
    assert near_miss_reason(asked, cached) is None
    assert equivalent(asked, cached)


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        # Kinds of one thing (co-hyponyms) are not synonyms.
        ("How do I get red wine out of a sofa?", "How do I get red wine out of a chair?"),
        ("Can I buy a flat in Lisbon as a foreigner?", "Can I rent a flat in Lisbon as a foreigner?"),
        ("Is a necktie required at the gala?", "Is a scarf required at the gala?"),
        # Closed classes stay apart, though "minute" and "second" share a synset ("just a second").
        ("What is 5 hours in minutes?", "What is 5 hours in seconds?"),
        ("How many bytes are in a megabyte?", "How many bytes are in a mebibyte?"),
        # A noun in "-ing" reads as its verb: "going" and "leaving" share a noun synset only.
        ("Is there a toll going into Boston?", "Is there a toll leaving Boston?"),
        # Two how-to questions about other verbs: WordNet's "print" is "publish", an app's is not.
        ("How do I print a Google Doc?", "How do I publish a Google Doc?"),
        # Two countries whose words are derived from one another only in rarer senses.
        ("What is the capital of Niger?", "What is the capital of Nigeria?"),
        # Antonyms.
        ("How do I open a port on my router?", "How do I close a port on my router?"),
    ],
)
def test_co_hyponyms_closed_classes_and_other_actions_stay_apart(cached: str, asked: str) -> None:
    assert near_miss_reason(asked, cached) is not None
    assert not equivalent(asked, cached)


def test_the_shipped_table_is_what_its_script_writes_from_wordnet() -> None:
    """The table holds the guard's stems: a change to the stemming must rewrite it
    (``python -m tests.bench.wordnet_synonyms``)."""
    from tests.bench import wordnet_synonyms

    directory = wordnet_synonyms.wordnet_directory()
    groups = wordnet_synonyms.table(directory, wordnet_synonyms.DEFAULT_SENSES, wordnet_synonyms.DEFAULT_POS)
    groups += wordnet_synonyms.derivations(directory, wordnet_synonyms.DEFAULT_DERIVED_SENSES)
    expected = wordnet_synonyms.text(groups, directory, wordnet_synonyms.DEFAULT_SENSES)
    assert WORDNET_PATH.read_text(encoding="utf-8") == expected
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in expected
