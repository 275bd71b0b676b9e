"""Tracing is off unless configured; on, spans keep no resident data and logs carry the
trace id. (One trace across the four services: tests/service/test_traces.py.)"""

import json
import logging
from collections.abc import Iterator

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from schemas import topics
from schemas.events import ComplaintStatusChanged
from services import telemetry
from services.broker import make_broker, publish_event, topic_name
from services.logs import JsonFormatter
from services.metrics import KitMetrics
from services.settings import KafkaSettings, RetrySettings, TelemetrySettings

OTEL_VARIABLES = (
    "SOTONG_OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "SOTONG_OTEL_SAMPLE_RATIO",
)


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


def memory_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(telemetry.Redacting(exporter)))
    return provider


def broker(provider: TracerProvider | None) -> KafkaBroker:
    built, _ = make_broker(
        service="routing",
        kafka=KafkaSettings(),
        retry=RetrySettings(),
        registry=(registry := CollectorRegistry()),
        metrics=KitMetrics(registry),
        tracer_provider=provider,
    )
    return built


@pytest.mark.usefixtures("no_otel_env")
def test_off_by_default_nothing_is_built() -> None:
    settings = TelemetrySettings()
    assert not settings.enabled
    assert telemetry.provider("intake", settings) is None
    assert telemetry.kafka_middlewares(None) == []
    assert telemetry.mongo_listeners(None) == []
    middlewares = broker(None).middlewares
    assert not any(isinstance(m, KafkaTelemetryMiddleware) for m in middlewares)


@pytest.mark.parametrize(
    "variable", ["SOTONG_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
)
@pytest.mark.usefixtures("no_otel_env")
def test_an_otlp_endpoint_turns_it_on(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "http://jaeger:4318")
    settings = TelemetrySettings()
    assert settings.enabled
    provider = telemetry.provider("intake", settings)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "intake"
    assert any(isinstance(m, KafkaTelemetryMiddleware) for m in broker(provider).middlewares)
    provider.shutdown()


def test_spans_keep_no_query_no_client_address_no_exception_message(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = memory_provider(exporter).get_tracer("test")
    with (
        pytest.raises(ValueError, match="김주민"),
        tracer.start_as_current_span(
            "GET /open311/v2/tokens/{token}.json",
            attributes={
                "http.method": "GET",
                "http.route": "/open311/v2/tokens/{token}.json",
                "http.target": "/open311/v2/tokens/secret-token.json?api_key=app-key",
                "http.url": "http://intake:8001/open311/v2/tokens/secret-token.json?api_key=app-key",
                "url.query": "token=tracking-token",
                "client.address": "203.0.113.7",
                "net.peer.ip": "203.0.113.7",
                "user_agent.original": "Mozilla/5.0 (resident's phone)",
                "http.request.header.x_resident": "010-2468-1357",
                "messaging.kafka.message.key": b"complaint-1",
                "db.statement": "find",
            },
        ),
    ):
        raise ValueError("resident 김주민 010-2468-1357 said so")
    [span] = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "http.method": "GET",
        "http.route": "/open311/v2/tokens/{token}.json",
        "http.target": "/open311/v2/tokens/{token}.json",
        "http.url": "http://intake:8001/open311/v2/tokens/{token}.json",
        "messaging.kafka.message.key": "complaint-1",
        "db.statement": "find",
    }
    [event] = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {
        "exception.type": "ValueError",
        "exception.escaped": "False",
    }
    assert span.status.description is None
    everything = json.dumps([dict(span.attributes or {}), dict(event.attributes or {})])
    assert "김주민" not in everything
    assert "2468" not in everything


def test_a_url_without_route_keeps_its_path_and_loses_its_query() -> None:
    kept = telemetry.safe_attributes({"url.full": "https://dept.example/hook?sig=abc&phone=010"})
    assert kept == {"url.full": "https://dept.example/hook"}


async def test_a_publish_carries_traceparent_beside_the_cloudevents_headers(
    exporter: InMemorySpanExporter,
) -> None:
    provider = memory_provider(exporter)
    kafka = KafkaSettings()
    traced = broker(provider)
    seen: list[dict[str, str]] = []

    @traced.subscriber(topic_name(kafka, topics.LIFECYCLE))
    async def on_event(body: dict[str, object], message: KafkaMessage) -> None:
        seen.append({k: str(v) for k, v in message.headers.items()})

    event = ComplaintStatusChanged.model_validate(
        {
            "complaint_id": "c-1",
            "receipt_number": "261202-000001",
            "sequence": 1,
            "from_state": None,
            "to_state": "received",
            "trigger": "file",
            "actor": "intake",
        }
    )
    tracer = provider.get_tracer("test")
    async with TestKafkaBroker(traced):
        with tracer.start_as_current_span("POST /v1/complaints") as root:
            await publish_event(traced, kafka, topics.LIFECYCLE, event, source="/sotong/routing")
    [headers] = seen
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert headers["traceparent"].split("-")[1] == trace_id
    assert headers["ce_id"] == event.event_id
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_subject"] == "c-1"


async def test_a_publish_about_a_followed_complaint_joins_its_trace(
    exporter: InMemorySpanExporter,
) -> None:
    """A batch's publishes each go under the span of the record they are about."""
    tracer = memory_provider(exporter).get_tracer("test")
    with tracer.start_as_current_span("complaint 1") as one:
        pass
    with tracer.start_as_current_span("complaint 2") as two:
        pass
    with (
        tracer.start_as_current_span("the batch") as batch,
        telemetry.following({"c-1": one, "c-2": two}),
    ):
        with telemetry.within("c-2"):
            assert telemetry.current_span() is two
        with telemetry.within("c-unknown"):
            assert telemetry.current_span() is batch
        assert telemetry.trace_id("c-1") == format(one.get_span_context().trace_id, "032x")
    assert telemetry.trace_id() is None  # no span: no trace id


def test_a_log_line_carries_the_trace_id(exporter: InMemorySpanExporter) -> None:
    tracer = memory_provider(exporter).get_tracer("test")
    formatter = JsonFormatter("intake")
    record = logging.LogRecord("sotong.intake", logging.INFO, __file__, 1, "filed", None, None)
    assert "trace_id" not in json.loads(formatter.format(record))
    with tracer.start_as_current_span("POST /v1/complaints") as span:
        line = json.loads(formatter.format(record))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
