"""litellm as a client of an OpenAI-compatible gateway, as its docs show: ``openai/<model>`` with
``api_base``. ``python litellm_client.py SCENARIO``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import litellm

CHAT = f"openai/{os.environ['CHAT_MODEL']}"
BASE = {"api_base": os.environ["OPENAI_BASE_URL"], "api_key": os.environ["OPENAI_API_KEY"]}


def completion() -> dict[str, Any]:
    response = litellm.completion(model=CHAT, messages=[{"role": "user", "content": "Say hello."}], **BASE)
    return {"text": response.choices[0].message.content, "usage": response.usage.total_tokens}


def stream() -> dict[str, Any]:
    chunks = litellm.completion(model=CHAT, messages=[{"role": "user", "content": "Say hello."}], stream=True, **BASE)
    return {"text": "".join(chunk.choices[0].delta.content or "" for chunk in chunks)}


def embedding() -> dict[str, Any]:
    response = litellm.embedding(model=f"openai/{os.environ['EMBEDDING_MODEL']}", input=["hello"], **BASE)
    return {"dimensions": len(response.data[0]["embedding"])}


SCENARIOS = {f.__name__: f for f in (completion, stream, embedding)}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))
