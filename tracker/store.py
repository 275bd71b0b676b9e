"""tracker's MongoDB adapter: an append-only event log per complaint, and its read model.

Recording an event is one insert keyed by its event id, so a redelivered event is a
duplicate key and changes nothing. The read model is never patched: it is rebuilt from
all of the complaint's stored events and replaced, so it cannot drift from the log.
"""

import contextlib
from datetime import datetime

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from schemas import ComplaintStatusChanged
from services.errors import PermanentError
from services.mongo import Document
from tracker.projection import TRACKED_EVENT, ReadModel, TrackedEvent, project

EVENTS = "tracker_events"
COMPLAINTS = "tracker_complaints"
STATUS_CHANGED = "complaint.status_changed"


class SequenceConflict(PermanentError):
    """A different status change already holds this (complaint, sequence): two histories.

    The stored one stays; this one is dead-lettered so an operator sees the conflict.
    """


class TrackerStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.events: AsyncCollection[Document] = db[EVENTS]
        self.complaints: AsyncCollection[Document] = db[COMPLAINTS]

    async def ensure_indexes(self) -> None:
        await self.events.create_indexes(
            [
                IndexModel(
                    [("complaint_id", ASCENDING), ("sequence", ASCENDING)],
                    unique=True,
                    partialFilterExpression={"event_type": STATUS_CHANGED},
                    name="status_sequence_unique",
                ),
                IndexModel([("complaint_id", ASCENDING)], name="by_complaint"),
            ]
        )

    async def append(self, event: TrackedEvent, *, stored_at: datetime) -> bool:
        """Store an event once. False when it was stored before (a redelivery).

        Raises SequenceConflict when another event already holds its sequence.
        """
        doc: Document = {
            "_id": event.event_id,
            "complaint_id": event.complaint_id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at,
            "stored_at": stored_at,
            "payload": event.model_dump(mode="json"),
        }
        if isinstance(event, ComplaintStatusChanged):
            doc["sequence"] = event.sequence
        try:
            await self.events.insert_one(doc)
        except DuplicateKeyError as exc:
            # The server may name either index when both clash, so ask what is stored.
            if await self.events.count_documents({"_id": event.event_id}, limit=1):
                return False
            raise SequenceConflict(
                f"sequence {doc.get('sequence')} of this complaint is held by another event"
            ) from exc
        return True

    async def history(self, complaint_id: str) -> list[TrackedEvent]:
        cursor = self.events.find({"complaint_id": complaint_id}, projection={"payload": True})
        return [TRACKED_EVENT.validate_python(doc["payload"]) async for doc in cursor]

    async def refresh(self, complaint_id: str) -> None:
        """Rebuild the read model from the whole history and store it.

        Events are only ever added, so of two concurrent rebuilds the one that read more
        events is the newer: the replace is conditional on ``event_count`` growing, and a
        writer that lost the race finds a duplicate ``_id`` on upsert and stops.
        """
        model = project(await self.history(complaint_id))
        with contextlib.suppress(DuplicateKeyError):
            await self.complaints.replace_one(
                {"_id": complaint_id, "event_count": {"$lt": model["event_count"]}},
                model,
                upsert=True,
            )

    async def read_model(self, complaint_id: str) -> ReadModel | None:
        return await self.complaints.find_one({"_id": complaint_id})
