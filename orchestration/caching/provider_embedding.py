"""How the semantic cache embeds with a provider's model: through the Orchestrator, which installs
its ``embed`` here (``embed_through``) when it is imported. So the caches need nothing of the
Orchestrator, and this module needs nothing at all (no numpy: importing it costs nothing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from orchestration.types import EmbeddingRequest

EmbedFunction = Callable[[EmbeddingRequest], Awaitable[list[list[float]]]]
_installed: EmbedFunction | None = None


def embed_through(function: EmbedFunction) -> None:
    """Name the function that embeds with a model of the registry (the Orchestrator's)."""
    global _installed
    _installed = function


def provider_embedding() -> EmbedFunction:
    if _installed is None:
        raise RuntimeError("no embedding function is installed (orchestration.orchestrator installs one)")
    return _installed
