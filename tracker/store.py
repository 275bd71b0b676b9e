"""tracker's MongoDB adapter: an append-only event log, and the complaint read models.

Recording events is one bulk insert keyed by event id, so a redelivered event is a
duplicate key and changes nothing. A read model is never patched: it is rebuilt from all
of the complaint's stored events and replaced, so it cannot drift from the log.

Every query that serves a view names the fields it reads, so a view that must not show
personal data never has it in hand.
"""

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from schemas import ComplaintStatusChanged
from schemas.states import OPEN_STATES, ComplaintState
from services.errors import PermanentError
from services.mongo import Document
from tracker.projection import TRACKED_EVENT, ReadModel, TrackedEvent, project
from tracker.search import SearchQuery

EVENTS = "tracker_events"
COMPLAINTS = "tracker_complaints"
STATUS_CHANGED = "complaint.status_changed"
DUPLICATE_KEY = 11000
HISTORIES_PER_QUERY = 16
OPEN = [state.value for state in OPEN_STATES]

SUMMARY_FIELDS = (
    "complaint_id",
    "receipt_number",
    "state",
    "department",
    "department_name",
    "handler",
    "due_at",
    "overdue",
    "filed_at",
    "updated_at",
    "title",
)
"""What a list may show of a complaint: no body, nothing about the resident."""
QUEUE_FIELDS = (*SUMMARY_FIELDS, "dong", "transfer_count", "reopen_count", "auto_routed")
SEARCH_FIELDS = (*QUEUE_FIELDS, "body")
STATISTICS_FIELDS = (
    "state",
    "department",
    "filed_at",
    "auto_routed",
    "transfer_count",
    "reopen_count",
    "timeline.state",
    "timeline.trigger",
    "timeline.occurred_at",
    "timeline.due_at",
)
QUEUE_ORDER = [
    ("overdue", DESCENDING),
    ("due_at", ASCENDING),
    ("filed_at", ASCENDING),
    ("_id", ASCENDING),
]
NEWEST_FIRST = [("filed_at", DESCENDING), ("_id", ASCENDING)]


class SequenceConflict(PermanentError):
    """A different status change already holds this (complaint, sequence): two histories.

    The stored one stays; this one is dead-lettered so an operator sees the conflict.
    """


class Appended(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def event_document(event: TrackedEvent, stored_at: datetime) -> Document:
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
    return doc


def complaint_indexes() -> list[IndexModel]:
    """The read model's indexes: the queue, a resident's list, search, time ranges."""
    return [
        IndexModel([("department", ASCENDING), ("state", ASCENDING)], name="by_department"),
        IndexModel([("resident_token_hash", ASCENDING)], name="by_resident"),
        IndexModel([("search_terms", ASCENDING)], name="by_search_term"),
        IndexModel([("filed_at", DESCENDING)], name="by_filed_at"),
    ]


def fields(names: Iterable[str]) -> Document:
    return {"_id": False} | dict.fromkeys(names, True)


class TrackerStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
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
        await self.complaints.create_indexes(complaint_indexes())

    # -- the event log ----------------------------------------------------------------

    async def append(self, event: TrackedEvent, *, stored_at: datetime) -> bool:
        """Store one event once. False when it was stored before (a redelivery).

        Raises SequenceConflict when another event already holds its sequence.
        """
        (outcome,) = await self.append_many([event], stored_at=stored_at)
        if outcome is Appended.CONFLICT:
            raise conflict(event)
        return outcome is Appended.STORED

    async def append_many(
        self, events: Sequence[TrackedEvent], *, stored_at: datetime
    ) -> list[Appended]:
        """Store a batch in one unordered bulk insert; one outcome per event, in order.

        A duplicate key is "already stored" when that event id is in the log, and a
        sequence conflict when it is not (the server may name either index when both
        clash, so the log is asked). A repeat inside the batch is a duplicate too.
        """
        first: dict[str, Appended] = {}
        docs: list[Document] = []
        for event in events:
            if event.event_id not in first:
                first[event.event_id] = Appended.STORED
                docs.append(event_document(event, stored_at))
        if docs:
            try:
                await self.events.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                first |= await self._clashes(exc, docs)
        outcomes = []
        seen: set[str] = set()
        for event in events:
            outcome = first[event.event_id]
            if event.event_id in seen and outcome is Appended.STORED:
                outcome = Appended.DUPLICATE
            seen.add(event.event_id)
            outcomes.append(outcome)
        return outcomes

    async def _clashes(self, exc: BulkWriteError, docs: list[Document]) -> dict[str, Appended]:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise exc
        clashed = [docs[error["index"]]["_id"] for error in errors]
        cursor = self.events.find({"_id": {"$in": clashed}}, projection={"_id": True})
        stored = {doc["_id"] async for doc in cursor}
        return {
            event_id: Appended.DUPLICATE if event_id in stored else Appended.CONFLICT
            for event_id in clashed
        }

    async def histories(self, complaint_ids: Collection[str]) -> dict[str, list[TrackedEvent]]:
        """Every stored event of these complaints, a few complaints per query (the
        embedded server's ``$in`` slows down more than linearly with its length)."""
        found: dict[str, list[TrackedEvent]] = defaultdict(list)
        wanted = sorted(complaint_ids)
        for start in range(0, len(wanted), HISTORIES_PER_QUERY):
            cursor = self.events.find(
                {"complaint_id": {"$in": wanted[start : start + HISTORIES_PER_QUERY]}},
                projection={"complaint_id": True, "payload": True},
            )
            async for doc in cursor:
                found[doc["complaint_id"]].append(TRACKED_EVENT.validate_python(doc["payload"]))
        return dict(found)

    async def history(self, complaint_id: str) -> list[TrackedEvent]:
        return (await self.histories([complaint_id])).get(complaint_id, [])

    # -- the read model ---------------------------------------------------------------

    async def refresh(self, complaint_id: str) -> None:
        await self.refresh_many([complaint_id])

    async def refresh_many(self, complaint_ids: Collection[str]) -> None:
        """Rebuild these complaints' read models from their whole histories and store them.

        Events are only ever added, so of two concurrent rebuilds the one that read more
        events is the newer: each replace is conditional on ``event_count`` growing, and a
        writer that lost the race finds a duplicate ``_id`` on upsert and stops there.
        """
        if not complaint_ids:
            return
        models = [project(events) for events in (await self.histories(complaint_ids)).values()]
        writes = [
            ReplaceOne(
                {"_id": model["_id"], "event_count": {"$lt": model["event_count"]}},
                model,
                upsert=True,
            )
            for model in models
        ]
        if not writes:
            return
        try:
            await self.complaints.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def read_model(self, complaint_id: str) -> ReadModel | None:
        return await self.complaints.find_one({"_id": complaint_id})

    async def timeline(self, complaint_id: str) -> ReadModel | None:
        """Only the timeline: what a live stream polls for, twice a second."""
        return await self.complaints.find_one(
            {"_id": complaint_id}, projection={"_id": False, "timeline": True}
        )

    # -- views ------------------------------------------------------------------------

    async def resident_complaints(
        self, resident_token_hash: str, *, limit: int, offset: int
    ) -> tuple[list[ReadModel], int]:
        query = {"resident_token_hash": resident_token_hash}
        return await self._page(query, SUMMARY_FIELDS, NEWEST_FIRST, limit, offset)

    async def queue(
        self, department: str, states: Collection[ComplaintState], *, limit: int, offset: int
    ) -> tuple[list[ReadModel], int]:
        """A department's open complaints: overdue first, then by due time."""
        wanted = [s.value for s in states] if states else OPEN
        query = {"department": department, "state": {"$in": wanted}}
        return await self._page(query, QUEUE_FIELDS, QUEUE_ORDER, limit, offset)

    async def queue_counts(self, department: str) -> dict[str, int]:
        cursor = await self.complaints.aggregate(
            [
                {"$match": {"department": department, "state": {"$in": OPEN}}},
                {"$group": {"_id": "$state", "count": {"$sum": 1}}},
            ]
        )
        return {row["_id"]: int(row["count"]) async for row in cursor}

    async def search(
        self, query: SearchQuery, *, limit: int, offset: int
    ) -> tuple[list[ReadModel], int]:
        return await self._page(search_filter(query), SEARCH_FIELDS, NEWEST_FIRST, limit, offset)

    async def statistics_rows(
        self,
        *,
        department: str | None = None,
        filed_from: datetime | None = None,
        filed_to: datetime | None = None,
    ) -> list[ReadModel]:
        query = search_filter(
            SearchQuery(department=department, filed_from=filed_from, filed_to=filed_to)
        )
        return await self.complaints.find(query, projection=fields(STATISTICS_FIELDS)).to_list()

    async def _page(
        self,
        query: Document,
        names: Iterable[str],
        order: list[tuple[str, int]],
        limit: int,
        offset: int,
    ) -> tuple[list[ReadModel], int]:
        cursor = self.complaints.find(query, projection=fields(names)).sort(order)
        items = await cursor.skip(offset).limit(limit).to_list()
        return items, await self.complaints.count_documents(query)


def search_filter(query: SearchQuery) -> Document:
    """The MongoDB filter of a search: every term, and each filter given."""
    found: dict[str, Any] = {}
    if query.terms:
        found["search_terms"] = {"$all": list(query.terms)}
    if query.state is not None:
        found["state"] = query.state.value
    if query.department is not None:
        found["department"] = query.department
    if query.dong is not None:
        found["dong"] = query.dong
    filed: Document = {}
    if query.filed_from is not None:
        filed["$gte"] = query.filed_from
    if query.filed_to is not None:
        filed["$lt"] = query.filed_to
    if filed:
        found["filed_at"] = filed
    if query.overdue is not None:
        found["overdue"] = query.overdue
    return found


def conflict(event: TrackedEvent) -> SequenceConflict:
    sequence = getattr(event, "sequence", None)
    return SequenceConflict(f"sequence {sequence} of this complaint is held by another event")
