"""LlamaIndex's ``OpenAILike`` with its defaults: ``complete`` goes to ``/v1/completions``
(``is_chat_model=False``), ``chat`` to ``/v1/chat/completions`` through the same completion path.
``python llama_index_client.py SCENARIO``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from llama_index.llms.openai_like import OpenAILike


def _llm() -> OpenAILike:
    return OpenAILike(
        model=os.environ["CHAT_MODEL"], api_base=os.environ["OPENAI_BASE_URL"], api_key=os.environ["OPENAI_API_KEY"]
    )


def complete() -> dict[str, Any]:
    return {"text": _llm().complete("Paul Graham is ").text}


def stream_complete() -> dict[str, Any]:
    return {"text": "".join(piece.delta or "" for piece in _llm().stream_complete("Paul Graham is "))}


SCENARIOS = {f.__name__: f for f in (complete, stream_complete)}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))
