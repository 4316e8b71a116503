"""The demo registry: simulated models, plus the real providers this machine can reach.

``demo.toml`` always loads. ``openai.toml``, ``anthropic.toml`` and ``gemini.toml`` load when
their API key variable is set; a local Ollama server, when one answers, adds its models as an
OpenAI-compatible provider. Everything goes through the same validation as ``llmconfig load``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import httpx

from orchestration.llmconfig import ConfigDocument, config_parse, config_read

CONFIG_DIR = Path(__file__).resolve().parent
DEMO_FILE = CONFIG_DIR / "demo.toml"
HOSTED_FILES = {
    "OPENAI_API_KEY": CONFIG_DIR / "openai.toml",
    "ANTHROPIC_API_KEY": CONFIG_DIR / "anthropic.toml",
    "GEMINI_API_KEY": CONFIG_DIR / "gemini.toml",
}
OLLAMA_URL = "http://127.0.0.1:11434"


def demo_documents(*, environ: Mapping[str, str] | None = None, ollama_url: str = OLLAMA_URL) -> list[ConfigDocument]:
    environ = os.environ if environ is None else environ
    documents = [config_read(DEMO_FILE)]
    documents += [config_read(path) for variable, path in HOSTED_FILES.items() if environ.get(variable)]
    ollama = ollama_document(ollama_url)
    if ollama is not None:
        documents.append(ollama)
    return documents


def ollama_models(base_url: str, *, timeout_s: float = 0.5) -> list[str]:
    """The model names a local Ollama server lists, or [] when none answers in time."""
    try:
        response = httpx.get(f"{base_url}/api/tags", timeout=timeout_s)
        response.raise_for_status()
        listed = response.json().get("models", [])
    except (httpx.HTTPError, ValueError, AttributeError):
        return []
    if not isinstance(listed, list):
        return []
    return sorted({item["name"] for item in listed if isinstance(item, dict) and isinstance(item.get("name"), str)})


def ollama_document(base_url: str) -> ConfigDocument | None:
    names = ollama_models(base_url)
    if not names:
        return None
    lines = [
        "[providers.ollama]",
        'kind = "openai-compatible"',
        f"base_url = {json.dumps(base_url + '/v1')}",
        # Local models on a CPU can take long to load and answer.
        "timeout_s = 120.0",
        "max_retries = 1",
        "",
    ]
    for name in names:
        capability = "embeddings" if "embed" in name else "chat"
        lines += [
            f"[models.{json.dumps(name)}]",
            'provider = "ollama"',
            f"upstream = {json.dumps(name)}",
            'description = "Local model served by Ollama."',
            f'capabilities = ["{capability}"]',
            "",
        ]
    return config_parse("\n".join(lines), source=f"Ollama at {base_url}")
