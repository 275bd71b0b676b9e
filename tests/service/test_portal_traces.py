"""A filing's trace starts at the portal: the resident's POST is a server span of the
portal's, and the call it makes to intake carries that trace's ``traceparent`` (so intake,
routing, tracker and notifier continue it: ``tests/service/test_traces.py``). A real HTTP
server stands in for intake; no span holds what the resident wrote."""

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from portal.app import create_app
from portal.chatbot.bot import Classification
from portal.settings import PortalSettings
from services import telemetry
from services.settings import TelemetrySettings
from tests.fakes.portal import BULKY, FakeChatbot, FakePortalStore, FakeTracker
from tests.service.test_notifier_peers import http_server

BODY = "석남동 골목 가로등이 사흘째 꺼져 있어요"
PHONE = "010-2468-1357"


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    made = telemetry.provider("portal", TelemetrySettings(), exporter=exporter)
    assert made is not None
    yield made, exporter
    HTTPXClientInstrumentor().uninstrument()
    made.shutdown()


async def unsure(text: str) -> Classification:
    return Classification("civil-affairs", 0.2, False)


async def test_a_filing_through_the_portal_carries_its_trace_to_intake(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = provider
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def intake(request: Request) -> Response:
        with lock:
            seen.append({"headers": dict(request.headers), "body": request.get_json()})
        answer = {
            "complaint_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "receipt_number": "261202-000001",
            "tracking_token": "t" * 32,
            "resident_token": "r" * 32,
            "duplicate": False,
        }
        return Response(json.dumps(answer), status=201, content_type="application/json")

    server: HTTPServer
    with http_server() as server:
        server.expect_request("/v1/complaints", method="POST").respond_with_handler(intake)
        app = create_app(
            PortalSettings(intake_url=server.url_for("/").rstrip("/")),
            tracker=FakeTracker(),
            store=FakePortalStore(),
            chatbot=FakeChatbot(answers={"이불": BULKY}),
            classify=unsure,
            tracer_provider=tracer_provider,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:
            form = await client.get("/file")
            marker = 'name="submission_id" value="'
            submission_id = form.text.split(marker)[1].split('"')[0]
            filed = await client.post(
                "/file",
                data={
                    "submission_id": submission_id,
                    "body": BODY,
                    "name": "김주민",
                    "phone": PHONE,
                    "consent": "on",
                },
                headers={"Origin": "http://portal.test"},
            )
    assert filed.status_code == 303, filed.text

    tracer_provider.force_flush()
    spans = exporter.get_finished_spans()

    def is_the_post(span: Any) -> bool:
        attributes = dict(span.attributes or {})
        method = attributes.get("http.request.method", attributes.get("http.method"))
        return (
            bool(span.kind is SpanKind.SERVER and attributes.get("http.route") == "/file")
            and method == "POST"
        )

    [posted] = [s for s in spans if is_the_post(s)]
    [call] = seen
    traceparent = call["headers"].get("Traceparent") or call["headers"].get("traceparent")
    assert traceparent is not None, call["headers"]
    assert traceparent.split("-")[1] == f"{posted.context.trace_id:032x}"
    assert call["body"]["body"] == BODY  # the filing itself went through
    recorded = json.dumps([dict(s.attributes or {}) for s in spans], ensure_ascii=False)
    for personal in (BODY, PHONE, "김주민"):
        assert personal not in recorded
