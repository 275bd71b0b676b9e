"""In-memory stand-ins for notifier's collaborators, for the unit tier.

:class:`InMemoryNotifierStore` passes ``tests/contract/test_notifier_store.py`` beside
the MongoDB store: a claim only one attempt wins, conditional finishes, first-wins
contacts, the orders the real one sorts by, times kept to the millisecond as BSON keeps
them, and events stored as JSON and read back as new objects.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from notifier.channel import Message
from notifier.staff import StaffContact, StaffDirectory
from notifier.store import (
    SOURCE,
    Claim,
    Deferred,
    DeliveryRecord,
    DeliveryStatus,
    Finish,
    Hold,
    Mark,
    Parked,
    Recipient,
    Source,
    Stuck,
)
from notifier.templates import Letterhead
from schemas import (
    ComplaintFiled,
    ComplaintStatusChanged,
    NotificationOutcome,
    NotificationRetryScheduled,
)
from schemas.events import Outcome
from services.broker import KeyedEvent

LETTERHEAD = Letterhead(
    sender_name="인천광역시 서구",
    tracking_url="https://sotong.example.kr/complaints/{complaint_id}",
)
"""The sender and tracking link the settings would give, for tests that build an Audience."""


STAFF = StaffDirectory(
    {
        handler_id: StaffContact(handler_id, mobile, f"{handler_id}@example.go.kr")
        for handler_id, mobile in (
            ("h-1", "010-0000-5001"),
            ("roads-1", "010-0000-5101"),
            ("roads-chief", "010-0000-5100"),
            ("chief", "010-0000-5100"),
        )
    }
)
"""Clearly fake work contacts of the staff the tests name (notifier.staff)."""

STAFF_FILE = {
    "staff": {c.handler_id: {"mobile": c.mobile, "email": c.email} for c in STAFF.contacts.values()}
}
"""The same, as the directory file the settings point at."""


def stored(moment: datetime) -> datetime:
    """A time as MongoDB gives it back: UTC, to the millisecond."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class _Pending:
    complaint_id: str
    sequence: int
    event: dict[str, Any]
    correlation_id: str | None


@dataclass(frozen=True)
class _Held:
    deferred_id: str
    complaint_id: str
    recipient: str
    sequence: int
    source: dict[str, Any]
    correlation_id: str | None
    release_at: datetime
    deferred_at: datetime

    def read(self) -> Deferred:
        return Deferred(
            deferred_id=self.deferred_id,
            complaint_id=self.complaint_id,
            recipient=self.recipient,
            source=SOURCE.validate_python(self.source),
            correlation_id=self.correlation_id,
            release_at=self.release_at,
        )


class InMemoryNotifierStore:
    """The NotifierStore in dictionaries; its fields are open for tests to look at (and
    to set up a crash's aftermath)."""

    def __init__(self) -> None:
        self.recipients: dict[str, Recipient] = {}
        self.deliveries: dict[str, DeliveryRecord] = {}
        self.pending: dict[str, _Pending] = {}
        self.deferred: dict[str, _Held] = {}
        self.days: dict[str, set[str]] = {}
        """Per contact key and day: the deliveries counted against the daily cap."""
        self.claims: dict[str, tuple[dict[str, Any] | None, str | None, datetime]] = {}
        """Per delivery: the event kept with the claim, its correlation id, when claimed."""
        self.commands = 0
        """Batch operations that would be one MongoDB command each."""

    async def ensure_indexes(self) -> None:
        return None

    async def remember(self, filed: ComplaintFiled) -> None:
        resident = filed.resident
        self.recipients.setdefault(
            filed.complaint_id,
            Recipient(
                complaint_id=filed.complaint_id,
                receipt_number=filed.receipt_number,
                notification_consent=resident.notification_consent,
                name=resident.name,
                phone=resident.phone,
                email=resident.email,
                channel_client=filed.channel_client,
                photos=tuple(p.photo_id for p in filed.photos),
                contact_unconfirmed=filed.contact_unconfirmed,
            ),
        )

    async def recipient(self, complaint_id: str) -> Recipient | None:
        return self.recipients.get(complaint_id)

    async def park(
        self, event: ComplaintStatusChanged, *, correlation_id: str | None, now: datetime
    ) -> bool:
        if event.event_id in self.pending:
            return False
        self.pending[event.event_id] = _Pending(
            event.complaint_id, event.sequence, event.model_dump(mode="json"), correlation_id
        )
        return True

    async def parked(self, complaint_id: str) -> list[Parked]:
        mine = [p for p in self.pending.values() if p.complaint_id == complaint_id]
        return [
            Parked(ComplaintStatusChanged.model_validate(p.event), p.correlation_id)
            for p in sorted(mine, key=lambda p: p.sequence)
        ]

    async def unpark(self, event_id: str) -> None:
        self.pending.pop(event_id, None)

    async def claim(self, claim: Claim, *, now: datetime) -> DeliveryRecord:
        existing = self.deliveries.get(claim.delivery_id)
        if existing is None:
            record = DeliveryRecord(
                delivery_id=claim.delivery_id,
                complaint_id=claim.complaint_id,
                source_event_id=claim.source_event_id,
                recipient=claim.recipient,
                channel=claim.channel,
                template_code=claim.template_code,
                status=DeliveryStatus.SENDING,
                attempts=1,
                fresh=False,
                fallback_from=claim.fallback_from,
            )
            self.deliveries[claim.delivery_id] = record
            self.claims[claim.delivery_id] = (
                claim.source.model_dump(mode="json") if claim.source is not None else None,
                claim.correlation_id,
                stored(now),
            )
            return replace(record, fresh=True)
        if existing.status is DeliveryStatus.SENDING:
            return await self._resume(claim.delivery_id, now)
        return existing

    async def _resume(self, delivery_id: str, now: datetime) -> DeliveryRecord:
        existing = self.deliveries[delivery_id]
        if existing.status in (DeliveryStatus.SENDING, DeliveryStatus.RETRYING):
            existing = self.deliveries[delivery_id] = replace(
                existing, status=DeliveryStatus.SENDING, attempts=existing.attempts + 1
            )
            source, correlation_id, _ = self.claims.get(delivery_id, (None, None, now))
            self.claims[delivery_id] = (source, correlation_id, stored(now))
        return existing

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
        assert status is not DeliveryStatus.SENDING, "finish with an outcome"
        record = self.deliveries.get(delivery_id)
        assert record is not None, f"finish without a claim for {delivery_id}"
        if record.status is not DeliveryStatus.SENDING:
            return record
        record = self.deliveries[delivery_id] = replace(
            record,
            status=status,
            finished_at=stored(now),
            detail=detail,
            final=final,
            retryable=retryable,
            attempts=record.attempts + retries,
        )
        return record

    async def mark_published(self, delivery_id: str) -> None:
        if delivery_id in self.deliveries:
            self.deliveries[delivery_id] = replace(
                self.deliveries[delivery_id], outcome_published=True
            )

    async def mark_dead_lettered(self, delivery_id: str) -> None:
        if delivery_id in self.deliveries:
            self.deliveries[delivery_id] = replace(self.deliveries[delivery_id], dead_lettered=True)

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        return self.deliveries.get(delivery_id)

    async def defer(
        self,
        source: Source,
        recipient: str,
        *,
        correlation_id: str | None,
        release_at: datetime,
        now: datetime,
    ) -> bool:
        deferred_id = f"{source.event_id}:{recipient}"
        if deferred_id in self.deferred:
            return False
        self.deferred[deferred_id] = _Held(
            deferred_id=deferred_id,
            complaint_id=source.complaint_id,
            recipient=recipient,
            sequence=source.sequence if isinstance(source, ComplaintStatusChanged) else 0,
            source=source.model_dump(mode="json"),
            correlation_id=correlation_id,
            release_at=stored(release_at),
            deferred_at=stored(now),
        )
        return True

    async def due(self, now: datetime, limit: int = 500) -> list[Deferred]:
        ready = [h for h in self.deferred.values() if h.release_at <= stored(now)]
        ready.sort(key=lambda h: (h.release_at, h.complaint_id, h.sequence))
        return [h.read() for h in ready[:limit]]

    async def deferred_for(self, complaint_id: str, recipient: str) -> list[Deferred]:
        mine = [
            h
            for h in self.deferred.values()
            if h.complaint_id == complaint_id and h.recipient == recipient
        ]
        return [h.read() for h in sorted(mine, key=lambda h: (h.sequence, h.deferred_at))]

    async def undefer(self, deferred_id: str) -> None:
        self.deferred.pop(deferred_id, None)

    # -- a batch at a time; ``commands`` counts what MongoDB would have been asked --

    async def recipients_of(self, complaint_ids: Collection[str]) -> dict[str, Recipient]:
        self.commands += 1 if complaint_ids else 0
        return {c: self.recipients[c] for c in complaint_ids if c in self.recipients}

    async def remember_many(self, filings: Sequence[ComplaintFiled]) -> None:
        self.commands += 1 if filings else 0
        for filed in filings:
            await self.remember(filed)

    async def add_photos(self, added: Mapping[str, Sequence[str]]) -> None:
        self.commands += 1 if any(added.values()) else 0
        for cid, ids in added.items():
            known = self.recipients.get(cid)
            if known is not None:
                photos = tuple(dict.fromkeys((*known.photos, *ids)))
                self.recipients[cid] = replace(known, photos=photos)

    async def park_many(self, items: Sequence[Parked], *, now: datetime) -> set[str]:
        self.commands += 1 if items else 0
        return {
            p.event.event_id
            for p in items
            if await self.park(p.event, correlation_id=p.correlation_id, now=now)
        }

    async def parked_for(self, complaint_ids: Collection[str]) -> dict[str, list[Parked]]:
        self.commands += 1 if complaint_ids else 0
        found = {c: await self.parked(c) for c in complaint_ids}
        return {c: items for c, items in found.items() if items}

    async def unpark_many(self, event_ids: Collection[str]) -> None:
        self.commands += 1 if event_ids else 0
        for event_id in event_ids:
            self.pending.pop(event_id, None)

    async def records(self, delivery_ids: Collection[str]) -> dict[str, DeliveryRecord]:
        self.commands += 1 if delivery_ids else 0
        return {
            d: replace(self.deliveries[d], fresh=False)
            for d in delivery_ids
            if d in self.deliveries
        }

    async def claim_many(
        self, claims: Sequence[Claim], *, known: Mapping[str, DeliveryRecord], now: datetime
    ) -> list[DeliveryRecord]:
        unfinished = (DeliveryStatus.SENDING, DeliveryStatus.RETRYING)
        self.commands += (
            1
            if any(
                c.delivery_id not in known or known[c.delivery_id].status in unfinished
                for c in claims
            )
            else 0
        )
        records = []
        for claim in claims:
            record = known.get(claim.delivery_id)
            if record is not None and record.status not in unfinished:
                records.append(record)
            elif record is not None and claim.delivery_id in self.deliveries:
                records.append(replace(await self._resume(claim.delivery_id, now), fresh=False))
            else:
                records.append(await self.claim(claim, now=now))
        return records

    async def forget_failed(self, source_event_id: str) -> int:
        failed = [
            did
            for did, r in self.deliveries.items()
            if r.source_event_id == source_event_id and r.status is DeliveryStatus.FAILED
        ]
        for did in failed:
            del self.deliveries[did]
            self.claims.pop(did, None)
        return len(failed)

    async def stuck(self, before: datetime, *, limit: int = 200) -> list[Stuck]:
        self.commands += 2
        found: list[Stuck] = []
        for status in (DeliveryStatus.SENDING, DeliveryStatus.RETRYING):
            mine = []
            for did, record in self.deliveries.items():
                source, correlation_id, claimed_at = self.claims.get(did, (None, None, before))
                since = claimed_at if status is DeliveryStatus.SENDING else record.retry_at
                if (
                    record.status is status
                    and source is not None
                    and since is not None
                    and since < stored(before)
                ):
                    stuck = Stuck(
                        replace(record, fresh=False),
                        SOURCE.validate_python(source),
                        correlation_id,
                        claimed_at,
                    )
                    mine.append((since, stuck))
            found += [s for _, s in sorted(mine, key=lambda m: m[0])][:limit]
        return found[:limit]

    async def requeue_many(self, stuck: Sequence[Stuck], *, now: datetime) -> set[str]:
        marked: set[str] = set()
        for s in stuck:
            self.commands += 1
            did = s.record.delivery_id
            record = self.deliveries.get(did)
            if record is None or record.status is not s.record.status:
                continue
            if self.claims[did][2] != s.claimed_at or record.retry_at != s.record.retry_at:
                continue
            self.deliveries[did] = replace(
                record, status=DeliveryStatus.RETRYING, retry_at=stored(now)
            )
            marked.add(did)
        return marked

    async def settle(
        self, finishes: Sequence[Finish], marks: Sequence[Mark], *, now: datetime
    ) -> None:
        self.commands += 1 if finishes or marks else 0
        for f in finishes:
            record = self.deliveries.get(f.delivery_id)
            if record is None or record.status is not DeliveryStatus.SENDING:
                continue
            self.deliveries[f.delivery_id] = replace(f.applied_to(record), fresh=False)
        for mark in marks:
            if mark.published:
                await self.mark_published(mark.delivery_id)
            if mark.dead_lettered:
                await self.mark_dead_lettered(mark.delivery_id)

    async def counted(self, keys: Sequence[str]) -> dict[str, frozenset[str]]:
        self.commands += 1 if keys else 0
        return {k: frozenset(self.days[k]) for k in keys if k in self.days}

    async def count_many(
        self, added: Mapping[str, Sequence[str]], expires: Mapping[str, datetime]
    ) -> None:
        self.commands += 1 if any(added.values()) else 0
        for key, ids in added.items():
            self.days.setdefault(key, set()).update(ids)

    async def held_for(self, complaint_ids: Collection[str]) -> dict[str, list[Deferred]]:
        self.commands += 1 if complaint_ids else 0
        found: dict[str, list[Deferred]] = {}
        held = sorted(self.deferred.values(), key=lambda h: (h.sequence, h.deferred_at))
        for h in held:
            if h.complaint_id in complaint_ids:
                found.setdefault(h.complaint_id, []).append(h.read())
        return found

    async def defer_many(self, holds: Sequence[Hold], *, now: datetime) -> set[str]:
        self.commands += 1 if holds else 0
        return {
            h.deferred_id
            for h in holds
            if await self.defer(
                h.source,
                h.recipient,
                correlation_id=h.correlation_id,
                release_at=h.release_at,
                now=now,
            )
        }

    async def undefer_many(self, deferred_ids: Collection[str]) -> None:
        self.commands += 1 if deferred_ids else 0
        for deferred_id in deferred_ids:
            self.deferred.pop(deferred_id, None)


class MemoryChannel:
    """A channel that remembers what it was given, and knows what it delivered."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.sent: list[Message] = []

    async def deliver(self, message: Message) -> None:
        self.sent.append(message)

    async def already_delivered(self, delivery_id: str) -> bool:
        return any(m.delivery_id == delivery_id for m in self.sent)


@dataclass
class Published:
    """The publish callable, remembering instead of talking to Kafka."""

    published: list[tuple[str, NotificationOutcome, str | None]] = field(default_factory=list)
    retries: list[tuple[str, NotificationRetryScheduled, str | None]] = field(default_factory=list)
    """What went to the retry topic, apart from the outcomes."""

    async def __call__(
        self, topic: str, event: KeyedEvent, correlation_id: str | None = None
    ) -> None:
        if isinstance(event, NotificationRetryScheduled):
            self.retries.append((topic, event, correlation_id))
            return
        assert isinstance(event, NotificationOutcome), "notifier publishes outcomes and retries"
        self.published.append((topic, event, correlation_id))

    @property
    def outcomes(self) -> list[NotificationOutcome]:
        return [event for _, event, _ in self.published]

    def by(self, recipient: str) -> list[tuple[str, Outcome, str | None]]:
        """(channel, outcome, detail) of one recipient's outcomes, in publishing order."""
        return [(o.channel, o.outcome, o.detail) for o in self.outcomes if o.recipient == recipient]


@dataclass
class ManualClock:
    """A clock that stands still until a test moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


class InMemoryConfirmations:
    """``MongoConfirmations`` in a dict: which complaints' contacts were confirmed, when."""

    def __init__(self) -> None:
        self.confirmed_at: dict[str, datetime] = {}
        self.released: set[str] = set()

    async def ensure_indexes(self) -> None:
        return None

    async def confirm_many(self, complaint_ids: Collection[str], *, now: datetime) -> None:
        for cid in complaint_ids:
            self.confirmed_at.setdefault(cid, stored(now))

    async def confirmed(self, complaint_ids: Collection[str]) -> set[str]:
        return {cid for cid in complaint_ids if cid in self.confirmed_at}

    async def unreleased(self, complaint_ids: Collection[str]) -> set[str]:
        return {c for c in complaint_ids if c in self.confirmed_at and c not in self.released}

    async def mark_released(self, complaint_ids: Collection[str]) -> None:
        self.released |= set(complaint_ids)
