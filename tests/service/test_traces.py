"""One complaint, one trace: the four services in one process on the real embedded Kafka
and MongoDB, each with its own tracer provider exporting to one in-memory exporter.

The filing's HTTP request starts the trace; FastStream carries ``traceparent`` in the Kafka
headers; the batch consumers continue it per record; the notifier's webhook call carries it
to the department system. No span holds what the resident wrote or is identified by."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as ce_kafka
from fastapi import FastAPI
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from intake.app import create_app as intake_app
from intake.settings import IntakeSettings
from notifier.app import create_app as notifier_app
from notifier.settings import NotifierSettings, WebhookSubscription
from routing.app import create_app as routing_app
from routing.classifier import Classifier
from routing.settings import RoutingSettings
from schemas import topics
from schemas.catalogue import catalogue
from services import telemetry
from services.broker import ensure_topics, make_broker, publish_event, topic_name
from services.metrics import KitMetrics
from services.mongo import Document
from services.runtime import Runtime
from services.settings import ServiceSettings, TelemetrySettings
from tests.conftest import FAST_RETRY, Backends
from tests.service.test_cloudevents import one_of_each
from tracker.app import create_app as tracker_app
from tracker.settings import TrackerSettings

RESIDENT = {"name": "김주민", "phone": "010-2468-1357", "email": "jumin@example.kr"}
BODY = "석남동 골목 가로등이 사흘째 꺼져 있어요. 우리 집 101동 1203호 앞입니다"
SERVICES = ("intake", "routing", "tracker", "notifier")


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
def providers(exporter: InMemorySpanExporter) -> Iterator[dict[str, TracerProvider]]:
    made = {
        name: telemetry.provider(name, TelemetrySettings(), exporter=exporter) for name in SERVICES
    }
    providers = {name: p for name, p in made.items() if p is not None}
    # process-wide, as a deployed notifier installs it: its webhook calls are client spans
    HTTPXClientInstrumentor().instrument(tracer_provider=providers["notifier"])
    yield providers
    HTTPXClientInstrumentor().uninstrument()
    for provider in providers.values():
        provider.shutdown()


def spans_of(
    exporter: InMemorySpanExporter, providers: dict[str, TracerProvider]
) -> list[ReadableSpan]:
    for provider in providers.values():
        provider.force_flush()
    return list(exporter.get_finished_spans())


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


async def test_one_complaint_is_one_trace_through_the_four_services(
    backends: Backends,
    trained_classifier: Classifier,
    unique: str,
    tmp_path: Path,
    httpserver: HTTPServer,
    exporter: InMemorySpanExporter,
    providers: dict[str, TracerProvider],
) -> None:
    hooks: list[Request] = []

    def department_system(request: Request) -> Response:
        hooks.append(request)
        return Response("", status=204)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(department_system)
    kafka, mongo = backends.kafka(f"tr{unique}."), backends.mongo(f"db{unique}")
    secret = SecretStr("department-webhook-secret")
    intake_settings = IntakeSettings(
        kafka=kafka, mongo=mongo, retry=FAST_RETRY, http_port=0, relay_interval_seconds=600
    )
    routing_settings = RoutingSettings(
        kafka=kafka,
        mongo=mongo,
        retry=FAST_RETRY,
        http_port=0,
        relay_interval_seconds=600,
        deadline_scan_interval_seconds=600,
    )
    tracker_settings = TrackerSettings(kafka=kafka, mongo=mongo, retry=FAST_RETRY, http_port=0)
    notifier_settings = NotifierSettings(
        kafka=kafka,
        mongo=mongo,
        retry=FAST_RETRY,
        http_port=0,
        outbox_path=tmp_path / "outbox.jsonl",
        webhooks={
            code: WebhookSubscription(url=httpserver.url_for("/hook"), secret=secret)
            for code in catalogue().codes
        },
    )

    def runtime(name: str, settings: ServiceSettings) -> Runtime:
        return Runtime.build(name, settings, tracer_provider=providers[name])

    apps: dict[str, FastAPI] = {
        "intake": intake_app(intake_settings, runtime=runtime("intake", intake_settings)),
        "routing": routing_app(
            routing_settings,
            runtime=runtime("routing", routing_settings),
            classifier=trained_classifier,
        ),
        "tracker": tracker_app(tracker_settings, runtime=runtime("tracker", tracker_settings)),
        "notifier": notifier_app(notifier_settings, runtime=runtime("notifier", notifier_settings)),
    }
    try:
        async with AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            intake = await stack.enter_async_context(client(apps["intake"], "intake"))
            tracker = await stack.enter_async_context(client(apps["tracker"], "tracker"))

            response = await intake.post(
                "/v1/complaints",
                json={"channel": "web", "title": "가로등 고장", "body": BODY, "resident": RESIDENT},
            )
            assert response.status_code == 201, response.text
            filed = response.json()
            complaint_id, token = filed["complaint_id"], filed["tracking_token"]
            # the resident's own view, the token in its header
            view = await tracker.get(
                f"/v1/complaints/{complaint_id}", headers={"X-Tracking-Token": token}
            )
            for _ in range(300):
                if view.status_code == 200 and hooks:
                    break
                await asyncio.sleep(0.1)
                view = await tracker.get(
                    f"/v1/complaints/{complaint_id}", headers={"X-Tracking-Token": token}
                )
            assert view.status_code == 200, view.text
            assert hooks, "the department's webhook was not called within 30 s"

            [filing] = [
                s
                for s in spans_of(exporter, providers)
                if s.kind is SpanKind.SERVER and s.name == "POST /v1/complaints"
            ]
            trace_id = filing.context.trace_id
            wanted = {"routing", "tracker", "notifier"}
            for _ in range(100):  # the last consumers' spans end with their batch
                spans = [s for s in spans_of(exporter, providers) if s.context.trace_id == trace_id]
                if wanted <= {service_of(s) for s in spans if s.kind is SpanKind.CONSUMER}:
                    break
                await asyncio.sleep(0.1)
    finally:
        await drop_database(backends, f"db{unique}")

    everything = spans_of(exporter, providers)
    spans = [s for s in everything if s.context.trace_id == trace_id]
    assert {service_of(s) for s in spans} == set(SERVICES)
    kinds = {(service_of(s), s.kind) for s in spans}
    assert ("intake", SpanKind.SERVER) in kinds
    assert ("intake", SpanKind.PRODUCER) in kinds  # complaint.filed, in the request's trace
    for consumer in ("routing", "tracker", "notifier"):
        assert (consumer, SpanKind.CONSUMER) in kinds, f"{consumer} did not join the trace"
    assert ("routing", SpanKind.PRODUCER) in kinds  # complaint.lifecycle
    assert ("notifier", SpanKind.CLIENT) in kinds  # the webhook call
    consumed = {
        s.attributes["messaging.destination.name"]
        for s in spans
        if s.kind is SpanKind.CONSUMER and s.attributes
    }
    assert kafka.topic_prefix + topics.FILED in consumed
    assert kafka.topic_prefix + topics.LIFECYCLE in consumed
    # the department system got the trace context with the webhook
    assert any(f"-{trace_id:032x}-" in (h.headers.get("traceparent") or "") for h in hooks)
    # every span but the root has its parent in the same trace: the trace is not cut
    ids = {s.context.span_id for s in spans}
    assert [s.name for s in spans if s.parent is None] == [filing.name]
    assert all(s.parent is None or s.parent.span_id in ids for s in spans)

    # PyMongo's CommandTracer works on AsyncMongoClient: intake's writes for the filing
    # are in the request's trace, with command names and no documents
    assert any(
        service_of(s) == "intake"
        and s.kind is SpanKind.CLIENT
        and (s.attributes or {}).get("db.system") == "mongodb"
        for s in spans
    )
    exported = json.dumps(
        [
            {
                "name": s.name,
                "attributes": dict(s.attributes or {}),
                "events": [dict(e.attributes or {}) for e in s.events],
                "status": s.status.description,
            }
            for s in everything
        ],
        ensure_ascii=False,
        default=str,
    )
    for secret_text in (*RESIDENT.values(), BODY[:10], "101동", token, "가로등 고장"):
        assert secret_text not in exported


def client(app: FastAPI, name: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=f"http://{name}")


async def drop_database(backends: Backends, name: str) -> None:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(backends.mongo_uri)
    try:
        await mongo.drop_database(name)
    finally:
        await mongo.close()


async def test_traced_messages_stay_cloudevents_and_carry_traceparent(
    backends: Backends, exporter: InMemorySpanExporter, providers: dict[str, TracerProvider]
) -> None:
    """What the CloudEvents SDK reads is unchanged by tracing; ``traceparent`` rides beside
    the ``ce_*`` headers, and the kit's tolerant parser hands it to the consumer's span."""
    prefix = f"tp{uuid.uuid4().hex[:6]}."
    kafka = backends.kafka(prefix)
    await ensure_topics(kafka)
    registry = CollectorRegistry()
    broker, _ = make_broker(
        service="routing",
        kafka=kafka,
        retry=FAST_RETRY,
        registry=registry,
        metrics=KitMetrics(registry),
        tracer_provider=providers["routing"],
    )
    events = one_of_each()
    tracer = providers["routing"].get_tracer("test")
    await broker.start()
    try:
        with tracer.start_as_current_span("the cause") as cause:
            for event in events:
                await publish_event(
                    broker, kafka, topics.OF_EVENT[event.event_type], event, source="/sotong/t"
                )
    finally:
        await broker.stop()
    trace_id = f"{cause.get_span_context().trace_id:032x}"

    consumer = AIOKafkaConsumer(
        *(topic_name(kafka, t) for t in topics.ALL),
        bootstrap_servers=backends.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"{prefix}reader",
    )
    await consumer.start()
    read: dict[str, tuple[BaseCloudEvent, dict[str, bytes]]] = {}
    try:
        for _ in range(60):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    headers = dict(record.headers)
                    message = ce_kafka.KafkaMessage(
                        headers=headers, key=record.key, value=record.value
                    )
                    cloudevent = ce_kafka.from_binary_event(message)
                    read[str(cloudevent.get_id())] = (cloudevent, headers)
            if len(read) == len(events):
                break
    finally:
        await consumer.stop()
    assert set(read) == {e.event_id for e in events}
    for event in events:
        cloudevent, headers = read[event.event_id]
        assert cloudevent.get_type() == f"kr.go.sotong.{event.event_type}.v1"
        assert cloudevent.get_subject() == event.complaint_id
        assert headers["traceparent"].decode().split("-")[1] == trace_id


def test_the_otlp_exporter_posts_redacted_spans_to_the_configured_endpoint(
    httpserver: HTTPServer,
) -> None:
    """The production path: settings name an endpoint, spans arrive as OTLP/HTTP protobuf
    at its /v1/traces, named by service, without the query string they were made with."""
    received: list[bytes] = []

    def collector(request: Request) -> Response:
        received.append(request.get_data())
        return Response(b"", status=200, content_type="application/x-protobuf")

    httpserver.expect_request("/v1/traces", method="POST").respond_with_handler(collector)
    settings = TelemetrySettings(exporter_otlp_endpoint=httpserver.url_for("/"))
    provider = telemetry.provider("tracker", settings)
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span(
        "GET /v1/complaints/{complaint_id}",
        attributes={
            "http.route": "/v1/complaints/{complaint_id}",
            "http.target": "/v1/complaints/c-1?token=resident-token",
        },
    ):
        pass
    provider.shutdown()  # flushes the batch

    request = ExportTraceServiceRequest()
    request.ParseFromString(b"".join(received))
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "tracker"
    [span] = [s for scope in resource_spans.scope_spans for s in scope.spans]
    attributes = {a.key: a.value.string_value for a in span.attributes}
    assert attributes["http.target"] == "/v1/complaints/{complaint_id}"
    assert b"resident-token" not in b"".join(received)
