"""``notifier_pending``: lifecycle events parked until their recipient is known."""

from collections.abc import Collection, Sequence
from datetime import datetime

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from notifier.mongo.common import only_duplicates, optional_str
from notifier.parking import Parked
from schemas import ComplaintStatusChanged
from services.mongo import Document, delete_in, find_in

PENDING = "notifier_pending"


class MongoParking:
    """Parked events in MongoDB, keyed by event id, read by complaint."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.pending: AsyncCollection[Document] = db[PENDING]

    async def ensure_parking_indexes(self) -> None:
        await self.pending.create_indexes(
            [
                IndexModel(
                    [("complaint_id", ASCENDING), ("sequence", ASCENDING)], name="by_complaint"
                )
            ]
        )

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
            only_duplicates(exc)
            upserted = exc.details.get("upserted", [])
            return {str(u["_id"]) for u in upserted}
        return {str(i) for i in (result.upserted_ids or {}).values()}

    async def parked_for(self, complaint_ids: Collection[str]) -> dict[str, list[Parked]]:
        if not complaint_ids:
            return {}
        parked = await find_in(
            self.pending,
            "complaint_id",
            complaint_ids,
            sort=[("complaint_id", ASCENDING), ("sequence", ASCENDING)],
        )
        found: dict[str, list[Parked]] = {}
        for doc in parked:
            found.setdefault(str(doc["complaint_id"]), []).append(_parked(doc))
        return found

    async def unpark_many(self, event_ids: Collection[str]) -> None:
        await delete_in(self.pending, "_id", event_ids)


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
        correlation_id=optional_str(doc.get("correlation_id")),
    )
