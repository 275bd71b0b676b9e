"""tracker's store in memory, for the unit tier.

Honest where the handlers could tell the difference, and held to it by
``tests/contract/test_tracker_store.py``: documents are stored as BSON round-trips of
what ``MongoTrackerStore`` writes (datetimes in UTC to the millisecond, enums as
strings), queries are the same filter documents evaluated here, lists read only the
fields their view declares, sorting puts nulls first as MongoDB does, and a status change
claiming a held sequence is refused as the unique index refuses it.
"""

import operator
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import bson
from bson.codec_options import CodecOptions
from pydantic import BaseModel

from schemas.states import ComplaintState
from services.mongo import Document
from tracker.projection import TRACKED_EVENT, ReadModel, TrackedEvent
from tracker.search import SearchQuery
from tracker.similar import SimilarRow
from tracker.statistics import StatisticsRow
from tracker.store import (
    FILED,
    NEWEST_FIRST,
    QUEUE_ORDER,
    TIMELINE,
    Appended,
    event_document,
    open_at_filter,
    queue_filter,
    read_model_document,
    resident_filters,
    search_filter,
    stored_fields,
)
from tracker.view import ComplaintSummary, QueueItem, SearchHit, TimelineEntry

View = TypeVar("View", bound=BaseModel)
_BSON: CodecOptions[Document] = CodecOptions(tz_aware=True)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gte": operator.ge,
    "$gt": operator.gt,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def as_stored(doc: Document) -> Document:
    """What the server gives back for a document it was given."""
    return bson.decode(bson.encode(doc), codec_options=_BSON)


def projected(doc: Document, names: Iterable[str]) -> Document:
    """What a MongoDB projection of these fields returns; ``a.b`` reads ``b`` of each
    document in the array ``a``."""
    found: Document = {}
    for name in names:
        top, _, sub = name.partition(".")
        if top not in doc:
            continue
        value = doc[top]
        if not sub:
            found[top] = value
        elif isinstance(value, list):
            entries = found.setdefault(top, [{} for _ in value])
            for target, entry in zip(entries, value, strict=True):
                if isinstance(entry, dict) and sub in entry:
                    target[sub] = entry[sub]
    return found


def matches(doc: Document, query: Document) -> bool:
    """The filters tracker's store builds: equality (a list field matches a value it
    holds, as in MongoDB), ``$in``, ``$all``, ranges and ``$or``."""
    for name, wanted in query.items():
        if name == "$or":
            if not any(matches(doc, branch) for branch in wanted):
                return False
            continue
        value = doc.get(name)
        if not isinstance(wanted, dict):
            if value != wanted and not (isinstance(value, list) and wanted in value):
                return False
            continue
        for op, operand in wanted.items():
            if op == "$in":
                ok = value in operand
            elif op == "$all":
                ok = isinstance(value, list) and all(term in value for term in operand)
            else:
                ok = value is not None and _COMPARE[op](value, operand)
            if not ok:
                return False
    return True


def ordered(docs: Iterable[Document], order: Sequence[tuple[str, int]]) -> list[Document]:
    """Sorted as MongoDB sorts: by each key in turn, null or missing before any value."""
    result = list(docs)
    for name, direction in reversed(order):
        result.sort(
            key=lambda doc: (doc.get(name) is not None, doc.get(name)), reverse=direction < 0
        )
    return result


class InMemoryTrackerStore:
    def __init__(self) -> None:
        self.events: dict[str, Document] = {}
        self.sequences: dict[tuple[str, int], str] = {}
        self.complaints: dict[str, Document] = {}

    async def ensure_indexes(self) -> None:
        return None

    # -- the event log ----------------------------------------------------------------

    async def append_many(
        self, events: Sequence[TrackedEvent], *, stored_at: datetime
    ) -> list[Appended]:
        first: dict[str, Appended] = {}
        for event in events:
            if event.event_id in first:
                continue
            doc = event_document(event, stored_at)
            held = (event.complaint_id, doc.get("sequence", 0))
            if event.event_id in self.events:
                first[event.event_id] = Appended.DUPLICATE
            elif "sequence" in doc and held in self.sequences:
                first[event.event_id] = Appended.CONFLICT
            else:
                self.events[event.event_id] = as_stored(doc)
                if "sequence" in doc:
                    self.sequences[held] = event.event_id
                first[event.event_id] = Appended.STORED
        outcomes = []
        seen: set[str] = set()
        for event in events:
            outcome = first[event.event_id]
            if event.event_id in seen and outcome is Appended.STORED:
                outcome = Appended.DUPLICATE
            seen.add(event.event_id)
            outcomes.append(outcome)
        return outcomes

    async def histories(self, complaint_ids: Collection[str]) -> dict[str, list[TrackedEvent]]:
        found: dict[str, list[TrackedEvent]] = {}
        for doc in self.events.values():
            if doc["complaint_id"] in complaint_ids:
                event = TRACKED_EVENT.validate_python(doc["payload"])
                found.setdefault(doc["complaint_id"], []).append(event)
        return found

    async def all_histories(self) -> AsyncIterator[list[TrackedEvent]]:
        complaint_ids = sorted({doc["complaint_id"] for doc in self.events.values()})
        for complaint_id in complaint_ids:
            yield (await self.histories([complaint_id]))[complaint_id]

    async def filed(self, complaint_ids: Collection[str]) -> set[str]:
        found = {d["complaint_id"] for d in self.events.values() if d["event_type"] == FILED}
        return found & set(complaint_ids)

    # -- the read models --------------------------------------------------------------

    async def replace_read_models(self, models: Sequence[ReadModel]) -> None:
        for model in models:
            stored = self.complaints.get(model.complaint_id)
            count = None if stored is None else stored.get("event_count")
            if stored is None or (isinstance(count, int) and count <= model.event_count):
                self.complaints[model.complaint_id] = as_stored(read_model_document(model))

    async def read_model(self, complaint_id: str) -> ReadModel | None:
        doc = self.complaints.get(complaint_id)
        return None if doc is None else ReadModel.model_validate(doc)

    async def read_model_ids(self) -> list[str]:
        return list(self.complaints)

    async def delete_read_models(self, complaint_ids: Collection[str]) -> None:
        for complaint_id in complaint_ids:
            self.complaints.pop(complaint_id, None)

    # -- views --------------------------------------------------------------------------

    async def timeline(self, complaint_id: str) -> list[TimelineEntry] | None:
        doc = self.complaints.get(complaint_id)
        return None if doc is None else TIMELINE.validate_python(doc["timeline"])

    async def resident_complaints(
        self, resident_token_hash: str, *, limit: int, offset: int
    ) -> tuple[list[ComplaintSummary], int]:
        query = {"$or": list(resident_filters(resident_token_hash))}
        return self._page(ComplaintSummary, query, NEWEST_FIRST, limit, offset)

    async def queue(
        self, department: str, states: Collection[ComplaintState], *, limit: int, offset: int
    ) -> tuple[list[QueueItem], int]:
        return self._page(QueueItem, queue_filter(department, states), QUEUE_ORDER, limit, offset)

    async def queue_counts(self, department: str) -> dict[str, int]:
        query = queue_filter(department, ())
        return dict(Counter(doc["state"] for doc in self._find(query)))

    async def search(
        self, query: SearchQuery, *, limit: int, offset: int
    ) -> tuple[list[SearchHit], int]:
        return self._page(SearchHit, search_filter(query), NEWEST_FIRST, limit, offset)

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
        names = stored_fields(StatisticsRow)
        return [StatisticsRow.model_validate(projected(doc, names)) for doc in self._find(query)]

    async def open_at(self, department: str, dong: str, *, limit: int) -> list[SimilarRow]:
        found = ordered(self._find(open_at_filter(department, dong)), [("filed_at", -1)])
        names = stored_fields(SimilarRow)
        return [SimilarRow.model_validate(projected(doc, names)) for doc in found[:limit]]

    def _find(self, query: Document) -> list[Document]:
        return [doc for doc in self.complaints.values() if matches(doc, query)]

    def _page(
        self,
        view: type[View],
        query: Document,
        order: Sequence[tuple[str, int]],
        limit: int,
        offset: int,
    ) -> tuple[list[View], int]:
        found = ordered(self._find(query), order)
        names = stored_fields(view)
        items = [view.model_validate(projected(doc, names)) for doc in found[offset:][:limit]]
        return items, len(found)
