"""The ledger: one record per (event, recipient, channel), which turns at-least-once Kafka
into one message. Pure types and rules; :mod:`notifier.store` keeps them in MongoDB.

A delivery is *claimed* (status ``sending``) before its channel is tried and *finished*
(``sent``, ``skipped`` or ``failed``) after. A claim an earlier attempt left ``sending``
means that attempt stopped in between; the next one resumes it (one attempt more).

A batch reads its ledger records in one query (by ``_id``: every delivery id its notices
could touch), claims in one bulk write, and finishes in one bulk write, the outcome event
already published (its id is derived from the delivery id, so publishing again after a
crash is a duplicate downstream).
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum


class DeliveryStatus(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One delivery about to be attempted: an event, to a recipient, on a channel."""

    delivery_id: str
    complaint_id: str
    source_event_id: str
    recipient: str
    channel: str
    template_code: str
    fallback_from: str | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    delivery_id: str
    complaint_id: str
    source_event_id: str
    recipient: str
    channel: str
    template_code: str
    status: DeliveryStatus
    attempts: int
    fresh: bool
    """True when this call made the claim; False when an earlier attempt had."""
    detail: str | None = None
    finished_at: datetime | None = None
    outcome_published: bool = False
    fallback_from: str | None = None
    final: bool = True
    """A failure that ends the chain: no channel after it is tried."""
    retryable: bool = False
    """A failure that gave up on retryable errors: a later replay might succeed."""
    dead_lettered: bool = False


@dataclass(frozen=True, kw_only=True)
class Finish:
    """How a claimed delivery ended, and what already went out about it."""

    delivery_id: str
    status: DeliveryStatus
    at: datetime
    """When it ended (to the millisecond: :func:`bson_time`)."""
    detail: str | None = None
    retries: int = 0
    """Extra tries this attempt made, added to ``attempts``."""
    final: bool = True
    retryable: bool = False
    published: bool = False
    """The outcome event went out before the finish was written."""
    dead_lettered: bool = False

    def applied_to(self, claim: DeliveryRecord) -> DeliveryRecord:
        """The record as the store keeps it once this finish is written (times to the
        millisecond, as BSON keeps them), so the outcome published before is the one a
        redelivery would publish again."""
        assert self.status is not DeliveryStatus.SENDING, "finish with an outcome"
        return replace(
            claim,
            status=self.status,
            finished_at=bson_time(self.at),
            detail=self.detail,
            final=self.final,
            retryable=self.retryable,
            attempts=claim.attempts + self.retries,
            outcome_published=claim.outcome_published or self.published,
            dead_lettered=claim.dead_lettered or self.dead_lettered,
        )


@dataclass(frozen=True, kw_only=True)
class Mark:
    """What went out about a delivery finished earlier (a crash had kept it back)."""

    delivery_id: str
    published: bool = False
    dead_lettered: bool = False


def delivery_id(event_id: str, recipient: str, channel: str) -> str:
    return f"{event_id}:{recipient}:{channel}"


def bson_time(moment: datetime) -> datetime:
    """A time as MongoDB gives it back: UTC, to the millisecond."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def new_record(claim: Claim) -> DeliveryRecord:
    """The record a fresh claim writes."""
    return DeliveryRecord(
        delivery_id=claim.delivery_id,
        complaint_id=claim.complaint_id,
        source_event_id=claim.source_event_id,
        recipient=claim.recipient,
        channel=claim.channel,
        template_code=claim.template_code,
        status=DeliveryStatus.SENDING,
        attempts=1,
        fresh=True,
        fallback_from=claim.fallback_from,
    )
