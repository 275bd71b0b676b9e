"""The ledger: one record per (event, recipient, channel), which turns at-least-once Kafka
into one message. Pure types and rules; :mod:`notifier.mongo.ledger` keeps them in MongoDB.

A delivery is *claimed* (status ``sending``) before its channel is tried and *finished*
(``sent``, ``skipped`` or ``failed``) after. A claim an earlier attempt left ``sending``
means that attempt stopped in between; the next one resumes it (one attempt more).

A channel that fails in a way trying again can help, when it is the chain's last (or
was not tried at all, the batch's time budget spent), is ``retrying`` instead of failed:
a ``NotificationRetryScheduled`` on the retry topic brings it back no earlier than
``retry_at`` (:mod:`notifier.retrying`), and only that retry resumes it, ``retries``
counting how often. A redelivered event leaves a ``retrying`` delivery alone.

A batch reads its ledger records in one query (by ``_id``: every delivery id its notices
could touch) and claims in one bulk write. Each notice's deliveries are finished as soon
as its chain has run, the outcome event already published (its id is derived from the
delivery id, so publishing again after a crash is a duplicate downstream); the finishes
that end within a few milliseconds of each other share one bulk write
(:mod:`notifier.settling`).
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from notifier.deferral import Source


class DeliveryStatus(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    RETRYING = "retrying"
    """Not finished: waiting on the retry topic (no outcome is published for it)."""


FINISHED = frozenset({DeliveryStatus.SENT, DeliveryStatus.SKIPPED, DeliveryStatus.FAILED})
"""The statuses an outcome event is published for."""


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
    source: Source | None = field(default=None, repr=False, compare=False)
    """The event itself, kept with the claim so a claim left ``sending`` can be re-queued
    (:meth:`LedgerStore.stuck`)."""
    correlation_id: str | None = None


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
    retries: int = 0
    """How often this delivery went to the retry topic."""
    retry_at: datetime | None = None
    """While ``retrying``: when it may be tried again."""


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
    retry_at: datetime | None = None
    """With ``retrying``: when the retry topic may bring it back."""

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
            retries=claim.retries + (1 if self.status is DeliveryStatus.RETRYING else 0),
            retry_at=bson_time(self.retry_at) if self.retry_at is not None else None,
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


@dataclass(frozen=True)
class Stuck:
    """A delivery no live attempt holds: claimed (``sending``) or waiting on the retry
    topic (``retrying``) longer than the lease. The re-queue is conditional on the claim
    and retry times found, so an attempt that resumed it in between wins."""

    record: DeliveryRecord
    source: Source
    correlation_id: str | None
    claimed_at: datetime


class LedgerStore(Protocol):
    """Where the ledger is kept. Every write is safe to repeat."""

    async def claim(self, claim: Claim, *, now: datetime) -> DeliveryRecord:
        """Claim a delivery (``fresh``), or return the claim an earlier attempt made: one
        more attempt counted if it is still ``sending``, unchanged if it finished. Of two
        concurrent claims exactly one is fresh."""
        ...

    async def finish(
        self,
        delivery_id: str,
        status: DeliveryStatus,
        *,
        now: datetime,
        detail: str | None = None,
        retries: int = 0,
        final: bool = True,
        retryable: bool = False,
    ) -> DeliveryRecord:
        """Record how a claimed delivery ended; only a claim still sending can end, so a
        late finish returns the record as it stands. ``retries`` are the extra tries this
        attempt made, added to ``attempts``."""
        ...

    async def mark_published(self, delivery_id: str) -> None:
        """The delivery's outcome event went out: a redelivery need not publish it."""
        ...

    async def mark_dead_lettered(self, delivery_id: str) -> None:
        """The chain's dead letter went out: a redelivery need not send it."""
        ...

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        """The ledger's record of one delivery as it stands (``fresh`` False), for
        operators and tests; the handlers learn it from claim and finish."""
        ...

    async def records(self, delivery_ids: Collection[str]) -> dict[str, DeliveryRecord]:
        """The ledger's records of these deliveries (those that exist), in one read."""
        ...

    async def claim_many(
        self, claims: Sequence[Claim], *, known: Mapping[str, DeliveryRecord], now: datetime
    ) -> list[DeliveryRecord]:
        """:meth:`claim` for a batch in one write, given the records read for it: a
        delivery ``known`` still sending is resumed (one attempt more), one known finished
        is returned as it stands, any other is claimed fresh. A claim another attempt won
        in between comes back as that attempt left it (``fresh`` False)."""
        ...

    async def settle(
        self, finishes: Sequence[Finish], marks: Sequence[Mark], *, now: datetime
    ) -> None:
        """Finish claimed deliveries and mark earlier ones, in one write. As with
        :meth:`finish`, only a claim still sending can end."""
        ...

    async def stuck(self, before: datetime, *, limit: int = 200) -> list[Stuck]:
        """Deliveries ``sending`` since before ``before``, or ``retrying`` with a retry
        time before it, oldest first: two indexed reads."""
        ...

    async def requeue_many(self, stuck: Sequence[Stuck], *, now: datetime) -> set[str]:
        """Mark these deliveries ``retrying`` at ``now``, each only if it still stands as
        it was found (a live attempt that resumed it in between wins); the ids marked."""
        ...

    async def forget_failed(self, source_event_id: str) -> int:
        """Forget the failed deliveries of an event (its dead-lettered chains), so a
        replay of the event is delivered; sent and skipped ones stay. The number forgotten."""
        ...
