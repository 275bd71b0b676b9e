"""routing's store: one document per complaint holding its state and its outbox.

A state change, the id of the message that caused it and the events it produces are
written in one single-document update guarded by the current sequence (optimistic
concurrency). Events are then published and removed from the outbox; a crash in
between leaves them to be published again with the same ids (a harmless duplicate).
With ``keep_published`` (the memory-only broker) published events are moved to
``routing_published`` for that long (a TTL index) instead of being dropped, so they can
be published again to a broker that lost them (``services.replay``).

:class:`RoutingStore` is what the handlers need; :class:`MongoRoutingStore` is the
MongoDB adapter, and ``tests/fakes/routing.py`` holds the in-memory one that
``tests/contract/test_routing_store.py`` checks against it.
"""

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from routing.assignment import Load
from schemas import ComplaintStatusChanged
from schemas.events import HandlerRef
from schemas.states import OPEN_STATES, ComplaintState
from services.mongo import Document

COLLECTION = "routing_complaints"
TRANSFERS = "routing_transfer_examples"
PUBLISHED = "routing_published"
DUPLICATE_KEY = 11000
PROCESSED_KEPT = 500
RUNNING_CLOCK = frozenset(OPEN_STATES - {ComplaintState.INFO_REQUESTED})
"""Open states whose deadline clock runs (보완 요청 pauses it)."""


class RoutingRecord(BaseModel):
    """A complaint as routing keeps it: its state, the facts its decisions need, the ids
    of the messages it has processed and the events not yet published."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True)

    complaint_id: str = Field(alias="_id")
    receipt_number: str
    area: str | None = None
    state: ComplaintState
    sequence: int
    department: str | None = None
    department_name: str | None = None
    handler: HandlerRef | None = None
    due_at: datetime | None = None
    updated_at: datetime | None = None
    auto_routed: bool = False
    confidence: float = 0.0
    service_code: str | None = None
    text: str = ""
    received_at: datetime | None = None
    original_due_at: datetime | None = None
    extensions: int = 0
    transfer_count: int = 0
    reopen_count: int = 0
    resume_state: ComplaintState | None = None
    paused_at: datetime | None = None
    sla_sent: tuple[str, ...] = ()
    processed: tuple[str, ...] = ()
    outbox: tuple[ComplaintStatusChanged, ...] = ()
    outbox_pending: bool = False

    def has_processed(self, message_id: str) -> bool:
        return message_id in self.processed


class Changes(BaseModel):
    """Fields a command sets beside those its events carry. Only the fields given are
    written, so ``Changes(paused_at=None)`` clears one and ``Changes()`` touches none."""

    model_config = ConfigDict(frozen=True)

    resume_state: ComplaintState | None = None
    paused_at: datetime | None = None
    received_at: datetime | None = None
    original_due_at: datetime | None = None
    extensions: int | None = None


@dataclass(frozen=True)
class Counts:
    """Counters a command adds to."""

    extensions: int = 0
    transfer_count: int = 0
    reopen_count: int = 0

    def nonzero(self) -> dict[str, int]:
        return {name: n for name, n in asdict(self).items() if n}


@dataclass(frozen=True, kw_only=True)
class Transfer:
    """A transfer (이송) as kept, once per causing command, for retraining the classifier."""

    caused_by: str
    complaint_id: str
    text: str
    from_department: str | None
    to_department: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class TransferExample:
    """A transfer (이송) read as a labelled example: this text belongs to that department."""

    text: str
    department: str


class RoutingStore(Protocol):
    """What routing's handlers need from storage."""

    async def ensure_indexes(self) -> None: ...

    async def get(self, complaint_id: str) -> RoutingRecord | None: ...

    async def create(self, record: RoutingRecord) -> bool:
        """Insert a new complaint with its first events. False if it already exists."""
        ...

    async def advance(
        self,
        record: RoutingRecord,
        *,
        caused_by: str,
        events: Sequence[ComplaintStatusChanged],
        changes: Changes = ...,
        counts: Counts = ...,
    ) -> bool:
        """Apply events if nobody moved the complaint since ``record`` was read. False on
        a lost race (or a complaint that does not exist)."""
        ...

    async def clear_outbox(
        self, complaint_id: str, event_ids: Sequence[str], up_to_sequence: int
    ) -> None:
        """Remove published events; no longer pending unless events came after them."""
        ...

    async def pending_outboxes(self, limit: int = 200) -> list[RoutingRecord]: ...

    def published_since(self, since: datetime) -> AsyncIterator[ComplaintStatusChanged]:
        """Events published since ``since`` and still kept, in the order they were
        published (each complaint's by sequence); nothing unless the store keeps them."""
        ...

    async def with_running_clock(self) -> list[RoutingRecord]:
        """Open complaints with a due time whose deadline clock is running."""
        ...

    async def mark_alert(self, complaint_id: str, key: str) -> None: ...

    async def loads(self, handler_ids: Sequence[str]) -> dict[str, Load]:
        """Open and total complaints of each handler (zero for one with none)."""
        ...

    async def record_transfer(self, transfer: Transfer) -> None:
        """Keep a transfer as a training example, once per causing command."""
        ...

    async def transfer_examples(self) -> list[TransferExample]:
        """Every transfer so far, oldest first."""
        ...


def _document(record: RoutingRecord) -> Document:
    doc = record.model_dump(by_alias=True, mode="python")
    for name in ("sla_sent", "processed", "outbox"):
        doc[name] = list(doc[name])
    return doc


def _state_fields(events: Sequence[ComplaintStatusChanged]) -> Document:
    last = events[-1]
    return {
        "state": last.to_state.value,
        "sequence": last.sequence,
        "department": last.department,
        "department_name": last.department_name,
        "handler": None if last.handler is None else last.handler.model_dump(),
        "due_at": last.due_at,
        "updated_at": last.occurred_at,
    }


class MongoRoutingStore:
    def __init__(
        self, db: AsyncDatabase[Document], *, keep_published: timedelta | None = None
    ) -> None:
        self.col: AsyncCollection[Document] = db[COLLECTION]
        self.transfers: AsyncCollection[Document] = db[TRANSFERS]
        self.published: AsyncCollection[Document] = db[PUBLISHED]
        self.keep_published = keep_published

    async def ensure_indexes(self) -> None:
        await self.col.create_indexes(
            [
                IndexModel(
                    [("department", ASCENDING), ("state", ASCENDING)], name="department_state"
                ),
                IndexModel(
                    [("handler.handler_id", ASCENDING), ("state", ASCENDING)], name="handler_state"
                ),
                IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
                IndexModel([("state", ASCENDING), ("due_at", ASCENDING)], name="deadline_clock"),
            ]
        )
        if self.keep_published is not None:
            await self._ensure_retention(self.keep_published)

    async def _ensure_retention(self, keep: timedelta) -> None:
        """A TTL index on the published events; a changed window is applied in place."""
        seconds = int(keep.total_seconds())
        indexes = await self.published.index_information()
        if "published_ttl" in indexes and indexes["published_ttl"].get("expireAfterSeconds") != (
            seconds
        ):
            await self.published.drop_index("published_ttl")
        await self.published.create_index(
            [("published_at", ASCENDING)], name="published_ttl", expireAfterSeconds=seconds
        )

    async def get(self, complaint_id: str) -> RoutingRecord | None:
        doc = await self.col.find_one({"_id": complaint_id})
        return None if doc is None else RoutingRecord.model_validate(doc)

    async def create(self, record: RoutingRecord) -> bool:
        try:
            await self.col.insert_one(_document(record))
        except DuplicateKeyError:
            return False
        return True

    async def advance(
        self,
        record: RoutingRecord,
        *,
        caused_by: str,
        events: Sequence[ComplaintStatusChanged],
        changes: Changes = Changes(),  # noqa: B008 - frozen, never mutated
        counts: Counts = Counts(),
    ) -> bool:
        update: dict[str, Any] = {
            "$set": {
                **changes.model_dump(mode="python", exclude_unset=True),
                **_state_fields(events),
                "outbox_pending": True,
            },
        }
        if inc := counts.nonzero():
            update["$inc"] = inc
        result = await self.col.update_one(
            {"_id": record.complaint_id, "sequence": record.sequence},
            update
            | {
                "$push": {
                    "outbox": {"$each": [e.model_dump(mode="python") for e in events]},
                    "processed": {"$each": [caused_by], "$slice": -PROCESSED_KEPT},
                },
            },
        )
        return result.modified_count == 1

    async def record_transfer(self, transfer: Transfer) -> None:
        """Every transfer (이송) is a labelled example for retraining the classifier."""
        with contextlib.suppress(DuplicateKeyError):
            await self.transfers.insert_one(
                {
                    "_id": transfer.caused_by,
                    "complaint_id": transfer.complaint_id,
                    "text": transfer.text,
                    "from_department": transfer.from_department,
                    "department": transfer.to_department,
                    "reason": transfer.reason,
                    "at": transfer.at,
                }
            )

    async def transfer_examples(self) -> list[TransferExample]:
        return [
            TransferExample(text=str(doc["text"]), department=str(doc["department"]))
            async for doc in self.transfers.find({}, sort=[("at", 1)])
        ]

    async def clear_outbox(
        self, complaint_id: str, event_ids: Sequence[str], up_to_sequence: int
    ) -> None:
        """One update when nothing was appended meanwhile (the usual case): then the
        outbox is empty and no longer pending."""
        pull = {"$pull": {"outbox": {"event_id": {"$in": list(event_ids)}}}}
        if self.keep_published is not None:
            await self._move_to_published(complaint_id, event_ids, up_to_sequence, pull)
            return
        result = await self.col.update_one(
            {"_id": complaint_id, "sequence": up_to_sequence},
            pull | {"$set": {"outbox_pending": False}},
        )
        if result.matched_count == 0:
            await self.col.update_one({"_id": complaint_id}, pull)

    async def _move_to_published(
        self,
        complaint_id: str,
        event_ids: Sequence[str],
        up_to_sequence: int,
        pull: Document,
    ) -> None:
        """The same pull, answered with the document as it was (so the events come back
        without a read first), then the events kept; a repeat is a duplicate key, ignored."""
        before = await self.col.find_one_and_update(
            {"_id": complaint_id, "sequence": up_to_sequence},
            pull | {"$set": {"outbox_pending": False}},
            projection={"outbox": 1},
        )
        if before is None:
            before = await self.col.find_one_and_update(
                {"_id": complaint_id}, pull, projection={"outbox": 1}
            )
        wanted = set(event_ids)
        events = [e for e in (before or {}).get("outbox", []) if e["event_id"] in wanted]
        if not events:
            return
        now = datetime.now(UTC)
        try:
            await self.published.insert_many(
                [
                    {
                        "_id": e["event_id"],
                        "complaint_id": complaint_id,
                        "sequence": e["sequence"],
                        "published_at": now,
                        "event": e,
                    }
                    for e in events
                ],
                ordered=False,
            )
        except BulkWriteError as exc:  # kept by an earlier pass: fine; anything else is not
            if any(err.get("code") != DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                raise

    async def pending_outboxes(self, limit: int = 200) -> list[RoutingRecord]:
        cursor = self.col.find({"outbox_pending": True}, limit=limit)
        return [RoutingRecord.model_validate(doc) async for doc in cursor]

    async def published_since(self, since: datetime) -> AsyncIterator[ComplaintStatusChanged]:
        cursor = self.published.find(
            {"published_at": {"$gte": since}},
            sort=[
                ("published_at", ASCENDING),
                ("complaint_id", ASCENDING),
                ("sequence", ASCENDING),
            ],
        )
        async for doc in cursor:
            yield ComplaintStatusChanged.model_validate(doc["event"])

    async def with_running_clock(self) -> list[RoutingRecord]:
        running = [s.value for s in RUNNING_CLOCK]
        cursor = self.col.find({"state": {"$in": running}, "due_at": {"$ne": None}})
        return [RoutingRecord.model_validate(doc) async for doc in cursor]

    async def mark_alert(self, complaint_id: str, key: str) -> None:
        await self.col.update_one({"_id": complaint_id}, {"$addToSet": {"sla_sent": key}})

    async def loads(self, handler_ids: Sequence[str]) -> dict[str, Load]:
        """Counted from the complaints themselves. Only the handlers that could take the
        complaint are counted, each with two indexed counts, so the cost does not grow
        with the department's history."""
        open_states = [s.value for s in OPEN_STATES]
        loads = {}
        for handler_id in handler_ids:
            total = await self.col.count_documents({"handler.handler_id": handler_id})
            still_open = await self.col.count_documents(
                {"handler.handler_id": handler_id, "state": {"$in": open_states}}
            )
            loads[handler_id] = Load(open=still_open, total=total)
        return loads
