"""Signed webhooks: every event of a department, POSTed to the department's own system;
and every public step of a request an Open311 app filed, POSTed to the app
(:func:`open311_update`, ``SOTONG_NOTIFIER_OPEN311_WEBHOOKS``), signed the same way.

A department subscribes by configuration (``SOTONG_NOTIFIER_WEBHOOKS``: department code →
URL and secret). Each lifecycle event and deadline alert of that department is POSTed as
a CloudEvent 1.0 in structured mode::

    POST {url}
    Content-Type: application/cloudevents+json; charset=utf-8
    X-Sotong-Timestamp: 1764034200                 (Unix seconds, when this attempt was signed)
    X-Sotong-Signature: sha256=5d41402abc4b2a76…  (hex HMAC-SHA256, see below)
    X-Sotong-Delivery: 0f6c…                       (the same for every attempt of one delivery)

    {"specversion": "1.0", "id": "{event_id}", "type": "kr.go.sotong.complaint.status_changed.v1",
     "source": "/sotong/routing", "subject": "{complaint_id}", "time": "…",
     "datacontenttype": "application/json", "dataschemaversion": "1",
     "correlationid": "…", "data": { …the event as on Kafka, its free text masked… }}

The signature is ``HMAC-SHA256(secret, timestamp + "." + body)`` over the raw body bytes.
A receiver should, in this order:

1. verify it with :func:`verify_signature` (constant-time, and refusing a timestamp more
   than ``tolerance`` seconds from its own clock, which turns away a captured request
   replayed later);
2. drop a request whose ``X-Sotong-Delivery`` (or CloudEvent ``id``) it has already
   processed: Sotong retries, and every retry is signed afresh with a new timestamp;
3. answer 2xx quickly. 408, 425, 429 and 5xx are retried with backoff; any other status
   is taken as a refusal (a wrong secret gives 401 on the receiver's side: no retry).

Receivers in other languages compute the same HMAC; in a shell::

    printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET"
"""

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from notifier.channel import Message, post
from schemas import ComplaintDeadlineAlert, ComplaintStatusChanged
from schemas.envelope import CE_SPECVERSION, cloudevent_type
from schemas.open311 import UPDATE_EVENT_TYPE, service_request_update
from schemas.pii import mask_fields
from services.errors import PermanentError

SIGNATURE_HEADER = "X-Sotong-Signature"
TIMESTAMP_HEADER = "X-Sotong-Timestamp"
DELIVERY_HEADER = "X-Sotong-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300.0


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``timestamp + "." + body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: True only if ``signature`` is Sotong's for exactly these bytes and
    ``timestamp`` is within ``tolerance`` seconds of ``now`` (default: this machine's
    clock). Pass the raw request body, before any JSON parsing."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        return False
    try:
        expected = sign(secret, timestamp, body)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def cloudevent(
    event: ComplaintStatusChanged | ComplaintDeadlineAlert,
    *,
    source: str,
    correlation_id: str | None = None,
    photos: Sequence[str] = (),
) -> dict[str, Any]:
    """The CloudEvent in structured mode, with the same attributes the Kafka headers carry.
    ``photos`` are the addresses of the complaint's photos, added to ``data`` as
    ``photos`` (the department fetches them from intake with its API key)."""
    envelope: dict[str, Any] = {
        "specversion": CE_SPECVERSION,
        "id": event.event_id,
        "type": cloudevent_type(event.event_type, event.schema_version),
        "source": source,
        "subject": event.complaint_id,
        "time": event.occurred_at.isoformat(),
        "datacontenttype": "application/json",
        "dataschemaversion": str(event.schema_version),
        "data": mask_fields(event.model_dump(mode="json"), "note", "remedy"),
    }
    if photos:
        envelope["data"]["photos"] = list(photos)
    if correlation_id:
        envelope["correlationid"] = correlation_id
    return envelope


def open311_update(
    event: ComplaintStatusChanged, *, source: str, correlation_id: str | None = None
) -> dict[str, Any]:
    """The CloudEvent an Open311 app is pushed for one step of a request it filed: its
    ``data`` is the update as ``servicerequestupdates`` lists it (:mod:`schemas.open311`),
    so an app reads the same fields whether it polls or is pushed."""
    envelope: dict[str, Any] = {
        "specversion": CE_SPECVERSION,
        "id": event.event_id,
        "type": cloudevent_type(UPDATE_EVENT_TYPE, 1),
        "source": source,
        "subject": event.complaint_id,
        "time": event.occurred_at.isoformat(),
        "datacontenttype": "application/json",
        "dataschemaversion": "1",
        "data": service_request_update(event),
    }
    if correlation_id:
        envelope["correlationid"] = correlation_id
    return envelope


class WebhookTarget:
    def __init__(self, url: str, secret: SecretStr) -> None:
        self.url = url
        self.secret = secret


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        client: httpx.AsyncClient,
        targets: Mapping[str, WebhookTarget],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.targets = dict(targets)
        self.clock = clock

    @property
    def departments(self) -> frozenset[str]:
        return frozenset(self.targets)

    async def deliver(self, message: Message) -> None:
        key = message.webhook or message.department or ""
        target = self.targets.get(key)
        if target is None or message.cloudevent is None:
            raise PermanentError(f"no webhook for {key or 'this message'}")
        body = json.dumps(message.cloudevent, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(self.clock()))
        await post(
            self.client,
            "webhook receiver",
            target.url,
            content=body,
            headers={
                "Content-Type": "application/cloudevents+json; charset=utf-8",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(target.secret.get_secret_value(), timestamp, body),
                DELIVERY_HEADER: message.idempotency_key,
            },
        )

    async def already_delivered(self, delivery_id: str) -> bool:
        return False  # receivers drop a repeated X-Sotong-Delivery
