"""intake's MongoDB adapter: one document per filed complaint, doubling as its outbox.

The ComplaintFiled event is written in the same document as the dedup key, with
``published: false``; it is published afterwards and marked. A crash in between leaves
it for the relay (or the channel's retry) to publish again: same event id, so
downstream consumers see a duplicate, not a second complaint. The document is kept, so
the events of a window can be published again to a broker that lost them
(``published_since``, ``services.replay``).
"""

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from pymongo import ASCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from schemas import ComplaintFiled
from schemas.events import PhotoRef
from schemas.tokens import hash_token, token_matches
from services.mongo import Document, find_in, update_in

COLLECTION = "intake_complaints"
RESIDENTS = "intake_residents"
PHONE_DAYS = "intake_phone_days"
"""Filings per (keyed hash of a phone number, day): ``intake.limits.PhoneLimit``."""


@dataclass(frozen=True)
class FiledRecord:
    """A filed complaint. The tokens are known only to the request that filed it: intake
    stores their hashes (in ``filed``), so a record read back has ``None`` for both."""

    filed: ComplaintFiled
    tracking_token: str | None
    resident_token: str | None
    published: bool
    submission_id: str | None = None
    """The event id of the submission it was filed from: a redelivered submission (a crash
    between the insert and the offset commit) finds its complaint by it."""

    def stored(self) -> "FiledRecord":
        """The record as the store keeps it: without the tokens."""
        return replace(self, tracking_token=None, resident_token=None)


MAX_BOUND_RESIDENTS = 20
"""Devices one complaint may be bound to by recovery (``intake.recovery``): the oldest
binding goes when a newer one would pass it, so a document never grows without bound."""


@dataclass(frozen=True)
class Owner:
    """Whose a complaint is, as recovery reads it: the filer's resident token hash and
    those bound since (other devices), and the phone on file if it was given with consent
    to be told (personal data: out of ``repr``)."""

    complaint_id: str
    receipt_number: str
    resident_hashes: tuple[str, ...]
    phone: str | None = field(repr=False)


class Refused(Enum):
    """Why ``insert_many`` did not insert one complaint."""

    CHANNEL_REF = "channel_ref"
    """(channel, channel_ref) was filed already: a duplicate, not a new complaint."""
    RECEIPT = "receipt_number"
    """The receipt number drawn is taken already: the caller draws another."""
    SUBMISSION = "submission_id"
    """This submission (its event id) was filed already: a redelivery, not a new complaint."""


ChannelRef = tuple[str, str]
"""(channel, channel_ref): how an upstream channel names its own submission."""

DUPLICATE_KEY = 11000


RELAY_GRACE = timedelta(seconds=5)
"""How old an unpublished complaint must be before the relay takes it: younger ones are
most likely still being published by the request that filed them."""


class SubmissionStore(Protocol):
    """What intake's handlers need from storage: dedup, the outbox, resident tokens."""

    async def ensure_indexes(self) -> None: ...

    async def find_by_channel_refs(
        self, refs: Collection[ChannelRef]
    ) -> dict[ChannelRef, FiledRecord]:
        """The complaints already filed under any of ``refs``, in one round trip per channel."""
        ...

    async def find_by_submissions(self, submission_ids: Collection[str]) -> dict[str, FiledRecord]:
        """The complaints already filed from any of these submissions (by their event id)."""
        ...

    async def insert_many(self, records: Sequence[FiledRecord]) -> list[FiledRecord | Refused]:
        """Insert new, unpublished complaints in one write; per record, the record or why
        it was refused (a taken channel_ref, submission or receipt number). The others are
        inserted."""
        ...

    async def known_residents(self, resident_tokens: Collection[str]) -> set[str]:
        """Which of these resident tokens an earlier filing issued."""
        ...

    async def remember_residents(self, resident_tokens: Collection[str], at: datetime) -> None:
        """Record resident tokens as issued; the first record wins, repeats are no-ops."""
        ...

    async def token_matches(self, complaint_id: str, token: str) -> bool:
        """Whether ``token`` is this complaint's tracking token or the resident token of
        the resident who filed it (False for no such complaint)."""
        ...

    async def submission_of(self, complaint_id: str) -> str | None:
        """The submission a complaint was filed from, which its photos are attached to
        (None for no such complaint)."""
        ...

    async def photos_of(self, complaint_ids: Collection[str]) -> dict[str, list[PhotoRef]]:
        """The photos of each of these complaints that has any (attached at filing)."""
        ...

    async def owner_by_receipt(self, receipt_number: str) -> Owner | None:
        """The complaint with this receipt number, as recovery needs it."""
        ...

    async def owned_by(self, resident_hashes: Collection[str], *, limit: int) -> list[Owner]:
        """Complaints filed under, or bound to, any of these resident token hashes; at most
        ``limit``, newest filed first."""
        ...

    async def bind_resident(self, complaint_ids: Collection[str], resident_token_hash: str) -> None:
        """Let ``resident_token_hash`` stand for the resident of these complaints too
        (``token_matches`` accepts its token); a repeat changes nothing."""
        ...

    async def mark_published(self, complaint_id: str) -> None: ...

    async def mark_published_many(self, complaint_ids: Collection[str]) -> None: ...

    async def unpublished(self, *, older_than: datetime, limit: int = 500) -> list[FiledRecord]:
        """Unpublished complaints filed before ``older_than``, oldest first."""
        ...

    def published_since(self, since: datetime) -> AsyncIterator[FiledRecord]:
        """Published complaints filed at or after ``since``, oldest first (for a replay)."""
        ...

    async def count_phones(self, added: Mapping[str, tuple[int, datetime]]) -> dict[str, int]:
        """Add ``n`` filings under each key (a keyed hash of a phone and a day) and answer
        each key's count with them, in one write and one read; a key's count goes away
        after its ``expires_at``."""
        ...


OWNER_FIELDS: Document = {
    "receipt_number": 1,
    "event.resident_token_hash": 1,
    "event.resident.phone": 1,
    "event.resident.notification_consent": 1,
    "bound_residents": 1,
    "filed_at": 1,
}
"""What recovery reads of a complaint."""


def _reachable_phone(resident: Document) -> str | None:
    """The phone a code may go to: one given with consent to be told."""
    phone = resident.get("phone")
    return phone if phone and resident.get("notification_consent", True) else None


class MongoSubmissionStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.col: AsyncCollection[Document] = db[COLLECTION]
        self.residents: AsyncCollection[Document] = db[RESIDENTS]
        self.phone_days: AsyncCollection[Document] = db[PHONE_DAYS]

    async def ensure_indexes(self) -> None:
        await self.col.create_indexes(
            [
                IndexModel(
                    [("channel", ASCENDING), ("channel_ref", ASCENDING)],
                    unique=True,
                    partialFilterExpression={"channel_ref": {"$type": "string"}},
                    name="channel_ref_unique",
                ),
                # SecantusDB never plans a query on a partial index: this one serves lookups
                IndexModel(
                    [("channel", ASCENDING), ("channel_ref", ASCENDING)], name="channel_ref"
                ),
                IndexModel([("receipt_number", ASCENDING)], unique=True, name="receipt_unique"),
                IndexModel(
                    [("submission_id", ASCENDING)],
                    unique=True,
                    partialFilterExpression={"submission_id": {"$type": "string"}},
                    name="submission_unique",
                ),
                IndexModel([("submission_id", ASCENDING)], name="submission"),
                IndexModel([("published", ASCENDING), ("filed_at", ASCENDING)], name="outbox"),
                # recovery: a resident's complaints, filed from a device or bound to it since
                IndexModel([("event.resident_token_hash", ASCENDING)], name="by_resident"),
                IndexModel([("bound_residents", ASCENDING)], name="by_bound_resident"),
            ]
        )
        await self.phone_days.create_indexes(
            [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")]
        )
        # documents written before tokens were hashed: keep only the hashes (in the event)
        await self.col.update_many(
            {"tracking_token": {"$exists": True}},
            {"$unset": {"tracking_token": "", "resident_token": ""}},
        )

    async def count_phones(self, added: Mapping[str, tuple[int, datetime]]) -> dict[str, int]:
        """Upserts by ``_id`` (atomic per key across intake processes), then one read. Two
        first counts of a day racing may both insert; the loser's upsert is sent again and
        then finds the winner's."""
        if not added:
            return {}
        if len(added) == 1:  # a lone filing (a quiet intake): one round trip, not two
            [(key, (n, expires))] = added.items()
            return {key: await self._count_one(key, n, expires)}
        pending = dict(added)
        for attempt in range(2):
            requests = [
                UpdateOne(
                    {"_id": key},
                    {"$inc": {"n": n}, "$setOnInsert": {"expires_at": expires}},
                    upsert=True,
                )
                for key, (n, expires) in pending.items()
            ]
            keys = list(pending)
            try:
                await self.phone_days.bulk_write(requests, ordered=False)
                break
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if attempt or any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                pending = {keys[e["index"]]: pending[keys[e["index"]]] for e in errors}
        found = await find_in(self.phone_days, "_id", added, projection={"n": 1})
        return {str(doc["_id"]): int(doc["n"]) for doc in found}

    async def _count_one(self, key: str, n: int, expires: datetime) -> int:
        for attempt in range(2):
            try:
                doc = await self.phone_days.find_one_and_update(
                    {"_id": key},
                    {"$inc": {"n": n}, "$setOnInsert": {"expires_at": expires}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                if doc is None:  # a server that answers an upserted insert with nothing
                    doc = await self.phone_days.find_one({"_id": key}, {"n": 1})
                return int(doc["n"]) if doc else n
            except DuplicateKeyError:  # a racing first count of the day inserted it
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _record(doc: Document) -> FiledRecord:
        return FiledRecord(
            filed=ComplaintFiled.model_validate(doc["event"]),
            tracking_token=None,
            resident_token=None,
            published=bool(doc["published"]),
            submission_id=doc.get("submission_id"),
        )

    async def find_by_channel_refs(
        self, refs: Collection[ChannelRef]
    ) -> dict[ChannelRef, FiledRecord]:
        by_channel: dict[str, list[str]] = {}
        for channel, ref in refs:
            by_channel.setdefault(channel, []).append(ref)
        found: dict[ChannelRef, FiledRecord] = {}
        for channel, values in by_channel.items():
            for doc in await find_in(self.col, "channel_ref", values, where={"channel": channel}):
                found[(channel, str(doc["channel_ref"]))] = self._record(doc)
        return found

    @staticmethod
    def _document(record: FiledRecord) -> Document:
        filed = record.filed
        doc: Document = {
            "_id": filed.complaint_id,
            "channel": filed.channel.value,
            "receipt_number": filed.receipt_number,
            "event": filed.model_dump(mode="json"),
            "published": False,
            "filed_at": filed.occurred_at,
        }
        if filed.channel_ref is not None:
            doc["channel_ref"] = filed.channel_ref
        if record.submission_id is not None:
            doc["submission_id"] = record.submission_id
        return doc

    async def insert_many(self, records: Sequence[FiledRecord]) -> list[FiledRecord | Refused]:
        """One unordered insert; a refused record is told apart by the unique index it hit
        (its key pattern, never the message text, which holds the caller's channel_ref)."""
        outcome: list[FiledRecord | Refused] = list(records)
        if not records:
            return outcome
        try:
            await self.col.insert_many([self._document(r) for r in records], ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != DUPLICATE_KEY:
                    raise
                pattern = error.get("keyPattern") or {}
                if "receipt_number" in pattern:
                    outcome[error["index"]] = Refused.RECEIPT
                elif "submission_id" in pattern:
                    outcome[error["index"]] = Refused.SUBMISSION
                elif "channel_ref" in pattern:
                    outcome[error["index"]] = Refused.CHANNEL_REF
                else:  # an _id (uuid4) collision: not a state to paper over
                    raise
        return outcome

    async def find_by_submissions(self, submission_ids: Collection[str]) -> dict[str, FiledRecord]:
        if not submission_ids:
            return {}
        found = await find_in(self.col, "submission_id", submission_ids)
        return {str(doc["submission_id"]): self._record(doc) for doc in found}

    async def known_residents(self, resident_tokens: Collection[str]) -> set[str]:
        if not resident_tokens:
            return set()
        by_digest = {hash_token(t): t for t in resident_tokens}
        found = await find_in(self.residents, "_id", by_digest, projection={"_id": 1})
        return {by_digest[str(doc["_id"])] for doc in found}

    async def remember_residents(self, resident_tokens: Collection[str], at: datetime) -> None:
        docs = [{"_id": hash_token(t), "since": at} for t in set(resident_tokens)]
        if not docs:
            return
        try:
            await self.residents.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # already remembered: the first record wins
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def token_matches(self, complaint_id: str, token: str) -> bool:
        doc = await self.col.find_one(
            {"_id": complaint_id},
            projection={
                "event.tracking_token_hash": 1,
                "event.resident_token_hash": 1,
                "bound_residents": 1,
            },
        )
        if doc is None:
            return False
        event = doc["event"]
        hashes = [event["tracking_token_hash"], event.get("resident_token_hash")]
        return any(token_matches(token, h) for h in hashes + list(doc.get("bound_residents", [])))

    @staticmethod
    def _owner(doc: Document) -> Owner:
        event = doc["event"]
        filer = event.get("resident_token_hash")
        return Owner(
            complaint_id=str(doc["_id"]),
            receipt_number=str(doc["receipt_number"]),
            resident_hashes=tuple(
                dict.fromkeys([*([filer] if filer else []), *doc.get("bound_residents", [])])
            ),
            phone=_reachable_phone(event.get("resident") or {}),
        )

    async def owner_by_receipt(self, receipt_number: str) -> Owner | None:
        doc = await self.col.find_one({"receipt_number": receipt_number}, OWNER_FIELDS)
        return None if doc is None else self._owner(doc)

    async def owned_by(self, resident_hashes: Collection[str], *, limit: int) -> list[Owner]:
        """Two indexed queries (filed under, bound to) rather than one ``$or``."""
        if not resident_hashes:
            return []
        hashes = list(resident_hashes)
        found: dict[str, Document] = {}
        for query in (
            {"event.resident_token_hash": {"$in": hashes}},
            {"bound_residents": {"$in": hashes}},
        ):
            cursor = self.col.find(query, OWNER_FIELDS, sort=[("filed_at", -1)], limit=limit)
            async for doc in cursor:
                found[str(doc["_id"])] = doc
        newest = sorted(found.values(), key=lambda d: d["filed_at"], reverse=True)[:limit]
        return [self._owner(doc) for doc in newest]

    async def bind_resident(self, complaint_ids: Collection[str], resident_token_hash: str) -> None:
        if not complaint_ids:
            return
        await self.col.update_many(
            {"_id": {"$in": list(complaint_ids)}, "bound_residents": {"$ne": resident_token_hash}},
            {
                "$push": {
                    "bound_residents": {
                        "$each": [resident_token_hash],
                        "$slice": -MAX_BOUND_RESIDENTS,
                    }
                }
            },
        )

    async def submission_of(self, complaint_id: str) -> str | None:
        doc = await self.col.find_one({"_id": complaint_id}, projection={"submission_id": 1})
        submission_id = None if doc is None else doc.get("submission_id")
        return None if submission_id is None else str(submission_id)

    async def photos_of(self, complaint_ids: Collection[str]) -> dict[str, list[PhotoRef]]:
        if not complaint_ids:
            return {}
        found: dict[str, list[PhotoRef]] = {}
        for doc in await find_in(self.col, "_id", complaint_ids, projection={"event.photos": 1}):
            photos = doc.get("event", {}).get("photos") or []
            if photos:
                found[str(doc["_id"])] = [PhotoRef.model_validate(p) for p in photos]
        return found

    async def mark_published(self, complaint_id: str) -> None:
        await self.col.update_one({"_id": complaint_id}, {"$set": {"published": True}})

    async def mark_published_many(self, complaint_ids: Collection[str]) -> None:
        await update_in(self.col, "_id", complaint_ids, {"$set": {"published": True}})

    async def unpublished(self, *, older_than: datetime, limit: int = 500) -> list[FiledRecord]:
        cursor = self.col.find(
            {"published": False, "filed_at": {"$lt": older_than}},
            sort=[("filed_at", 1)],
            limit=limit,
        )
        return [self._record(doc) async for doc in cursor]

    async def published_since(self, since: datetime) -> AsyncIterator[FiledRecord]:
        cursor = self.col.find(
            {"published": True, "filed_at": {"$gte": since}}, sort=[("filed_at", 1)]
        )
        async for doc in cursor:
            yield self._record(doc)
