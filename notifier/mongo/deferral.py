"""``notifier_deferred``: messages quiet hours hold, one per event and recipient."""

from collections.abc import Collection, Sequence
from datetime import datetime

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from notifier.deferral import SOURCE, Deferred, Hold, Source, sequence_of
from notifier.mongo.common import only_duplicates, optional_str
from services.mongo import Document, delete_in, find_in

DEFERRED = "notifier_deferred"


class MongoDeferral:
    """Held messages in MongoDB, read by complaint and by release time."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.deferred: AsyncCollection[Document] = db[DEFERRED]

    async def ensure_deferral_indexes(self) -> None:
        await self.deferred.create_indexes(
            [
                IndexModel([("release_at", ASCENDING)], name="by_release"),
                IndexModel(
                    [("complaint_id", ASCENDING), ("recipient", ASCENDING)], name="by_recipient"
                ),
            ]
        )

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

    async def held_for(self, complaint_ids: Collection[str]) -> dict[str, list[Deferred]]:
        if not complaint_ids:
            return {}
        held = await find_in(
            self.deferred,
            "complaint_id",
            complaint_ids,
            sort=[("sequence", ASCENDING), ("deferred_at", ASCENDING)],
        )
        found: dict[str, list[Deferred]] = {}
        for doc in held:
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
            only_duplicates(exc)
            return {str(u["_id"]) for u in exc.details.get("upserted", [])}
        return {str(i) for i in (result.upserted_ids or {}).values()}

    async def undefer_many(self, deferred_ids: Collection[str]) -> None:
        await delete_in(self.deferred, "_id", deferred_ids)


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


def _deferred(doc: Document) -> Deferred:
    release_at = doc["release_at"]
    assert isinstance(release_at, datetime)
    return Deferred(
        deferred_id=str(doc["_id"]),
        complaint_id=str(doc["complaint_id"]),
        recipient=str(doc["recipient"]),
        source=SOURCE.validate_python(doc["source"]),
        correlation_id=optional_str(doc.get("correlation_id")),
        release_at=release_at,
    )
