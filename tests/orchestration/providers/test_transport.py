"""Pooling: one client per adapter per event loop, reused across calls and closed with its loop;
and the adapter registry that hands out one adapter per provider."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import psutil
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestration.providers import adapters_aclose, provider_class, provider_for, provider_kinds
from orchestration.providers.anthropic import AnthropicProvider
from orchestration.providers.base import ProviderConfig
from orchestration.providers.gemini import GeminiProvider
from orchestration.providers.openai import OpenAIProvider
from orchestration.providers.openai_compatible import OpenAICompatibleProvider
from orchestration.providers.simulator import SimulatorProvider
from orchestration.providers.transport import HttpProvider, tls_context
from orchestration.types import ErrorKind, ProviderError
from tests.conftest import Simulator
from tests.orchestration.providers.conftest import ROOMY, AdapterFactory, ask


def connections_to(url: str) -> set[int]:
    """Local ports of this process's open TCP connections to ``url``'s port."""
    port = urlsplit(url).port
    return {
        conn.laddr.port
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    }


async def test_sequential_calls_reuse_one_pooled_connection(make_adapter: AdapterFactory, simulator: Simulator) -> None:
    adapter = make_adapter("openai")
    before = connections_to(simulator.url)
    used: set[int] = set()

    for _ in range(5):
        await adapter.complete(ask(), timeout=ROOMY)
        used |= connections_to(simulator.url)
        async for _chunk in adapter.stream(ask(), timeout=ROOMY):
            pass
        used |= connections_to(simulator.url)

    assert len(used - before) == 1
    assert len(adapter.clients) == 1


async def test_concurrent_calls_share_the_loops_client(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter("anthropic")

    await asyncio.gather(*(adapter.complete(ask(), timeout=ROOMY) for _ in range(20)))

    assert len(adapter.clients) == 1
    assert await adapter.clients.get() is await adapter.clients.get()


def test_each_event_loop_gets_its_own_client_closed_when_the_loop_ends(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter("gemini")

    async def one_job() -> aiohttp.ClientSession:
        await adapter.complete(ask(), timeout=ROOMY)
        return await adapter.clients.get()

    # As an RQ worker does: every job in a fresh loop of its own.
    first = asyncio.run(one_job())
    second = asyncio.run(one_job())

    assert first is not second
    assert first.closed and second.closed


def test_a_loop_in_another_thread_keeps_its_own_client(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter("openai")
    clients: list[aiohttp.ClientSession] = []

    async def job() -> None:
        await adapter.complete(ask(), timeout=ROOMY)
        clients.append(await adapter.clients.get())

    threads = [threading.Thread(target=asyncio.run, args=(job(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(clients) == 2 and clients[0] is not clients[1]
    assert all(client.closed for client in clients)


async def test_aclose_closes_the_pool(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter("openai")
    await adapter.complete(ask(), timeout=ROOMY)
    client = await adapter.clients.get()

    await adapter.aclose()

    assert client.closed
    assert len(adapter.clients) == 0
    await adapter.complete(ask(), timeout=ROOMY)  # a later call opens a fresh pool
    assert not (await adapter.clients.get()).closed


# The registry --------------------------------------------------------------------------------


@pytest.fixture
async def registry() -> AsyncIterator[None]:
    await adapters_aclose()
    yield
    await adapters_aclose()


def test_every_kind_has_its_adapter_class() -> None:
    assert {kind: provider_class(kind) for kind in provider_kinds()} == {
        "openai": OpenAIProvider,
        "openai-compatible": OpenAICompatibleProvider,
        "anthropic": AnthropicProvider,
        "gemini": GeminiProvider,
        "simulator": SimulatorProvider,
    }
    assert [kind for kind in provider_kinds() if provider_class(kind).simulated] == ["simulator"]


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'bedrock'"):
        provider_class("bedrock")


async def test_provider_for_gives_one_adapter_per_provider(registry: None, simulator: Simulator) -> None:
    config = ProviderConfig(name="sim", kind="simulator", base_url=f"{simulator.url}/v1")

    adapter = provider_for(config)

    assert provider_for(replace(config)) is adapter
    assert provider_for(replace(config, name="sim-2")) is not adapter
    assert isinstance(adapter, SimulatorProvider)


async def test_a_changed_config_replaces_the_adapter_and_the_old_one_closes_after_its_calls(
    registry: None, simulator: Simulator
) -> None:
    config = ProviderConfig(name="sim", kind="simulator", base_url=f"{simulator.url}/v1")
    old = provider_for(config)
    assert isinstance(old, HttpProvider)
    stream = old.stream(ask(), timeout=ROOMY)
    first = await anext(stream)
    old_client = await old.clients.get()

    new = provider_for(replace(config, timeout_s=12.0))
    rest = [chunk async for chunk in stream]  # the call in flight finishes on the old pool
    await asyncio.sleep(0.05)

    assert new is not old and new.config.timeout_s == 12.0
    assert first.delta and rest[-1].finish_reason == "stop"
    assert old_client.closed
    assert (await new.complete(ask(), timeout=ROOMY)).content


# TLS ------------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no public root vouches for, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchyard test upstream")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "upstream.pem", directory / "upstream.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
async def tls_upstream(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An HTTPS server answering every request as OpenAI's chat completions would; its URL and
    its certificate."""
    cert_path, key_path = _self_signed(tmp_path)

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(
            {
                "id": "chatcmpl-tls",
                "object": "chat.completion",
                "model": "sim-model",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
            }
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}", cert_path
    await runner.cleanup()


@pytest.fixture
def roots_reset() -> Iterator[None]:
    tls_context.cache_clear()
    yield
    tls_context.cache_clear()


async def test_an_upstream_whose_certificate_no_trusted_root_signed_is_a_connection_error(
    make_adapter: AdapterFactory, tls_upstream: tuple[str, Path], roots_reset: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    adapter = make_adapter("openai", url=tls_upstream[0])

    with pytest.raises(ProviderError) as failure:
        await adapter.complete(ask(), timeout=ROOMY)

    assert failure.value.kind is ErrorKind.CONNECTION and "certificate" in str(failure.value).lower()


async def test_ssl_cert_file_names_the_roots_the_adapters_trust(
    make_adapter: AdapterFactory, tls_upstream: tuple[str, Path], roots_reset: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, certificate = tls_upstream
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    adapter = make_adapter("openai", url=url)

    response = await adapter.complete(ask(), timeout=ROOMY)

    assert response.content == "Paris."
