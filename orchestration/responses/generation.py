"""One response generated over the Orchestrator's stream, as Responses API events.

Shared by the two ways a response runs: streamed or awaited in its request (``apis``), and in
an RQ worker for background mode (``jobs``). A failure after the stream began cannot change an
HTTP status any more: it ends the events with ``response.failed``, never a silent clean end.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator

from orchestration.errors import ServiceError
from orchestration.orchestrator import ReplyStream
from orchestration.responses.events import Event, ResponseEventWriter
from orchestration.types import Chunk

logger = logging.getLogger("switchyard.api")


async def response_events(
    writer: ResponseEventWriter, stream: ReplyStream, chunks: AsyncIterator[Chunk], first: Chunk | None
) -> AsyncGenerator[list[Event], None]:
    """Batches of events: the opening with the first chunk's, one batch per later chunk, the end."""
    try:
        events = writer.opening()
        finish_reason = "stop"
        if first is not None:
            events += writer.chunk(first)
            finish_reason = first.finish_reason or finish_reason
            yield events
            events = []
            async for chunk in chunks:
                finish_reason = chunk.finish_reason or finish_reason
                if batch := writer.chunk(chunk):
                    yield batch
        yield [*events, *writer.close(finish_reason, stream.usage)]
    except ServiceError as error:
        yield writer.fail(error.code, error.message)
    except Exception:
        logger.exception("A response stream failed after it began (response %s)", writer.draft.id)
        yield writer.fail("server_error", "The response failed.")
