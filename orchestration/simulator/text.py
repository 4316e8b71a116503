"""Deterministic words and vectors: the same request always yields the same reply.

A token is a word with its leading space (the first has none), so the number of tokens a
stream carries, the length of the text and the usage counts always agree.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import zlib
from functools import lru_cache

_VOCABULARY = """
    the a an of to in for on with as by at from into over under about after before between system
    request reply model stream token signal route gateway cache answer question engine provider service
    network latency window context budget limit queue worker task agent tool result value record message
    channel session client server process thread cluster region simple quiet careful steady rapid gentle
    clear bright early late small large open closed warm cold ready stable patient honest useful modern
    plain local remote shared private takes keeps finds moves holds sends reads writes builds checks
    turns shows gives brings follows carries opens closes starts waits grows learns leaves meets returns
    answers river mountain garden harbor library market village station bridge forest meadow valley
    morning evening season journey letter story window lantern compass anchor pebble often rarely always
    gently slowly quickly soon later together nearby again perhaps and but so while because when where
    then also still only even just
"""
WORDS = tuple(_VOCABULARY.split())

DEFAULT_LENGTH_MIN = 20
DEFAULT_LENGTH_SPAN = 21  # lengths 20..40 tokens, about 30 on average
WORD_RE = re.compile(r"\w+", re.UNICODE)


def request_seed(model: str, texts: list[str]) -> int:
    """A stable 64-bit seed from the model name and every text of the request."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(model.encode())
    for text in texts:
        digest.update(b"\x1f")
        digest.update(text.encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest(), "big")


def default_length(seed: int) -> int:
    return DEFAULT_LENGTH_MIN + seed % DEFAULT_LENGTH_SPAN


def generated_tokens(seed: int, count: int) -> list[str]:
    """``count`` tokens of sentence-shaped text chosen by a PRNG seeded with ``seed``."""
    rng = random.Random(seed)
    tokens: list[str] = []
    sentence_left = 0
    for index in range(count):
        word = rng.choice(WORDS)
        if sentence_left == 0:
            word = word.capitalize()
            sentence_left = rng.randint(6, 13)
        sentence_left -= 1
        if sentence_left == 0 or index == count - 1:
            word += "."
        tokens.append(word if index == 0 else " " + word)
    return tokens


def text_tokens(text: str) -> list[str]:
    """Split a fixed text into tokens so that ``"".join(tokens) == text``."""
    return re.findall(r"\s*\S+|\s+$", text)


def count_tokens(text: str) -> int:
    return len(text.split())


def cut_at_stop(tokens: list[str], stops: list[str]) -> tuple[list[str], str | None]:
    """Tokens up to (not including) the earliest stop sequence, and the sequence that matched."""
    text = "".join(tokens)
    found = [(text.find(stop), stop) for stop in stops if stop and stop in text]
    if not found:
        return tokens, None
    cut, stop = min(found)
    return text_tokens(text[:cut]), stop


def json_pieces(arguments: str) -> list[str]:
    """Split a JSON string into stream-sized pieces (how providers stream tool arguments)."""
    return [arguments[i : i + 8] for i in range(0, len(arguments), 8)] or [""]


@lru_cache(maxsize=65536)
def _feature(term: str) -> int:
    return zlib.crc32(term.encode("utf-8", "surrogatepass"))


def embedding_vector(text: str, dimensions: int = 256) -> list[float]:
    """A unit vector from hashed word and word-pair features: similar texts get similar vectors.

    Words weigh 1 and adjacent pairs 0.5, so word order matters a little and texts that differ in
    one content word ("capital of France" / "capital of Spain") stay clearly apart.
    """
    dimensions = max(1, dimensions)
    vector = [0.0] * dimensions
    words = [word.lower() for word in WORD_RE.findall(text)]
    features = [(word, 1.0) for word in words] + [(f"{a} {b}", 0.5) for a, b in itertools.pairwise(words)]
    for term, weight in features:
        hashed = _feature(term)
        vector[hashed % dimensions] += -weight if hashed & 0x80000000 else weight
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [value / norm for value in vector]
