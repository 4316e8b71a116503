"""The provider adapters, found by kind and imported only when first used.

``provider_for(config)`` is how the rest of Switchyard gets an adapter: one instance per
provider name, so its pooled connections are shared by every call; when the provider's
settings change, a new adapter takes over and the old one closes its pools once its calls
in flight have finished.
"""

from __future__ import annotations

import importlib
import threading

from orchestration.providers.base import CallTimeout, Provider, ProviderConfig

__all__ = [
    "CallTimeout",
    "Provider",
    "ProviderConfig",
    "adapters_aclose",
    "adapters_preload",
    "provider_class",
    "provider_for",
    "provider_kinds",
]

_CLASSES = {
    "openai": "orchestration.providers.openai.OpenAIProvider",
    "openai-compatible": "orchestration.providers.openai_compatible.OpenAICompatibleProvider",
    "anthropic": "orchestration.providers.anthropic.AnthropicProvider",
    "gemini": "orchestration.providers.gemini.GeminiProvider",
    "simulator": "orchestration.providers.simulator.SimulatorProvider",
}

_adapters: dict[str, Provider] = {}
_lock = threading.Lock()


def provider_kinds() -> tuple[str, ...]:
    return tuple(_CLASSES)


def provider_class(kind: str) -> type[Provider]:
    """The adapter class for ``kind``; ``ValueError`` for a kind nobody implemented."""
    path = _CLASSES.get(kind)
    if path is None:
        raise ValueError(f"Unknown provider kind {kind!r}; known kinds: {', '.join(_CLASSES)}.")
    module_name, _, class_name = path.rpartition(".")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def adapters_preload() -> None:
    """Import every adapter (and with them aiohttp) and build the TLS context they share: the first
    model call of a process would otherwise pay for both, a tenth of a second or more (loading
    certifi's roots alone took 26 ms on a quiet core, 133 ms on a busy one). Processes call this at start."""
    for kind in provider_kinds():
        provider_class(kind)
    from orchestration.providers.transport import tls_context

    tls_context()


def provider_for(config: ProviderConfig) -> Provider:
    """The process's adapter for the provider ``config.name``, rebuilt when ``config`` changed."""
    current = _adapters.get(config.name)
    if current is not None and current.config == config:
        return current
    with _lock:
        current = _adapters.get(config.name)
        if current is not None and current.config == config:
            return current
        adapter = provider_class(config.kind)(config)
        _adapters[config.name] = adapter
    if current is not None:
        _retire(current)
    return adapter


def _retire(adapter: Provider) -> None:
    from orchestration.providers.transport import HttpProvider

    if isinstance(adapter, HttpProvider):
        adapter.retire()


async def adapters_aclose() -> None:
    """Close every adapter's pooled connections (at shutdown, and between tests)."""
    with _lock:
        adapters = list(_adapters.values())
        _adapters.clear()
    for adapter in adapters:
        await adapter.aclose()
