"""What a department system's receiver checks: the signature, the clock, the bytes."""

import hashlib
import hmac
import json

import httpx
import pytest
from pydantic import SecretStr

from notifier.webhook import cloudevent, sign, verify_signature
from schemas import ComplaintState, ComplaintStatusChanged

SECRET = "s3cret-for-roads-department"
BODY = '{"id":"ev-1","data":{"note":"도로 보수 완료"}}'.encode()
NOW = 1_764_034_200


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, str(NOW), BODY) == f"sha256={expected}"


def test_a_fresh_genuine_request_verifies() -> None:
    signature = sign(SECRET, str(NOW), BODY)
    assert verify_signature(SECRET, str(NOW), BODY, signature, now=NOW + 10)
    assert verify_signature(SECRET.encode(), str(NOW), BODY, signature, now=NOW - 10)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now"),
    [
        ("another-secret-entirely", str(NOW), BODY, NOW),  # wrong secret
        (SECRET, str(NOW), BODY.replace(b"1", b"2"), NOW),  # body changed
        (SECRET, str(NOW + 1), BODY, NOW),  # timestamp changed
        (SECRET, str(NOW), BODY, NOW + 301),  # replayed after the tolerance
        (SECRET, str(NOW), BODY, NOW - 301),  # from the future
        (SECRET, "yesterday", BODY, NOW),  # not a timestamp
    ],
)
def test_anything_else_is_refused(secret: str, timestamp: str, body: bytes, now: int) -> None:
    signature = sign(SECRET, str(NOW), BODY)
    assert not verify_signature(secret, timestamp, body, signature, now=now)


def test_a_malformed_signature_is_refused_not_raised() -> None:
    assert not verify_signature(SECRET, str(NOW), BODY, "sha256=zz", now=NOW)
    assert not verify_signature(SECRET, str(NOW), BODY, "서명", now=NOW)


def test_the_tolerance_is_the_receivers_choice() -> None:
    signature = sign(SECRET, str(NOW), BODY)
    assert verify_signature(SECRET, str(NOW), BODY, signature, tolerance=3600, now=NOW + 3000)
    assert not verify_signature(SECRET, str(NOW), BODY, signature, tolerance=5, now=NOW + 6)


def site_check() -> ComplaintStatusChanged:
    return ComplaintStatusChanged(
        complaint_id="c-9",
        receipt_number="251125-000009",
        sequence=4,
        from_state=ComplaintState.HANDLER_ASSIGNED,
        to_state=ComplaintState.SITE_CHECK,
        trigger="start_site_check",
        department="roads",
        actor="roads",
    )


def test_the_cloudevent_carries_the_kafka_attributes_and_the_event_as_data() -> None:
    event = site_check()
    envelope = cloudevent(event, source="/sotong/routing", correlation_id="corr-1")
    assert envelope["specversion"] == "1.0"
    assert envelope["id"] == event.event_id
    assert envelope["type"] == "kr.go.sotong.complaint.status_changed.v1"
    assert envelope["subject"] == "c-9"
    assert envelope["correlationid"] == "corr-1"
    assert envelope["dataschemaversion"] == "1"
    assert ComplaintStatusChanged.model_validate(envelope["data"]) == event
    json.dumps(envelope)  # JSON all the way down


def test_the_webhook_body_is_a_structured_cloudevent_to_the_official_sdk() -> None:
    """HTTP binding, structured mode: what any CloudEvents SDK's receiver reads."""
    from cloudevents.core.bindings import http as ce_http

    event = site_check()
    body = json.dumps(cloudevent(event, source="/sotong/notifier")).encode()
    message = ce_http.HTTPMessage(
        headers={"content-type": "application/cloudevents+json; charset=utf-8"}, body=body
    )
    parsed = ce_http.from_http_event(message)
    assert parsed.get_type() == "kr.go.sotong.complaint.status_changed.v1"
    assert parsed.get_id() == event.event_id
    assert parsed.get_subject() == "c-9"
    assert parsed.get_time() == event.occurred_at
    data = parsed.get_data()
    assert isinstance(data, dict)
    assert ComplaintStatusChanged.model_validate(data) == event


async def test_an_open311_apps_push_goes_to_its_own_webhook_signed_with_its_secret() -> None:
    from notifier.channel import Message
    from notifier.webhook import WebhookChannel, WebhookTarget, open311_update

    seen: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    event = ComplaintStatusChanged.model_validate(
        {
            "complaint_id": "c-1",
            "receipt_number": "251125-000001",
            "sequence": 2,
            "from_state": "received",
            "to_state": ComplaintState.ASSIGNED,
            "trigger": "assign",
            "department": "roads",
            "department_name": "도로과",
            "actor": "routing",
        }
    )
    targets = {
        "roads": WebhookTarget("https://roads.example/hook", SecretStr("roads-secret-0123456")),
        "open311:fixit": WebhookTarget("https://fixit.example/push", SecretStr("fixit-secret-01")),
    }
    async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as client:
        channel = WebhookChannel(client, targets, clock=lambda: 1_764_000_000)
        await channel.deliver(
            Message(
                delivery_id="d-1",
                complaint_id="c-1",
                receipt_number="251125-000001",
                recipient="open311:fixit",
                state=ComplaintState.ASSIGNED,
                cloudevent=open311_update(event, source="/sotong/routing"),
                webhook="open311:fixit",
            )
        )
    [request] = seen
    assert str(request.url) == "https://fixit.example/push"
    assert verify_signature(
        "fixit-secret-01",
        request.headers["X-Sotong-Timestamp"],
        request.content,
        request.headers["X-Sotong-Signature"],
        now=1_764_000_000,
    )
    assert json.loads(request.content)["data"]["status"] == "open"
