"""OpenTelemetry traces: one trace per complaint across the four services, when enabled.

Off unless an OTLP endpoint is configured (``TelemetrySettings``): then no tracer provider,
no exporter and no middleware exist, and what remains on the hot path is one context
variable read per publish. On, the maintained instrumentations do the work:

- FastStream's ``KafkaTelemetryMiddleware`` opens a span per consumed message and per
  publish and carries W3C ``traceparent`` in the Kafka headers;
- the FastAPI instrumentation opens the server span of each request (health, readiness and
  metrics excluded); the httpx instrumentation the client span of each outbound call and
  its ``traceparent``;
- the PyMongo instrumentation's ``CommandTracer``, given to each client as a command
  listener (it works with ``AsyncMongoClient``: the listener runs in the task that awaits
  the command, so each command's span has the right parent).

FastStream makes one span per *batch*, in a trace of its own with links to the records'
traces. The batch consumers (routing, tracker, notifier) would therefore cut every
complaint's trace in two, so :class:`RecordSpans` adds one span per record, child of the
record's ``traceparent``, and :func:`within` parents each publish under the span of the
complaint it is about. Intake's group commit does the same for filings: each arrival
carries the span it was accepted under (:func:`current_span`, :func:`following`).

Resident data never leaves in a span: :class:`Redacting` exports only attributes on an
allow list, URLs without their query and with the route template for the path (a path
can carry an Open311 token), and exception events with their type only (a validation
error's message quotes the input).
"""

import contextlib
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from faststream.middlewares import BaseMiddleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.settings import TelemetrySettings

INSTRUMENTATION = "sotong"
T = TypeVar("T")
_PROPAGATOR = TraceContextTextMapPropagator()


def provider(
    service: str, settings: TelemetrySettings, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """The service's tracer provider, exporting through :class:`Redacting`; None when off.
    ``exporter`` replaces the OTLP one (tests give an in-memory exporter)."""
    if exporter is None:
        if not settings.enabled:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert settings.exporter_otlp_endpoint is not None
        exporter = OTLPSpanExporter(
            endpoint=settings.exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        )
    tracer_provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.namespace": "sotong"}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    tracer_provider.add_span_processor(BatchSpanProcessor(Redacting(exporter)))
    return tracer_provider


def install_process_wide(tracer_provider: TracerProvider) -> None:
    """What can only be set once per process: the global provider (first one wins) and
    the httpx instrumentation, which patches every client of the process."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    trace.set_tracer_provider(tracer_provider)
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=tracer_provider)


def kafka_middlewares(tracer_provider: TracerProvider | None) -> list[Any]:
    """The broker's tracing middlewares, outermost first; none when off."""
    if tracer_provider is None:
        return []
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
    from opentelemetry.metrics import NoOpMeterProvider

    tracer = tracer_provider.get_tracer(INSTRUMENTATION)

    def record_spans(msg: Any, /, *, context: Any) -> "RecordSpans":
        return RecordSpans(msg, context=context, tracer=tracer)

    return [
        # metrics stay Prometheus's (services.metrics): FastStream's are not exported
        KafkaTelemetryMiddleware(
            tracer_provider=tracer_provider, meter_provider=NoOpMeterProvider()
        ),
        record_spans,
    ]


def mongo_listeners(tracer_provider: TracerProvider | None) -> list[Any]:
    """The PyMongo instrumentation's listener for one client (command names only, never
    the command's documents); none when off."""
    if tracer_provider is None:
        return []
    from opentelemetry.instrumentation.pymongo import CommandTracer

    return [CommandTracer(tracer_provider.get_tracer(INSTRUMENTATION), capture_statement=False)]


def instrument_http(app: Any, tracer_provider: TracerProvider | None) -> None:
    """Server spans for every request but health, readiness and metrics."""
    if tracer_provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls="/healthz,/readyz,/metrics",
        exclude_spans=["receive", "send"],
    )


# --- one trace per complaint through batches ---------------------------------------------

_NOTHING: Mapping[str, Span] = MappingProxyType({})
_followed: ContextVar[Mapping[str, Span]] = ContextVar("sotong_followed", default=_NOTHING)


def current_span() -> Span:
    """The span now current (an invalid one when tracing is off)."""
    return trace.get_current_span()


@contextlib.contextmanager
def following(spans: Mapping[str, Span]) -> Iterator[None]:
    """While inside, a publish about complaint ``id`` is parented under ``spans[id]``."""
    token = _followed.set(spans)
    try:
        yield
    finally:
        _followed.reset(token)


class within:
    """The span this complaint's work is followed under, made current; else nothing. A
    class, not a generator: when tracing is off it costs a dictionary look-up per publish."""

    __slots__ = ("_span", "_token")

    def __init__(self, complaint_id: str | None) -> None:
        self._span = _followed.get().get(complaint_id) if complaint_id else None
        self._token: Token[Context] | None = None

    def __enter__(self) -> None:
        span = self._span
        if span is not None and span.get_span_context().is_valid:
            self._token = otel_context.attach(trace.set_span_in_context(span))

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None


async def under(complaint_id: str | None, work: Awaitable[T]) -> T:
    """``work`` awaited :func:`within` the complaint's span: one complaint's share of a
    batch (the notifier's sends to one complaint's recipients) in that complaint's trace."""
    with within(complaint_id):
        return await work


def trace_id(complaint_id: str | None = None) -> str | None:
    """The trace id a log line belongs to: the followed complaint's, else the current one."""
    span = _followed.get().get(complaint_id) if complaint_id else None
    context = (span or trace.get_current_span()).get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class RecordSpans(BaseMiddleware):
    """One span per record of a consumed batch, in the trace its ``traceparent`` names,
    linked to the batch's span; publishes about that record's complaint go under it."""

    def __init__(self, msg: Any, /, *, context: Any, tracer: trace.Tracer) -> None:
        super().__init__(msg, context=context)
        self.tracer = tracer

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        raw = msg.raw_message
        if not isinstance(raw, tuple | list):
            return await call_next(msg)  # FastStream's span already continues the trace
        batch = trace.get_current_span().get_span_context()
        spans: dict[str, Span] = {}
        for record in raw:
            key = record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else None
            carrier = {
                str(k): v.decode("utf-8", "replace")
                for k, v in (record.headers or ())
                if str(k) == "traceparent" and isinstance(v, bytes)
            }
            if key is None or key in spans or not carrier:
                continue
            spans[key] = self.tracer.start_span(
                f"{record.topic} process",
                context=_PROPAGATOR.extract(carrier),
                kind=SpanKind.CONSUMER,
                links=[Link(batch)] if batch.is_valid else None,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation": "process",
                    "messaging.destination.name": record.topic,
                    "messaging.kafka.destination.partition": record.partition,
                    "messaging.kafka.message.offset": record.offset,
                    "messaging.kafka.message.key": key,
                    "messaging.batch.message_count": len(raw),
                },
            )
        try:
            with following(spans):
                return await call_next(msg)
        except Exception as exc:
            for span in spans.values():
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            for span in spans.values():
                span.end()


# --- redaction ---------------------------------------------------------------------------

SAFE_PREFIXES = ("messaging.", "sotong.", "otel.", "rpc.")
SAFE_KEYS = frozenset(
    {
        "http.method",
        "http.request.method",
        "http.status_code",
        "http.response.status_code",
        "http.route",
        "http.scheme",
        "http.flavor",
        "url.scheme",
        "network.protocol.version",
        "server.address",
        "server.port",
        "net.host.name",
        "net.host.port",
        "net.peer.name",
        "net.peer.port",
        "db.system",
        "db.system.name",
        "db.name",
        "db.namespace",
        "db.operation",
        "db.operation.name",
        "db.statement",
        "db.query.text",
        "db.mongodb.collection",
        "db.collection.name",
        "error.type",
        "exception.type",
        "exception.escaped",
    }
)
"""Attributes a span keeps. Not kept, among others: client addresses (``client.address``,
``net.peer.ip``, ``http.client_ip``) and user agents, which point at a resident. The
PyMongo statement is the command name only (``capture_statement=False``)."""

URL_KEYS = ("http.url", "url.full", "http.target", "url.path")


def safe_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The allowed attributes, URLs reduced to scheme, host and route (or path)."""
    kept = {
        k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v  # a Kafka key
        for k, v in attributes.items()
        if k in SAFE_KEYS or k.startswith(SAFE_PREFIXES)
    }
    route = attributes.get("http.route")
    for key in URL_KEYS:
        value = attributes.get(key)
        if isinstance(value, str):
            kept[key] = _without_query(value, route if isinstance(route, str) else None)
    return kept


def _without_query(url: str, route: str | None) -> str:
    parts = urlsplit(url)
    path = route or parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _safe_span(span: ReadableSpan) -> ReadableSpan:
    events = [
        Event(
            event.name,
            safe_attributes(event.attributes or {}),
            timestamp=event.timestamp,
        )
        for event in span.events
    ]
    status = span.status
    if status.description:  # an exception's message, maybe quoting the input
        status = Status(status.status_code)
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=safe_attributes(span.attributes or {}),
        events=events,
        links=[Link(link.context, safe_attributes(link.attributes or {})) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class Redacting(SpanExporter):
    """Exports spans with :func:`safe_attributes` only: nothing a resident wrote or is
    identified by reaches the trace backend."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([_safe_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)
