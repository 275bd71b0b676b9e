"""What a finished delivery tells the rest of the platform: pure, from the ledger's record.

Every finished delivery is published as a ``NotificationOutcome`` whose event id is
derived from the delivery id, so publishing it again after a crash is a duplicate
downstream. A message sent on a channel after an earlier one failed (대체발송) is
``sent`` with the detail ``fallback from …``: ``Outcome`` has no value of its own for
it, and a new enum value would break readers that validate it, so the fallback rides in
``detail`` (and in the metric's ``fallback`` outcome) until the contract grows an
additive field. A recipient no channel could reach is one dead letter, whose id is
derived from the delivery too.
"""

import base64
import uuid
from collections.abc import Mapping
from datetime import datetime

from notifier.deferral import Source
from notifier.ledger import DeliveryRecord, DeliveryStatus
from schemas import ComplaintStatusChanged, DeadLetter, NotificationOutcome, topics
from schemas.events import Outcome

NO_CONSENT = "resident did not consent to notifications"
NO_CHANNEL = "no configured channel reaches this recipient"
NO_CONTACT = "no phone number or e-mail address to reach this recipient"
NO_CHANNEL_NAME = "none"


def fallback_detail(failed: list[str]) -> str:
    return "fallback from " + ", ".join(failed)


def outcome_event_id(delivery: str) -> str:
    """The same delivery always yields the same NotificationOutcome id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, delivery))


def outcome(record: DeliveryRecord, now: datetime) -> NotificationOutcome:
    """The outcome event of a finished delivery; ``now`` only if it has no finish time."""
    return NotificationOutcome(
        event_id=outcome_event_id(record.delivery_id),
        occurred_at=record.finished_at or now,
        complaint_id=record.complaint_id,
        source_event_id=record.source_event_id,
        recipient=record.recipient,
        channel=record.channel,
        outcome=Outcome(record.status.value),
        template=record.template_code,
        detail=record.detail,
        attempts=record.attempts,
    )


def metric_outcome(record: DeliveryRecord) -> str:
    """The ``outcome`` label: the status, or ``fallback`` for a message sent after one failed."""
    if record.status is DeliveryStatus.SENT and record.fallback_from:
        return "fallback"
    return record.status.value


def source_topic(source: Source, topics_of_events: Mapping[str, str]) -> str:
    """The topic the event came from, as the dead letter names it."""
    return topics_of_events.get(
        source.event_type,
        topics.LIFECYCLE if isinstance(source, ComplaintStatusChanged) else topics.SLA,
    )


def undeliverable(
    source: Source, record: DeliveryRecord, recipient: str, reasons: list[str], topic: str
) -> DeadLetter:
    """The event as a dead letter for one recipient that could not be told.

    The bytes are the event as notifier holds it (re-serialised: a parked or deferred
    event has no Kafka record left).
    """
    return DeadLetter(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sotong:undelivered:{record.delivery_id}")),
        complaint_id=source.complaint_id,
        original_topic=topic,
        original_key=source.complaint_id,
        original_value_b64=base64.b64encode(source.model_dump_json().encode()).decode("ascii"),
        consumer="notifier",
        reason=f"{recipient} could not be notified: " + "; ".join(reasons),
        retryable=record.retryable,
        attempts=record.attempts,
    )
