"""Any server that speaks OpenAI's Chat Completions at a ``base_url``: Ollama, vLLM, the
llama.cpp server, LM Studio, OpenRouter.

They follow the format loosely, so this adapter sends what they all accept (``max_tokens``
rather than ``max_completion_tokens``; no ``Authorization`` header when no key is configured)
and reads leniently: missing usage counts as zero, missing ids are made up, ``reasoning_content``
is not part of the reply but counts as a sign of life for the first-token limit, and a stream
that ends with ``[DONE]`` but no finish reason is taken as a normal stop.
"""

from __future__ import annotations

from orchestration.providers.openai import OpenAIProvider


class OpenAICompatibleProvider(OpenAIProvider):
    kind = "openai-compatible"
    # Ollama's address, the most common local server; a configured base_url always wins.
    default_base_url = "http://127.0.0.1:11434/v1"
    max_tokens_field = "max_tokens"
    tolerate_missing_finish = True
