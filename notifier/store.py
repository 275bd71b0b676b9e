"""What the handlers need to remember, and MongoDB's way of remembering it.

:class:`NotifierStore` is the contract: whom to tell, what was sent, and what waits.
:class:`MongoNotifierStore` keeps it in MongoDB; ``tests/fakes/notifier.py`` keeps it in
memory, and ``tests/contract/test_notifier_store.py`` holds both to the same promises.

``notifier_deliveries`` is the ledger that turns at-least-once Kafka into one message
per (event, recipient, channel): its ``_id`` is that triple, so claiming a delivery is
an insert that only one attempt can win. A claim still ``sending`` when the event comes
back means the attempt that made it stopped between claiming and finishing.

A delivery that failed on one channel and fell back to the next is two records: the
first ``failed`` and not ``final``, the next naming it in ``fallback_from``. The record
that ends a chain in failure is ``final`` and, once its dead letter is published,
``dead_lettered``, so a redelivery neither sends nor dead-letters again.

``notifier_pending`` holds lifecycle events that arrived before their complaint's
ComplaintFiled (the two travel on different topics), until the recipient is known.

``notifier_deferred`` holds what quiet hours hold back: the event and the recipient, and
when they may be told. The event is kept, not the text, so the message is made when it
is sent, exactly as it would have been at once.
"""

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import Field, TypeAdapter
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from schemas import ComplaintDeadlineAlert, ComplaintFiled, ComplaintStatusChanged
from services.mongo import Document

RECIPIENTS = "notifier_recipients"
DELIVERIES = "notifier_deliveries"
PENDING = "notifier_pending"
DEFERRED = "notifier_deferred"

Source = ComplaintStatusChanged | ComplaintDeadlineAlert
AnySource = Annotated[Source, Field(discriminator="event_type")]
SOURCE: TypeAdapter[Source] = TypeAdapter(AnySource)


@dataclass(frozen=True)
class Recipient:
    """The resident of one complaint. Contact fields stay out of ``repr`` (personal data)."""

    complaint_id: str
    receipt_number: str
    notification_consent: bool
    name: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)


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


@dataclass(frozen=True)
class Parked:
    event: ComplaintStatusChanged
    correlation_id: str | None


@dataclass(frozen=True)
class Deferred:
    deferred_id: str
    complaint_id: str
    recipient: str
    source: Source
    correlation_id: str | None
    release_at: datetime


def delivery_id(event_id: str, recipient: str, channel: str) -> str:
    return f"{event_id}:{recipient}:{channel}"


class NotifierStore(Protocol):
    """What the handlers need from storage. Every write is safe to repeat: Kafka
    redelivers, and a process may stop between any two calls."""

    async def ensure_indexes(self) -> None:
        """Prepare storage before the first message is consumed."""
        ...

    async def remember(self, filed: ComplaintFiled) -> None:
        """Keep the resident's contact. The first ComplaintFiled wins; a redelivery, or a
        concurrent one, changes nothing."""
        ...

    async def recipient(self, complaint_id: str) -> Recipient | None:
        """The resident remembered for a complaint; None until its ComplaintFiled came."""
        ...

    async def park(
        self, event: ComplaintStatusChanged, *, correlation_id: str | None, now: datetime
    ) -> bool:
        """Keep an event until its recipient is known; True the first time it is parked."""
        ...

    async def parked(self, complaint_id: str) -> list[Parked]:
        """A complaint's parked events, in lifecycle order."""
        ...

    async def unpark(self, event_id: str) -> None: ...

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

    async def defer(
        self,
        source: Source,
        recipient: str,
        *,
        correlation_id: str | None,
        release_at: datetime,
        now: datetime,
    ) -> bool:
        """Hold one recipient's message until ``release_at``; True the first time."""
        ...

    async def due(self, now: datetime, limit: int = 500) -> list[Deferred]:
        """Held messages whose time has come, oldest first, each complaint's in order."""
        ...

    async def deferred_for(self, complaint_id: str, recipient: str) -> list[Deferred]:
        """What is held for one recipient of a complaint, in lifecycle order."""
        ...

    async def undefer(self, deferred_id: str) -> None: ...


class MongoNotifierStore:
    """The store in four MongoDB collections (see the module docstring)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.recipients: AsyncCollection[Document] = db[RECIPIENTS]
        self.deliveries: AsyncCollection[Document] = db[DELIVERIES]
        self.pending: AsyncCollection[Document] = db[PENDING]
        self.deferred: AsyncCollection[Document] = db[DEFERRED]

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_indexes(
            [
                IndexModel([("complaint_id", ASCENDING)], name="by_complaint"),
                IndexModel([("status", ASCENDING), ("claimed_at", ASCENDING)], name="by_status"),
            ]
        )
        await self.pending.create_indexes(
            [
                IndexModel(
                    [("complaint_id", ASCENDING), ("sequence", ASCENDING)], name="by_complaint"
                )
            ]
        )
        await self.deferred.create_indexes(
            [
                IndexModel([("release_at", ASCENDING)], name="by_release"),
                IndexModel(
                    [("complaint_id", ASCENDING), ("recipient", ASCENDING)], name="by_recipient"
                ),
            ]
        )

    async def remember(self, filed: ComplaintFiled) -> None:
        """Keep the resident's contact. The first ComplaintFiled wins; redeliveries change
        nothing, and a concurrent one that upserted first is the same document."""
        resident = filed.resident
        with contextlib.suppress(DuplicateKeyError):
            await self.recipients.update_one(
                {"_id": filed.complaint_id},
                {
                    "$setOnInsert": {
                        "receipt_number": filed.receipt_number,
                        "name": resident.name,
                        "phone": resident.phone,
                        "email": resident.email,
                        "notification_consent": resident.notification_consent,
                        "filed_at": filed.occurred_at,
                    }
                },
                upsert=True,
            )

    async def recipient(self, complaint_id: str) -> Recipient | None:
        doc = await self.recipients.find_one({"_id": complaint_id})
        if doc is None:
            return None
        return Recipient(
            complaint_id=complaint_id,
            receipt_number=str(doc["receipt_number"]),
            notification_consent=bool(doc["notification_consent"]),
            name=_optional_str(doc.get("name")),
            phone=_optional_str(doc.get("phone")),
            email=_optional_str(doc.get("email")),
        )

    async def park(
        self, event: ComplaintStatusChanged, *, correlation_id: str | None, now: datetime
    ) -> bool:
        """Keep an event until its recipient is known; True the first time it is parked."""
        try:
            result = await self.pending.update_one(
                {"_id": event.event_id},
                {
                    "$setOnInsert": {
                        "complaint_id": event.complaint_id,
                        "sequence": event.sequence,
                        "event": event.model_dump(mode="json"),
                        "correlation_id": correlation_id,
                        "parked_at": now,
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return result.upserted_id is not None

    async def parked(self, complaint_id: str) -> list[Parked]:
        """A complaint's parked events, in lifecycle order."""
        cursor = self.pending.find({"complaint_id": complaint_id}, sort=[("sequence", ASCENDING)])
        return [
            Parked(
                event=ComplaintStatusChanged.model_validate(doc["event"]),
                correlation_id=_optional_str(doc.get("correlation_id")),
            )
            async for doc in cursor
        ]

    async def unpark(self, event_id: str) -> None:
        await self.pending.delete_one({"_id": event_id})

    async def claim(self, claim: Claim, *, now: datetime) -> DeliveryRecord:
        """Claim a delivery, or return the claim an earlier attempt made (one more attempt
        counted if it never finished)."""
        doc: Document = {
            "_id": claim.delivery_id,
            "complaint_id": claim.complaint_id,
            "source_event_id": claim.source_event_id,
            "recipient": claim.recipient,
            "channel": claim.channel,
            "template_code": claim.template_code,
            "status": DeliveryStatus.SENDING.value,
            "attempts": 1,
            "claimed_at": now,
            "outcome_published": False,
            "fallback_from": claim.fallback_from,
        }
        try:
            await self.deliveries.insert_one(doc)
        except DuplicateKeyError:
            pass
        else:
            return _record(doc, fresh=True)
        existing = await self.deliveries.find_one_and_update(
            {"_id": claim.delivery_id, "status": DeliveryStatus.SENDING.value},
            {"$inc": {"attempts": 1}, "$set": {"claimed_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if existing is None:
            existing = await self.deliveries.find_one({"_id": claim.delivery_id})
        assert existing is not None, "duplicate key without a document"
        return _record(existing, fresh=False)

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
        """Record how a claimed delivery ended; only a claim still sending can end.
        ``retries`` are the extra tries this attempt made, added to ``attempts``."""
        assert status is not DeliveryStatus.SENDING, "finish with an outcome"
        doc = await self.deliveries.find_one_and_update(
            {"_id": delivery_id, "status": DeliveryStatus.SENDING.value},
            {
                "$set": {
                    "status": status.value,
                    "finished_at": now,
                    "detail": detail,
                    "final": final,
                    "retryable": retryable,
                },
                "$inc": {"attempts": retries},
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            doc = await self.deliveries.find_one({"_id": delivery_id})
        assert doc is not None, f"finish without a claim for {delivery_id}"
        return _record(doc, fresh=False)

    async def mark_published(self, delivery_id: str) -> None:
        await self.deliveries.update_one(
            {"_id": delivery_id}, {"$set": {"outcome_published": True}}
        )

    async def mark_dead_lettered(self, delivery_id: str) -> None:
        await self.deliveries.update_one({"_id": delivery_id}, {"$set": {"dead_lettered": True}})

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        doc = await self.deliveries.find_one({"_id": delivery_id})
        return None if doc is None else _record(doc, fresh=False)

    async def defer(
        self,
        source: Source,
        recipient: str,
        *,
        correlation_id: str | None,
        release_at: datetime,
        now: datetime,
    ) -> bool:
        """Hold one recipient's message until ``release_at``; True the first time."""
        sequence = source.sequence if isinstance(source, ComplaintStatusChanged) else 0
        try:
            result = await self.deferred.update_one(
                {"_id": f"{source.event_id}:{recipient}"},
                {
                    "$setOnInsert": {
                        "complaint_id": source.complaint_id,
                        "recipient": recipient,
                        "sequence": sequence,
                        "source": source.model_dump(mode="json"),
                        "correlation_id": correlation_id,
                        "release_at": release_at,
                        "deferred_at": now,
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return result.upserted_id is not None

    async def due(self, now: datetime, limit: int = 500) -> list[Deferred]:
        """Held messages whose time has come, oldest first, each complaint's in order."""
        cursor = self.deferred.find(
            {"release_at": {"$lte": now}},
            sort=[("release_at", ASCENDING), ("complaint_id", ASCENDING), ("sequence", ASCENDING)],
            limit=limit,
        )
        return [_deferred(doc) async for doc in cursor]

    async def deferred_for(self, complaint_id: str, recipient: str) -> list[Deferred]:
        cursor = self.deferred.find(
            {"complaint_id": complaint_id, "recipient": recipient},
            sort=[("sequence", ASCENDING), ("deferred_at", ASCENDING)],
        )
        return [_deferred(doc) async for doc in cursor]

    async def undefer(self, deferred_id: str) -> None:
        await self.deferred.delete_one({"_id": deferred_id})


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _record(doc: Document, *, fresh: bool) -> DeliveryRecord:
    finished_at = doc.get("finished_at")
    attempts = doc.get("attempts", 1)
    return DeliveryRecord(
        delivery_id=str(doc["_id"]),
        complaint_id=str(doc["complaint_id"]),
        source_event_id=str(doc["source_event_id"]),
        recipient=str(doc["recipient"]),
        channel=str(doc["channel"]),
        template_code=str(doc["template_code"]),
        status=DeliveryStatus(str(doc["status"])),
        attempts=attempts if isinstance(attempts, int) else 1,
        fresh=fresh,
        detail=_optional_str(doc.get("detail")),
        finished_at=finished_at if isinstance(finished_at, datetime) else None,
        outcome_published=bool(doc.get("outcome_published", False)),
        fallback_from=_optional_str(doc.get("fallback_from")),
        final=bool(doc.get("final", True)),
        retryable=bool(doc.get("retryable", False)),
        dead_lettered=bool(doc.get("dead_lettered", False)),
    )


def _deferred(doc: Document) -> Deferred:
    release_at = doc["release_at"]
    assert isinstance(release_at, datetime)
    return Deferred(
        deferred_id=str(doc["_id"]),
        complaint_id=str(doc["complaint_id"]),
        recipient=str(doc["recipient"]),
        source=SOURCE.validate_python(doc["source"]),
        correlation_id=_optional_str(doc.get("correlation_id")),
        release_at=release_at,
    )
