"""The contract every provider adapter keeps.

An adapter turns the normalized types of ``orchestration.types`` into one wire format and
back, over one pooled ``aiohttp.ClientSession`` per provider per event loop. It knows nothing of
Django, retries, breakers or fallbacks: the Orchestrator does those. Every failure leaves an
adapter as a ``ProviderError`` with the right ``ErrorKind``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from orchestration.types import ChatRequest, ChatResponse, Chunk, EmbeddingRequest, EmbeddingResponse


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What an adapter needs to reach its service; built from the ``Provider`` row."""

    name: str
    kind: str
    base_url: str
    api_key: str = ""
    timeout_s: float = 30.0
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallTimeout:
    """Limits for one call, in seconds, already cut to fit the caller's deadline.

    ``total``: the whole call, response body included; ``connect``: opening the connection;
    ``first_token``: until the first byte of the response (the first token for a stream:
    reasoning counts, keep-alive events do not); ``idle``: the longest gap allowed between
    two reads of a stream. Whichever limit is hit first ends the call with
    ``ProviderError(ErrorKind.TIMEOUT)`` naming the limit, and closes the connection.
    """

    total: float
    connect: float = 5.0
    first_token: float = 30.0
    idle: float = 30.0


class Provider(ABC):
    """Base class of the adapters. Subclasses set ``kind`` and implement the three calls."""

    kind: str = ""
    #: True where the service only pretends (the simulator): the UI labels its replies.
    simulated: bool = False
    #: True when every read of ``stream`` ends within ``timeout``'s limits by the adapter's own
    #: doing (the first chunk's within ``first_token``); the Orchestrator then sets no time limit
    #: of its own on any chunk.
    bounds_stream_reads: bool = False

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    async def complete(self, request: ChatRequest, *, timeout: CallTimeout) -> ChatResponse:
        """Send ``request`` (whose ``model`` is the upstream id) and return the whole reply.

        Raises ``ProviderError`` for every failure, including ``ErrorKind.TIMEOUT`` when
        ``timeout`` is exceeded.
        """

    @abstractmethod
    def stream(self, request: ChatRequest, *, timeout: CallTimeout) -> AsyncIterator[Chunk]:
        """Yield the reply as chunks, the last with ``finish_reason`` and (where the service
        reports it) ``usage``. Failures before or during the stream raise ``ProviderError``;
        a stream that ends without a finish reason raises ``ErrorKind.MALFORMED``, one whose
        connection breaks ``ErrorKind.CONNECTION``. Closing the iterator early (``aclose``)
        closes the upstream connection, which the service sees as the client going away."""

    @abstractmethod
    async def embed(self, request: EmbeddingRequest, *, timeout: CallTimeout) -> EmbeddingResponse:
        """Return one vector per input, in order. Providers without embeddings raise
        ``ProviderError(ErrorKind.BAD_REQUEST)``."""

    async def aclose(self) -> None:  # noqa: B027 - an optional hook, a no-op unless an adapter pools
        """Close the pooled connections of this adapter (all event loops). Optional: the pool
        of each event loop also closes when that loop shuts down (``asyncio.run`` ending)."""
