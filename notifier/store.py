"""What the handlers need to remember, and MongoDB's way of remembering it.

:class:`NotifierStore` is the contract: whom to tell, what was sent, and what waits.
:class:`MongoNotifierStore` keeps it in MongoDB; ``tests/fakes/notifier.py`` keeps it in
memory, and ``tests/contract/test_notifier_store.py`` holds both to the same promises.
The concepts and their rules live in their own modules (:mod:`notifier.ledger`,
:mod:`notifier.parking`, :mod:`notifier.deferral`); this module only stores them.

The handlers work a batch at a time (``recipients_of``, ``parked_for``, ``held_for``,
``records``, ``claim_many``, ``settle``…): each call is one MongoDB command whatever the
batch's size, and each filter is served by an index (``tests/service/
test_notifier_indexes.py`` checks them with ``explain``). The one-at-a-time calls remain
for the rare paths (a fallback's claim, the release loop's read) and for tests.

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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from pymongo import ASCENDING, IndexModel, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from notifier.deferral import SOURCE, Deferred, Hold, Source, sequence_of
from notifier.ledger import (
    Claim,
    DeliveryRecord,
    DeliveryStatus,
    Finish,
    Mark,
    delivery_id,
    new_record,
)
from notifier.parking import Parked
from schemas import ComplaintFiled, ComplaintStatusChanged
from services.mongo import Document

__all__ = [
    "DEFERRED",
    "DELIVERIES",
    "PENDING",
    "RECIPIENTS",
    "SOURCE",
    "Claim",
    "Deferred",
    "DeliveryRecord",
    "DeliveryStatus",
    "Finish",
    "Hold",
    "Mark",
    "MongoNotifierStore",
    "NotifierStore",
    "Parked",
    "Recipient",
    "Source",
    "delivery_id",
]

RECIPIENTS = "notifier_recipients"
DELIVERIES = "notifier_deliveries"
PENDING = "notifier_pending"
DEFERRED = "notifier_deferred"
DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Recipient:
    """The resident of one complaint. Contact fields stay out of ``repr`` (personal data)."""

    complaint_id: str
    receipt_number: str
    notification_consent: bool
    name: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)


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

    # -- a batch at a time: a handful of commands per batch, each served by an index --

    async def recipients_of(self, complaint_ids: Collection[str]) -> dict[str, Recipient]:
        """The residents remembered for these complaints (those known), in one read."""
        ...

    async def remember_many(self, filings: Sequence[ComplaintFiled]) -> None:
        """:meth:`remember` for a batch, in one write."""
        ...

    async def park_many(self, items: Sequence[Parked], *, now: datetime) -> set[str]:
        """:meth:`park` for a batch, in one write; the event ids parked for the first time."""
        ...

    async def parked_for(self, complaint_ids: Collection[str]) -> dict[str, list[Parked]]:
        """The parked events of these complaints, each complaint's in lifecycle order."""
        ...

    async def unpark_many(self, event_ids: Collection[str]) -> None: ...

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

    async def held_for(self, complaint_ids: Collection[str]) -> dict[str, list[Deferred]]:
        """What is held for these complaints, each complaint's in lifecycle order."""
        ...

    async def defer_many(self, holds: Sequence[Hold], *, now: datetime) -> set[str]:
        """:meth:`defer` for a batch, in one write; the deferred ids held the first time."""
        ...

    async def undefer_many(self, deferred_ids: Collection[str]) -> None: ...


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
                # A claim resumed and a delivery finished match {_id, status: sending};
                # SecantusDB's planner scans the collection for that unless an index has both.
                IndexModel([("_id", ASCENDING), ("status", ASCENDING)], name="by_id_and_status"),
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
        with contextlib.suppress(DuplicateKeyError):
            await self.recipients.update_one(
                {"_id": filed.complaint_id}, {"$setOnInsert": _recipient_doc(filed)}, upsert=True
            )

    async def recipient(self, complaint_id: str) -> Recipient | None:
        doc = await self.recipients.find_one({"_id": complaint_id})
        return None if doc is None else _recipient(doc)

    async def park(
        self, event: ComplaintStatusChanged, *, correlation_id: str | None, now: datetime
    ) -> bool:
        """Keep an event until its recipient is known; True the first time it is parked."""
        try:
            result = await self.pending.update_one(
                {"_id": event.event_id},
                {"$setOnInsert": _pending_doc(Parked(event, correlation_id), now)},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return result.upserted_id is not None

    async def parked(self, complaint_id: str) -> list[Parked]:
        """A complaint's parked events, in lifecycle order."""
        cursor = self.pending.find({"complaint_id": complaint_id}, sort=[("sequence", ASCENDING)])
        return [_parked(doc) async for doc in cursor]

    async def unpark(self, event_id: str) -> None:
        await self.pending.delete_one({"_id": event_id})

    async def claim(self, claim: Claim, *, now: datetime) -> DeliveryRecord:
        """Claim a delivery, or return the claim an earlier attempt made (one more attempt
        counted if it never finished)."""
        doc = _claim_doc(claim, now)
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
                "$set": _finish_fields(
                    Finish(
                        delivery_id=delivery_id,
                        status=status,
                        at=now,
                        detail=detail,
                        final=final,
                        retryable=retryable,
                    ),
                ),
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
        hold = Hold(source, recipient, correlation_id, release_at)
        try:
            result = await self.deferred.update_one(
                {"_id": hold.deferred_id}, {"$setOnInsert": _held_doc(hold, now)}, upsert=True
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

    # -- a batch at a time ----------------------------------------------------------

    async def recipients_of(self, complaint_ids: Collection[str]) -> dict[str, Recipient]:
        if not complaint_ids:
            return {}
        cursor = self.recipients.find({"_id": {"$in": list(complaint_ids)}})
        return {str(doc["_id"]): _recipient(doc) async for doc in cursor}

    async def remember_many(self, filings: Sequence[ComplaintFiled]) -> None:
        if not filings:
            return
        try:
            await self.recipients.bulk_write(
                [
                    UpdateOne(
                        {"_id": f.complaint_id}, {"$setOnInsert": _recipient_doc(f)}, upsert=True
                    )
                    for f in filings
                ],
                ordered=False,
            )
        except BulkWriteError as exc:
            _only_duplicates(exc)

    async def park_many(self, items: Sequence[Parked], *, now: datetime) -> set[str]:
        if not items:
            return set()
        requests = [
            UpdateOne(
                {"_id": p.event.event_id}, {"$setOnInsert": _pending_doc(p, now)}, upsert=True
            )
            for p in items
        ]
        try:
            result = await self.pending.bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            _only_duplicates(exc)
            upserted = exc.details.get("upserted", [])
            return {str(u["_id"]) for u in upserted}
        return {str(i) for i in (result.upserted_ids or {}).values()}

    async def parked_for(self, complaint_ids: Collection[str]) -> dict[str, list[Parked]]:
        if not complaint_ids:
            return {}
        cursor = self.pending.find(
            {"complaint_id": {"$in": list(complaint_ids)}},
            sort=[("complaint_id", ASCENDING), ("sequence", ASCENDING)],
        )
        found: dict[str, list[Parked]] = {}
        async for doc in cursor:
            found.setdefault(str(doc["complaint_id"]), []).append(_parked(doc))
        return found

    async def unpark_many(self, event_ids: Collection[str]) -> None:
        if event_ids:
            await self.pending.delete_many({"_id": {"$in": list(event_ids)}})

    async def records(self, delivery_ids: Collection[str]) -> dict[str, DeliveryRecord]:
        if not delivery_ids:
            return {}
        cursor = self.deliveries.find({"_id": {"$in": list(delivery_ids)}})
        return {str(doc["_id"]): _record(doc, fresh=False) async for doc in cursor}

    async def claim_many(
        self, claims: Sequence[Claim], *, known: Mapping[str, DeliveryRecord], now: datetime
    ) -> list[DeliveryRecord]:
        requests: list[InsertOne[Document] | UpdateOne] = []
        written: list[str] = []
        resumed: list[str] = []
        for claim in claims:
            record = known.get(claim.delivery_id)
            if record is None:
                written.append(claim.delivery_id)
                requests.append(InsertOne(_claim_doc(claim, now)))
            elif record.status is DeliveryStatus.SENDING:
                resumed.append(claim.delivery_id)
                written.append(claim.delivery_id)
                requests.append(
                    UpdateOne(
                        {"_id": claim.delivery_id, "status": DeliveryStatus.SENDING.value},
                        {"$inc": {"attempts": 1}, "$set": {"claimed_at": now}},
                    )
                )
        lost: set[str] = set()
        matched = len(resumed)
        if requests:
            try:
                result = await self.deliveries.bulk_write(requests, ordered=False)
                matched = result.matched_count
            except BulkWriteError as exc:
                _only_duplicates(exc)
                lost = {written[e["index"]] for e in exc.details["writeErrors"]}
                matched = int(exc.details.get("nMatched", 0))
        reread = lost | (set(resumed) if matched < len(resumed) else set())
        current = await self.records(reread) if reread else {}
        records: list[DeliveryRecord] = []
        for claim in claims:
            did = claim.delivery_id
            if did in current:
                records.append(current[did])
            elif did in known:
                record = known[did]
                if record.status is DeliveryStatus.SENDING:
                    record = replace(record, attempts=record.attempts + 1, fresh=False)
                records.append(record)
            else:
                records.append(new_record(claim))
        return records

    async def settle(
        self, finishes: Sequence[Finish], marks: Sequence[Mark], *, now: datetime
    ) -> None:
        requests: list[UpdateOne] = [
            UpdateOne(
                {"_id": f.delivery_id, "status": DeliveryStatus.SENDING.value},
                {"$set": _finish_fields(f), "$inc": {"attempts": f.retries}},
            )
            for f in finishes
        ]
        for mark in marks:
            fields: Document = {}
            if mark.published:
                fields["outcome_published"] = True
            if mark.dead_lettered:
                fields["dead_lettered"] = True
            if fields:
                requests.append(UpdateOne({"_id": mark.delivery_id}, {"$set": fields}))
        if requests:
            await self.deliveries.bulk_write(requests, ordered=False)

    async def held_for(self, complaint_ids: Collection[str]) -> dict[str, list[Deferred]]:
        if not complaint_ids:
            return {}
        cursor = self.deferred.find(
            {"complaint_id": {"$in": list(complaint_ids)}},
            sort=[("sequence", ASCENDING), ("deferred_at", ASCENDING)],
        )
        found: dict[str, list[Deferred]] = {}
        async for doc in cursor:
            found.setdefault(str(doc["complaint_id"]), []).append(_deferred(doc))
        return found

    async def defer_many(self, holds: Sequence[Hold], *, now: datetime) -> set[str]:
        if not holds:
            return set()
        requests = [
            UpdateOne({"_id": h.deferred_id}, {"$setOnInsert": _held_doc(h, now)}, upsert=True)
            for h in holds
        ]
        try:
            result = await self.deferred.bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            _only_duplicates(exc)
            return {str(u["_id"]) for u in exc.details.get("upserted", [])}
        return {str(i) for i in (result.upserted_ids or {}).values()}

    async def undefer_many(self, deferred_ids: Collection[str]) -> None:
        if deferred_ids:
            await self.deferred.delete_many({"_id": {"$in": list(deferred_ids)}})


def _only_duplicates(exc: BulkWriteError) -> None:
    """A bulk write of idempotent inserts and upserts: a duplicate key means another
    attempt wrote first. Anything else is re-raised."""
    errors = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
        raise exc


def _recipient_doc(filed: ComplaintFiled) -> Document:
    resident = filed.resident
    return {
        "receipt_number": filed.receipt_number,
        "name": resident.name,
        "phone": resident.phone,
        "email": resident.email,
        "notification_consent": resident.notification_consent,
        "filed_at": filed.occurred_at,
    }


def _recipient(doc: Document) -> Recipient:
    return Recipient(
        complaint_id=str(doc["_id"]),
        receipt_number=str(doc["receipt_number"]),
        notification_consent=bool(doc["notification_consent"]),
        name=_optional_str(doc.get("name")),
        phone=_optional_str(doc.get("phone")),
        email=_optional_str(doc.get("email")),
    )


def _pending_doc(item: Parked, now: datetime) -> Document:
    return {
        "complaint_id": item.event.complaint_id,
        "sequence": item.event.sequence,
        "event": item.event.model_dump(mode="json"),
        "correlation_id": item.correlation_id,
        "parked_at": now,
    }


def _parked(doc: Document) -> Parked:
    return Parked(
        event=ComplaintStatusChanged.model_validate(doc["event"]),
        correlation_id=_optional_str(doc.get("correlation_id")),
    )


def _claim_doc(claim: Claim, now: datetime) -> Document:
    return {
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


def _finish_fields(finish: Finish) -> Document:
    assert finish.status is not DeliveryStatus.SENDING, "finish with an outcome"
    fields: Document = {
        "status": finish.status.value,
        "finished_at": finish.at,
        "detail": finish.detail,
        "final": finish.final,
        "retryable": finish.retryable,
    }
    if finish.published:
        fields["outcome_published"] = True
    if finish.dead_lettered:
        fields["dead_lettered"] = True
    return fields


def _held_doc(hold: Hold, now: datetime) -> Document:
    return {
        "complaint_id": hold.source.complaint_id,
        "recipient": hold.recipient,
        "sequence": sequence_of(hold.source),
        "source": hold.source.model_dump(mode="json"),
        "correlation_id": hold.correlation_id,
        "release_at": hold.release_at,
        "deferred_at": now,
    }


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
