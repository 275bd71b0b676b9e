"""intake's MongoDB adapter: one document per filed complaint, doubling as its outbox.

The ComplaintFiled event is written in the same document as the dedup key, with
``published: false``; it is published afterwards and marked. A crash in between leaves
it for the relay (or the channel's retry) to publish again: same event id, so
downstream consumers see a duplicate, not a second complaint. The document is kept, so
the events of a window can be published again to a broker that lost them
(``published_since``, ``services.replay``).
"""

import contextlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from schemas import ComplaintFiled
from schemas.tokens import hash_token
from services.mongo import Document

COLLECTION = "intake_complaints"
RESIDENTS = "intake_residents"


@dataclass(frozen=True)
class FiledRecord:
    filed: ComplaintFiled
    tracking_token: str
    resident_token: str
    published: bool


class ReceiptCollision(Exception):
    """The receipt number drawn is taken already: the caller draws another."""


RELAY_GRACE = timedelta(seconds=5)
"""How old an unpublished complaint must be before the relay takes it: younger ones are
most likely still being published by the request that filed them."""


class SubmissionStore(Protocol):
    """What intake's handlers need from storage: dedup, the outbox, resident tokens."""

    async def ensure_indexes(self) -> None: ...

    async def find_by_channel_ref(self, channel: str, channel_ref: str) -> FiledRecord | None: ...

    async def insert(
        self, filed: ComplaintFiled, tracking_token: str, resident_token: str
    ) -> FiledRecord | None:
        """Insert a new complaint, unpublished. None if (channel, channel_ref) was filed
        already; raises ReceiptCollision when the receipt number is taken."""
        ...

    async def known_resident(self, resident_token: str) -> bool: ...

    async def remember_resident(self, resident_token: str, at: datetime) -> None:
        """Record a resident token as issued; the first record wins, repeats are no-ops."""
        ...

    async def token_matches(self, complaint_id: str, token: str) -> bool:
        """Whether ``token`` is this complaint's tracking token (False for no such complaint)."""
        ...

    async def mark_published(self, complaint_id: str) -> None: ...

    async def unpublished(self, *, older_than: datetime, limit: int = 500) -> list[FiledRecord]:
        """Unpublished complaints filed before ``older_than``, oldest first."""
        ...

    def published_since(self, since: datetime) -> AsyncIterator[FiledRecord]:
        """Published complaints filed at or after ``since``, oldest first (for a replay)."""
        ...


class MongoSubmissionStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.col: AsyncCollection[Document] = db[COLLECTION]
        self.residents: AsyncCollection[Document] = db[RESIDENTS]

    async def ensure_indexes(self) -> None:
        await self.col.create_indexes(
            [
                IndexModel(
                    [("channel", ASCENDING), ("channel_ref", ASCENDING)],
                    unique=True,
                    partialFilterExpression={"channel_ref": {"$type": "string"}},
                    name="channel_ref_unique",
                ),
                IndexModel([("receipt_number", ASCENDING)], unique=True, name="receipt_unique"),
                IndexModel([("published", ASCENDING), ("filed_at", ASCENDING)], name="outbox"),
            ]
        )

    @staticmethod
    def _record(doc: Document) -> FiledRecord:
        return FiledRecord(
            filed=ComplaintFiled.model_validate(doc["event"]),
            tracking_token=str(doc["tracking_token"]),
            resident_token=str(doc.get("resident_token", "")),
            published=bool(doc["published"]),
        )

    async def find_by_channel_ref(self, channel: str, channel_ref: str) -> FiledRecord | None:
        doc = await self.col.find_one({"channel": channel, "channel_ref": channel_ref})
        return None if doc is None else self._record(doc)

    async def insert(
        self, filed: ComplaintFiled, tracking_token: str, resident_token: str
    ) -> FiledRecord | None:
        """Insert a new complaint. None if (channel, channel_ref) was filed already.

        Raises ReceiptCollision when the receipt number is taken (the caller draws again).
        """
        doc: Document = {
            "_id": filed.complaint_id,
            "channel": filed.channel.value,
            "receipt_number": filed.receipt_number,
            "tracking_token": tracking_token,
            "resident_token": resident_token,
            "event": filed.model_dump(mode="json"),
            "published": False,
            "filed_at": filed.occurred_at,
        }
        if filed.channel_ref is not None:
            doc["channel_ref"] = filed.channel_ref
        try:
            await self.col.insert_one(doc)
        except DuplicateKeyError as exc:
            if "receipt" in str(exc.details or exc):
                raise ReceiptCollision from exc
            return None
        return FiledRecord(
            filed=filed,
            tracking_token=tracking_token,
            resident_token=resident_token,
            published=False,
        )

    async def known_resident(self, resident_token: str) -> bool:
        """Whether this resident token was issued by an earlier filing."""
        digest = hash_token(resident_token)
        return await self.residents.find_one({"_id": digest}) is not None

    async def remember_resident(self, resident_token: str, at: datetime) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.residents.insert_one({"_id": hash_token(resident_token), "since": at})

    async def token_matches(self, complaint_id: str, token: str) -> bool:
        doc = await self.col.find_one({"_id": complaint_id}, projection={"tracking_token": 1})
        if doc is None:
            return False
        return hmac.compare_digest(str(doc["tracking_token"]).encode(), token.encode())

    async def mark_published(self, complaint_id: str) -> None:
        await self.col.update_one({"_id": complaint_id}, {"$set": {"published": True}})

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
