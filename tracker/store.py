"""tracker's storage: an append-only event log, and the complaint read models.

:class:`TrackerStore` is what the handlers and the rebuild need of it;
:class:`MongoTrackerStore` is the MongoDB adapter (``tests/fakes/tracker.py`` holds the
in-memory one, and ``tests/contract/test_tracker_store.py`` holds both to the same
behaviour).

Recording events is one bulk insert keyed by event id, so a redelivered event is a
duplicate key and changes nothing. A read model is never patched: it is projected from
all of the complaint's stored events and replaced, so it cannot drift from the log; and
it is written only for a complaint whose filing is stored, so every list and count below
sees filed complaints only.

Every query that serves a list reads only the fields its view declares
(:func:`stored_fields`), so a list that must not show personal data never has it in hand.
"""

import functools
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar, get_args, get_origin

from pydantic import BaseModel, TypeAdapter
from pymongo import ASCENDING, DESCENDING, IndexModel, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from schemas import ComplaintStatusChanged
from schemas.states import OPEN_STATES, ComplaintState
from services.mongo import Document, find_in, in_chunks
from tracker.projection import TRACKED_EVENT, ReadModel, TrackedEvent
from tracker.search import SearchQuery
from tracker.similar import SimilarRow
from tracker.statistics import StatisticsRow
from tracker.view import ComplaintSummary, QueueItem, SearchHit, TimelineEntry

EVENTS = "tracker_events"
COMPLAINTS = "tracker_complaints"
STATUS_CHANGED = "complaint.status_changed"
FILED = "complaint.filed"
DUPLICATE_KEY = 11000
OPEN = [state.value for state in OPEN_STATES]
QUEUE_ORDER = [
    ("overdue", DESCENDING),
    ("due_at", ASCENDING),
    ("filed_at", ASCENDING),
    ("_id", ASCENDING),
]
NEWEST_FIRST = [("filed_at", DESCENDING), ("_id", ASCENDING)]
TIMELINE: TypeAdapter[list[TimelineEntry]] = TypeAdapter(list[TimelineEntry])

View = TypeVar("View", bound=BaseModel)


class Appended(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


class TrackerStore(Protocol):
    """What tracker's handlers and its rebuild need of a store."""

    async def ensure_indexes(self) -> None: ...

    # -- the event log ----------------------------------------------------------------

    async def append_many(
        self, events: Sequence[TrackedEvent], *, stored_at: datetime
    ) -> list[Appended]:
        """Store each event once; one outcome per event, in order.

        DUPLICATE: that event id is in the log already (or earlier in the batch).
        CONFLICT: a different status change holds its (complaint, sequence); not stored.
        """
        ...

    async def histories(self, complaint_ids: Collection[str]) -> dict[str, list[TrackedEvent]]:
        """Every stored event of these complaints (those with none are left out)."""
        ...

    def all_histories(self) -> AsyncIterator[list[TrackedEvent]]:
        """Every complaint's stored events, one complaint at a time, by complaint id."""
        ...

    async def filed(self, complaint_ids: Collection[str]) -> set[str]:
        """Which of these complaints have their filing stored: those a read model is for."""
        ...

    # -- the read models --------------------------------------------------------------

    async def replace_read_models(self, models: Sequence[ReadModel]) -> None:
        """Store each read model unless the stored one was built from more events."""
        ...

    async def read_model(self, complaint_id: str) -> ReadModel | None: ...

    async def read_model_ids(self) -> list[str]: ...

    async def delete_read_models(self, complaint_ids: Collection[str]) -> None: ...

    # -- views --------------------------------------------------------------------------

    async def timeline(self, complaint_id: str) -> list[TimelineEntry] | None:
        """Only the timeline: what a live stream polls for, twice a second."""
        ...

    async def resident_complaints(
        self, resident_token_hash: str, *, limit: int, offset: int
    ) -> tuple[list[ComplaintSummary], int]:
        """A page of one resident's complaints, newest filed first, and how many in all."""
        ...

    async def queue(
        self, department: str, states: Collection[ComplaintState], *, limit: int, offset: int
    ) -> tuple[list[QueueItem], int]:
        """A page of a department's complaints in these states (none: every open state):
        overdue first, then by due time, then by filing; and how many in all."""
        ...

    async def queue_counts(self, department: str) -> dict[str, int]:
        """A department's open complaints per state (states with none left out)."""
        ...

    async def search(
        self, query: SearchQuery, *, limit: int, offset: int
    ) -> tuple[list[SearchHit], int]:
        """A page of the complaints matching every term and filter, newest filed first."""
        ...

    async def statistics_rows(
        self,
        *,
        department: str | None = None,
        filed_from: datetime | None = None,
        filed_to: datetime | None = None,
    ) -> list[StatisticsRow]: ...

    async def open_at(self, department: str, dong: str, *, limit: int) -> list[SimilarRow]:
        """Open complaints of one department in one 행정동, newest filed first, at most
        ``limit``: the candidates a resident about to file may be repeating."""
        ...


@functools.cache
def stored_fields(view: type[BaseModel]) -> tuple[str, ...]:
    """The read-model fields a view is validated from, named as a MongoDB projection names
    them: each field's own name or the one it reads (``validation_alias``), and for a list
    of models the fields that model reads (``timeline.state``)."""
    names: list[str] = []
    for name, field in view.model_fields.items():
        stored = field.validation_alias if isinstance(field.validation_alias, str) else name
        item = _listed_model(field.annotation)
        names += [f"{stored}.{sub}" for sub in stored_fields(item)] if item else [stored]
    return tuple(names)


def _listed_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is not list:
        return None
    (item,) = get_args(annotation)
    return item if isinstance(item, type) and issubclass(item, BaseModel) else None


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


def read_model_document(model: ReadModel) -> Document:
    return {"_id": model.complaint_id, **model.model_dump()}


def complaint_indexes() -> list[IndexModel]:
    """The read model's indexes: the queue, a resident's list, search, time ranges, a
    receipt number."""
    return [
        IndexModel([("department", ASCENDING), ("state", ASCENDING)], name="by_department"),
        IndexModel([("resident_token_hash", ASCENDING)], name="by_resident"),
        IndexModel([("bound_resident_hashes", ASCENDING)], name="by_bound_resident"),
        IndexModel([("search_terms", ASCENDING)], name="by_search_term"),
        IndexModel([("filed_at", DESCENDING)], name="by_filed_at"),
        # Open311 tokens/{receipt}, the portal's recovery and a clerk reading one out
        IndexModel([("receipt_number", ASCENDING)], name="by_receipt_number"),
        # '이미 접수된 민원': every field of the open-at-a-place filter (see ``open_at``).
        IndexModel(
            [("department", ASCENDING), ("dong", ASCENDING), ("state", ASCENDING)],
            name="by_place",
        ),
    ]


def projection(names: Iterable[str]) -> Document:
    return {"_id": False} | dict.fromkeys(names, True)


def open_at_filter(department: str, dong: str) -> Document:
    """Equality on department and 행정동, ``$in`` on state: the ``by_place`` index covers it
    (a range beside the ``$in`` would leave SecantusDB's planner to scan)."""
    return {
        "department": department,
        "dong": dong,
        "state": {"$in": sorted(s.value for s in OPEN_STATES)},
    }


def resident_filters(resident_token_hash: str) -> tuple[Document, Document]:
    """A resident's complaints: those filed with the token, and those bound to it by
    recovery since, each on its own index (the embedded server plans no index for an
    ``$or``, so the two are asked apart and merged)."""
    return (
        {"resident_token_hash": resident_token_hash},
        {"bound_resident_hashes": resident_token_hash},
    )


def queue_filter(department: str, states: Collection[ComplaintState]) -> Document:
    wanted = [s.value for s in states] if states else OPEN
    return {"department": department, "state": {"$in": wanted}}


def search_filter(query: SearchQuery) -> Document:
    """The MongoDB filter of a search: every term, and each filter given."""
    found: Document = {}
    if query.terms:
        found["search_terms"] = {"$all": list(query.terms)}
    if query.state is not None:
        found["state"] = query.state.value
    if query.department is not None:
        found["department"] = query.department
    if query.dong is not None:
        found["dong"] = query.dong
    if query.service_code is not None:
        found["service_code"] = query.service_code
    if query.receipt_number is not None:
        found["receipt_number"] = query.receipt_number
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


class MongoTrackerStore:
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
        await self.complaints.create_indexes(complaint_indexes())

    # -- the event log ----------------------------------------------------------------

    async def append_many(
        self, events: Sequence[TrackedEvent], *, stored_at: datetime
    ) -> list[Appended]:
        """One unordered bulk insert. A duplicate key is "already stored" when that event
        id is in the log, and a sequence conflict when it is not (the server may name
        either index when both clash, so the log is asked)."""
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
        """A few complaints per query (``find_in``): the embedded server's ``$in`` slows
        down more than linearly with its length."""
        found: dict[str, list[TrackedEvent]] = defaultdict(list)
        docs = await find_in(
            self.events,
            "complaint_id",
            sorted(complaint_ids),
            projection={"complaint_id": True, "payload": True},
        )
        for doc in docs:
            found[doc["complaint_id"]].append(TRACKED_EVENT.validate_python(doc["payload"]))
        return dict(found)

    async def all_histories(self) -> AsyncIterator[list[TrackedEvent]]:
        """One scan of the log in complaint order (the ``by_complaint`` index)."""
        current: str | None = None
        events: list[TrackedEvent] = []
        cursor = self.events.find(
            {}, projection={"complaint_id": True, "payload": True}, sort=[("complaint_id", 1)]
        )
        async for doc in cursor:
            if doc["complaint_id"] != current and events:
                yield events
                events = []
            current = doc["complaint_id"]
            events.append(TRACKED_EVENT.validate_python(doc["payload"]))
        if events:
            yield events

    async def filed(self, complaint_ids: Collection[str]) -> set[str]:
        found: set[str] = set()
        for chunk in in_chunks(complaint_ids):
            query = {"complaint_id": {"$in": chunk}, "event_type": FILED}
            found |= {str(cid) for cid in await self.events.distinct("complaint_id", query)}
        return found

    # -- the read models --------------------------------------------------------------

    async def replace_read_models(self, models: Sequence[ReadModel]) -> None:
        """Replace each read model unless the stored one was built from more events; the
        one write both the ingest and the rebuild make.

        Events are only ever added to the log, so of two read models of one complaint the
        one built from more events is the newer, and two built from as many events were
        built from the same events. Hence ``event_count <= new`` (``$lte``):

        - fewer loses: an ingest that read the history before a concurrent ingest added
          to it, or a rebuild that scanned the log before an ingest stored the
          complaint's next event, finds no match, its upsert hits the duplicate ``_id``,
          and the newer read model stays;
        - as many wins: the same events give the same document (a redelivered batch, two
          consumers refreshing one complaint: a harmless rewrite), unless the projection
          changed, and then replacing is what a rebuild is for. With ``$lt`` a rebuild
          after a projection change would leave every read model as it was.
        """
        if not models:
            return
        writes = [
            ReplaceOne(
                {"_id": model.complaint_id, "event_count": {"$lte": model.event_count}},
                read_model_document(model),
                upsert=True,
            )
            for model in models
        ]
        try:
            await self.complaints.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:  # a newer read model won: a duplicate _id on upsert
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def read_model(self, complaint_id: str) -> ReadModel | None:
        doc = await self.complaints.find_one({"_id": complaint_id})
        return None if doc is None else ReadModel.model_validate(doc)

    async def read_model_ids(self) -> list[str]:
        return [str(doc["_id"]) async for doc in self.complaints.find({}, projection={"_id": 1})]

    async def delete_read_models(self, complaint_ids: Collection[str]) -> None:
        await self.complaints.delete_many({"_id": {"$in": list(complaint_ids)}})

    # -- views --------------------------------------------------------------------------

    async def timeline(self, complaint_id: str) -> list[TimelineEntry] | None:
        doc = await self.complaints.find_one(
            {"_id": complaint_id}, projection={"_id": False, "timeline": True}
        )
        return None if doc is None else TIMELINE.validate_python(doc["timeline"])

    async def resident_complaints(
        self, resident_token_hash: str, *, limit: int, offset: int
    ) -> tuple[list[ComplaintSummary], int]:
        """Two indexed queries, each at most ``offset + limit`` long, merged newest first;
        the counts add up, less what is both (only asked when anything is bound)."""
        filed, bound = resident_filters(resident_token_hash)
        fields = projection(stored_fields(ComplaintSummary))
        found: dict[str, Document] = {}
        for query in (filed, bound):
            cursor = self.complaints.find(query, projection=fields)
            for doc in await cursor.sort(NEWEST_FIRST).limit(offset + limit).to_list():
                found.setdefault(str(doc["complaint_id"]), doc)
        merged = sorted(found.values(), key=lambda d: str(d["complaint_id"]))
        merged.sort(key=lambda d: (d.get("filed_at") is not None, d.get("filed_at")), reverse=True)
        items = [ComplaintSummary.model_validate(d) for d in merged[offset : offset + limit]]
        total = await self.complaints.count_documents(filed)
        also = await self.complaints.count_documents(bound)
        if also:
            total += also - await self.complaints.count_documents(filed | bound)
        return items, total

    async def queue(
        self, department: str, states: Collection[ComplaintState], *, limit: int, offset: int
    ) -> tuple[list[QueueItem], int]:
        query = queue_filter(department, states)
        return await self._page(QueueItem, query, QUEUE_ORDER, limit, offset)

    async def queue_counts(self, department: str) -> dict[str, int]:
        cursor = await self.complaints.aggregate(
            [
                {"$match": queue_filter(department, ())},
                {"$group": {"_id": "$state", "count": {"$sum": 1}}},
            ]
        )
        return {row["_id"]: int(row["count"]) async for row in cursor}

    async def search(
        self, query: SearchQuery, *, limit: int, offset: int
    ) -> tuple[list[SearchHit], int]:
        return await self._page(SearchHit, search_filter(query), NEWEST_FIRST, limit, offset)

    async def statistics_rows(
        self,
        *,
        department: str | None = None,
        filed_from: datetime | None = None,
        filed_to: datetime | None = None,
    ) -> list[StatisticsRow]:
        query = search_filter(
            SearchQuery(department=department, filed_from=filed_from, filed_to=filed_to)
        )
        cursor = self.complaints.find(query, projection=projection(stored_fields(StatisticsRow)))
        return [StatisticsRow.model_validate(doc) async for doc in cursor]

    async def open_at(self, department: str, dong: str, *, limit: int) -> list[SimilarRow]:
        cursor = self.complaints.find(
            open_at_filter(department, dong),
            projection=projection(stored_fields(SimilarRow)),
            sort=[("filed_at", DESCENDING)],
            limit=limit,
        )
        return [SimilarRow.model_validate(doc) async for doc in cursor]

    async def _page(
        self,
        view: type[View],
        query: Document,
        order: list[tuple[str, int]],
        limit: int,
        offset: int,
    ) -> tuple[list[View], int]:
        cursor = self.complaints.find(query, projection=projection(stored_fields(view)))
        docs = await cursor.sort(order).skip(offset).limit(limit).to_list()
        items = [view.model_validate(doc) for doc in docs]
        return items, await self.complaints.count_documents(query)
