"""Secrets taken out of text before it is logged: provider keys, bearer tokens, our own API keys.

Upstream error bodies are written to the request log and the server log for staff, and providers
echo what they were sent: a masked key (``sk-test-********1b2c``), an ``Authorization`` header.
``redact`` replaces anything shaped like a key, and the exact values of the provider secrets this
process knows (the allowed ``*_API_KEY`` variables), with ``[redacted]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from orchestration.secrets import api_key_env_allowed

REDACTED = "[redacted]"

_SHAPES = (
    re.compile(r"\b(?:sk|sy|rk|pk)-[A-Za-z0-9_\-*.]{6,}"),  # OpenAI, Anthropic (sk-ant-), ours (sy-), masked ones
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),  # Google API keys
    re.compile(r"\b(?:ghp|gho|xox[abp])[-_][A-Za-z0-9\-]{10,}"),  # common token prefixes
    re.compile(r"(?i)\bbearer\s+[^\s\"',;]{6,}"),
    re.compile(
        r"(?i)(\b(?:api[_-]?key|x-api-key|authorization|access[_-]?token|secret)\b[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]{6,}"
    ),
)


def _known_secrets() -> Iterable[str]:
    for name, value in os.environ.items():
        if len(value) >= 8 and api_key_env_allowed(name):
            yield value


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every key-shaped string and every known secret replaced by ``[redacted]``."""
    for secret in (*secrets, *_known_secrets()):
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    for shape in _SHAPES:
        text = shape.sub(lambda match: (match.group(1) if match.lastindex else "") + REDACTED, text)
    return text
