"""OpenTelemetry traces: off unless an OTLP endpoint is set (docs/operations.md, "Traces and logs").

``tracing_start`` is called once per process (the web process from ``project.asgi``, each RQ
worker from its worker class). It builds the SDK's tracer provider from the standard ``OTEL_*``
variables (the exporters read their endpoint, headers and timeout; the provider its sampler; the
resource its service name and attributes), exports in batches over OTLP/HTTP or OTLP/gRPC, and
instruments aiohttp's client: every provider call becomes an HTTP client span that carries
``traceparent`` upstream. While tracing is off, ``tracer()`` is None and every helper of this
package returns before doing anything, so a call pays one comparison; the SDK (about 90 ms of
imports) is not even loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.conf import settings
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

SERVICE_NAME = "switchyard"
# Switchyard's own attributes, beside the OpenTelemetry conventions.
ROLE = "switchyard.process.role"
REQUEST_ID = "switchyard.request_id"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def tracer() -> Tracer | None:
    """The process's tracer, or None while tracing is off."""
    return _tracer


def content_captured() -> bool:
    """Whether prompt and completion text go on spans (an operator's opt-in)."""
    return bool(settings.TRACING["CAPTURE_CONTENT"])


def tracing_start(role: str) -> bool:
    """Start exporting this process's spans when tracing is configured; True when it is on. A
    second call changes nothing (a forked work horse keeps its parent's provider)."""
    global _tracer, _provider
    if _tracer is not None or not settings.TRACING["ENABLED"]:
        return _tracer is not None
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=_resource(role))
    provider.add_span_processor(BatchSpanProcessor(_exporter(str(settings.TRACING["PROTOCOL"]))))
    trace.set_tracer_provider(provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    _provider, _tracer = provider, provider.get_tracer(SERVICE_NAME)
    logger.info("tracing on: OTLP over %s, service %s", settings.TRACING["PROTOCOL"], _service_name(provider))
    return True


def tracing_preload() -> None:
    """Import the SDK, exporters and instrumentation now (an RQ worker, before it forks work horses
    that each start tracing): each job would otherwise pay the imports again."""
    if not settings.TRACING["ENABLED"]:
        return
    import opentelemetry.instrumentation.aiohttp_client
    import opentelemetry.sdk.trace.export

    # The exporter's module only: a gRPC channel made before a fork must not be used after it.
    if settings.TRACING["PROTOCOL"] == "grpc":
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter
    else:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401


def tracing_flush(timeout_s: float = 5.0) -> None:
    """Export what is batched now: a work horse leaves through ``os._exit``, which runs no exit hook."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def _resource(role: str) -> Resource:
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({ROLE: role, "process.pid": os.getpid()})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    return resource


def _service_name(provider: TracerProvider) -> str:
    return str(provider.resource.attributes.get("service.name", ""))


def _exporter(protocol: str) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


# --- spans -----------------------------------------------------------------------------------


def span_start(
    name: str, attributes: Mapping[str, Any], *, parent: Span | None = None, kind: Any = None
) -> Span | None:
    """A started span, child of ``parent`` (else of the current span); None while tracing is off.
    The caller ends it (``span_end``)."""
    if _tracer is None:
        return None
    context = trace.set_span_in_context(parent) if parent is not None else None
    return _tracer.start_span(
        name, context=context, kind=kind or trace.SpanKind.INTERNAL, attributes=_present(attributes)
    )


def span_end(
    span: Span | None, attributes: Mapping[str, Any] | None = None, error: BaseException | None = None
) -> None:
    if span is None:
        return
    if attributes:
        span.set_attributes(_present(attributes))
    if error is not None:
        span_failed(span, error, str((attributes or {}).get("error.type") or ""))
    span.end()


def span_failed(span: Span, error: BaseException, error_type: str = "") -> None:
    span.set_attribute("error.type", error_type or type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, str(error)[:500]))


@contextmanager
def span_current(span: Span | None) -> Iterator[None]:
    """Make ``span`` the current span inside the block (its children, outgoing ``traceparent``).
    Only around code that does not yield to other tasks' context (no ``yield`` in a generator)."""
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield


def span_set(attributes: Mapping[str, Any]) -> None:
    """Set attributes on the current span (the edge's, in a view), when tracing is on."""
    if _tracer is not None:
        trace.get_current_span().set_attributes(_present(attributes))


def trace_ids() -> tuple[str, str]:
    """The current trace and span ids in hex, or empty strings outside any recorded span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# --- across processes ------------------------------------------------------------------------


def trace_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``), to hand to another process;
    empty while tracing is off."""
    carrier: dict[str, str] = {}
    if _tracer is not None:
        propagate.inject(carrier)
    return carrier


@contextmanager
def trace_continued(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Inside the block, spans continue the trace that ``carrier`` came from."""
    if _tracer is None or not carrier:
        yield
        return
    token = otel_context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        otel_context.detach(token)


def _present(attributes: Mapping[str, Any]) -> dict[str, Any]:
    # OpenTelemetry refuses None values; an attribute we do not know is left out.
    return {key: value for key, value in attributes.items() if value is not None}
