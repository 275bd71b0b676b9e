"""routing's store: one document per complaint holding its state and its outbox.

A state change, the ids of the messages that caused it and the events it produces are
written in one single-document update guarded by the current sequence (optimistic
concurrency); a batch writes all its complaints so in one bulk write (``write_many``).
Events are then published and removed from the outbox; a crash in between leaves them to
be published again with the same ids (a harmless duplicate).

Handler loads are counters (``routing_handler_loads``), not counts over the complaints:
each write stages its load deltas in the complaint (``load_deltas``, ``loads_pending``),
they are applied after the write, each at most once per handler (its key is remembered),
and a crash in between leaves them staged for ``pending_loads``. Every hot-path query is
served by an index: SecantusDB's planner uses one only when it covers every field of the
filter, hence ``(_id, sequence)`` for the guard.
With ``keep_published`` (the memory-only broker) published events are moved to
``routing_published`` for that long (a TTL index) instead of being dropped, so they can
be published again to a broker that lost them (``services.replay``).

:class:`RoutingStore` is what the handlers need; :class:`MongoRoutingStore` is the
MongoDB adapter, and ``tests/fakes/routing.py`` holds the in-memory one that
``tests/contract/test_routing_store.py`` checks against it.
"""

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from routing.assignment import Held, Load, LoadDelta, load_deltas
from routing.cases import case_key, repeat_key
from schemas import ComplaintStatusChanged
from schemas.events import HandlerRef, LinkedTo, RepeatedOf
from schemas.states import CONCLUDED_STATES, OPEN_STATES, ComplaintState
from services.mongo import Document, delete_in, find_in

COLLECTION = "routing_complaints"
TRANSFERS = "routing_transfer_examples"
LOADS = "routing_handler_loads"
PUBLISHED = "routing_published"
DUPLICATE_KEY = 11000
PROCESSED_KEPT = 500
APPLIED_KEPT = 500
"""Load deltas remembered per handler, so a delta applied again (recovery) counts once."""
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
    load_deltas: tuple[LoadDelta, ...] = ()
    loads_pending: bool = False
    next_alert_at: datetime | None = None
    """When the deadline watcher should look at it next (None: its clock is not running)."""
    resident_key: str | None = None
    """One resident across filings (``routing.cases.resident_key``): a hash, never contact."""
    terms: tuple[str, ...] = ()
    """The text's features for similarity (``routing.similarity``), computed at filing."""
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    concluded_at: datetime | None = None
    """When it was last resolved or closed."""
    result: str | None = None
    """The department's answer (the note of the last resolve)."""
    repeated_of: RepeatedOf | None = None
    linked_to: LinkedTo | None = None
    title: str | None = None
    """The title as filed or corrected: a correction that names the same one changes nothing."""
    rated: bool = False
    """The resident rated the current resolution (a reopening clears it)."""
    photos: tuple[str, ...] = ()
    """The ids of the photos attached, at filing and by corrections: a correction that
    names one of them again (a retry) adds nothing."""

    def has_processed(self, message_id: str) -> bool:
        return message_id in self.processed


Complaint = RoutingRecord
"""The aggregate ``routing.complaint.decide`` works on: the record as routing keeps it."""


@dataclass(frozen=True)
class Write:
    """One complaint's new state after a batch, applied only at the sequence it was read at
    (``before``; None for a complaint not stored yet). The events and message ids are the
    ones this write adds to the outbox and the processed ids."""

    before: RoutingRecord | None
    after: RoutingRecord
    events: tuple[ComplaintStatusChanged, ...]
    caused_by: tuple[str, ...]


@dataclass(frozen=True)
class Cleared:
    """Events of one complaint that are published: see ``clear_outbox``."""

    complaint_id: str
    event_ids: tuple[str, ...]
    up_to_sequence: int
    events: tuple[ComplaintStatusChanged, ...] = ()
    """The events themselves, for a store that keeps what was published (replay)."""


class Changes(BaseModel):
    """Fields a command sets beside those its events carry. Only the fields given are
    written, so ``Changes(paused_at=None)`` clears one and ``Changes()`` touches none."""

    model_config = ConfigDict(frozen=True)

    resume_state: ComplaintState | None = None
    paused_at: datetime | None = None
    received_at: datetime | None = None
    original_due_at: datetime | None = None
    extensions: int | None = None
    result: str | None = None
    repeated_of: RepeatedOf | None = None
    linked_to: LinkedTo | None = None
    area: str | None = None
    address: str | None = None
    title: str | None = None
    rated: bool | None = None
    photos: tuple[str, ...] | None = None


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
class CaseLookup:
    """What a batch of new complaints looks up (``routing.cases``)."""

    repeat_keys: frozenset[str]
    repeat_since: datetime
    case_keys: frozenset[str]
    case_since: datetime


@dataclass(frozen=True)
class TransferExample:
    """A transfer (이송) read as a labelled example: this text belongs to that department."""

    text: str
    department: str


@dataclass(frozen=True)
class TransferLabel:
    """A transfer (이송) read for learning: which command made it, when, and the label."""

    label_id: str
    text: str
    department: str
    at: datetime


class RoutingStore(Protocol):
    """What routing's handlers need from storage."""

    async def ensure_indexes(self) -> None: ...

    async def get(self, complaint_id: str) -> RoutingRecord | None: ...

    async def get_many(self, complaint_ids: Collection[str]) -> dict[str, RoutingRecord]:
        """The stored ones of these complaints, in one query."""
        ...

    async def write_many(self, writes: Sequence[Write]) -> list[bool]:
        """Insert new complaints and apply the others, each only if nobody moved it since it
        was read, in one bulk write: per write, whether it was applied. The load deltas each
        write carries are staged in its record (``loads_pending``) for ``apply_loads``."""
        ...

    async def apply_loads(self, deltas: Sequence[LoadDelta]) -> None:
        """Add deltas to the handlers' counters, each once however often it is applied."""
        ...

    async def clear_outboxes(self, cleared: Sequence[Cleared]) -> None:
        """``clear_outbox`` for many complaints in one bulk write; a complaint whose events
        are cleared at its sequence has its load deltas applied too (they are applied
        before publishing), so it is no longer ``loads_pending``."""
        ...

    async def pending_loads(
        self, limit: int = 200, staged_before: datetime | None = None
    ) -> list[RoutingRecord]:
        """Complaints whose load deltas may not be applied yet (a crash after the write);
        with ``staged_before``, only those last changed at or before it (a batch still
        working on the others will settle them itself)."""
        ...

    async def settle_loads(self, records: Sequence[RoutingRecord]) -> None:
        """Mark these complaints' load deltas applied, unless they moved on since."""
        ...

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

    async def pending_outboxes(
        self, limit: int = 200, staged_before: datetime | None = None
    ) -> list[RoutingRecord]:
        """Complaints with events not yet published; ``staged_before`` as for
        ``pending_loads``."""
        ...

    def published_since(self, since: datetime) -> AsyncIterator[ComplaintStatusChanged]:
        """Events published since ``since`` and still kept, in the order they were
        published (each complaint's by sequence); nothing unless the store keeps them."""
        ...

    async def with_running_clock(self) -> list[RoutingRecord]:
        """Open complaints with a due time whose deadline clock is running."""
        ...

    async def mark_alert(self, complaint_id: str, key: str) -> None: ...

    async def alerts_due(self, now: datetime, limit: int = 500) -> list[RoutingRecord]:
        """Complaints whose next deadline threshold is at or before ``now``."""
        ...

    async def mark_alerts(
        self, record: RoutingRecord, keys: Sequence[str], next_alert_at: datetime | None
    ) -> None:
        """Record alerts sent and when to look next; if the complaint moved on since
        ``record`` was read, its own next time stands and only the keys are added."""
        ...

    async def unscheduled(self, limit: int = 500) -> list[RoutingRecord]:
        """Running clocks stored before ``next_alert_at`` was kept."""
        ...

    async def schedule(self, times: Sequence[tuple[RoutingRecord, datetime | None]]) -> None:
        """Set ``next_alert_at`` of complaints not moved since read."""
        ...

    async def loads(self, handler_ids: Collection[str]) -> dict[str, Load]:
        """Open and total complaints of each handler (zero for one with none)."""
        ...

    async def record_transfer(self, transfer: Transfer) -> None:
        """Keep a transfer as a training example, once per causing command."""
        ...

    async def case_candidates(self, lookup: "CaseLookup", limit: int = 200) -> list[RoutingRecord]:
        """Stored complaints a batch's new ones may repeat or join: concluded since
        ``repeat_since`` under one of ``repeat_keys``, or received since ``case_since``
        under one of ``case_keys``; at most ``limit`` of each kind, the latest first."""
        ...

    async def linked_to_cases(self, case_ids: Collection[str]) -> list[RoutingRecord]:
        """The complaints linked to these cases (중복민원), in one query."""
        ...

    async def transfer_examples(self) -> list[TransferExample]:
        """Every transfer so far, oldest first."""
        ...

    async def count_transfers(self) -> int:
        """How many transfers are kept: learning polls it to see new labels arrive."""
        ...

    async def transfer_labels(self) -> list[TransferLabel]:
        """Every transfer so far with its id, oldest first (ties by id)."""
        ...


def _staged(flag: str, before: datetime | None) -> Document:
    """Records with ``flag`` set; with ``before``, only those last changed at or before it
    (``updated_at`` is the time of the decision that staged them)."""
    return {flag: True} if before is None else {flag: True, "updated_at": {"$lte": before}}


def _document(record: RoutingRecord) -> Document:
    doc = record.model_dump(by_alias=True, mode="python")
    for name in ("sla_sent", "processed", "outbox", "load_deltas", "terms"):
        doc[name] = list(doc[name])
    doc |= lookup_keys(record)
    return doc


def lookup_keys(record: RoutingRecord) -> dict[str, str | None]:
    """Derived fields the case lookups query by (each under its own index): set while the
    complaint can be found that way, None otherwise."""
    return {
        "repeat_key": repeat_key(record.resident_key, record.department, record.state),
        "case_key": case_key(
            record.department,
            record.area,
            record.state,
            repeated=record.repeated_of is not None,
            linked=record.linked_to is not None,
        ),
        "linked_case": record.linked_to.complaint_id if record.linked_to else None,
    }


def held(record: RoutingRecord | None) -> Held | None:
    """What a complaint adds to its handler's load."""
    if record is None or record.handler is None:
        return None
    return Held(record.handler.handler_id, open=record.state in OPEN_STATES)


def with_load_deltas(before: RoutingRecord | None, after: RoutingRecord) -> RoutingRecord:
    """``after``, carrying the changes to handler loads since ``before``, staged until
    they are applied (``loads_pending``)."""
    key = f"{after.complaint_id}:{after.sequence}"
    deltas = load_deltas(key, held(before), held(after))
    return after.model_copy(update={"load_deltas": deltas, "loads_pending": bool(deltas)})


def advanced(
    record: RoutingRecord,
    *,
    caused_by: str,
    events: Sequence[ComplaintStatusChanged],
    changes: "Changes",
    counts: "Counts",
) -> RoutingRecord:
    """The record after ``events``, the fields ``changes`` sets and the ``counts`` added."""
    last = events[-1]
    added = {name: getattr(record, name) + n for name, n in counts.nonzero().items()}
    concluded = (
        {"concluded_at": last.occurred_at}
        if last.to_state in CONCLUDED_STATES and record.state not in CONCLUDED_STATES
        else {}
    )
    set_ = changes.model_dump(exclude_unset=True)
    for name in ("repeated_of", "linked_to"):  # models, not the dicts a dump gives
        if name in set_:
            set_[name] = getattr(changes, name)
    return record.model_copy(
        update=set_
        | added
        | concluded
        | {
            "state": last.to_state,
            "sequence": last.sequence,
            "department": last.department,
            "department_name": last.department_name,
            "handler": last.handler,
            "due_at": last.due_at,
            "updated_at": last.occurred_at,
            "outbox": (*record.outbox, *events),
            "outbox_pending": True,
            "processed": (*record.processed, caused_by)[-PROCESSED_KEPT:],
        }
    )


_APPENDED = frozenset({"outbox", "processed", "sla_sent"})
"""Fields a write appends to (or leaves to others) rather than sets."""


def _update(write: Write) -> Document:
    """The update taking ``before`` to ``after``: the fields that differ are set, the new
    events and message ids appended. The outbox and ``sla_sent`` are never set whole, since
    the relay and the deadline watcher change them without moving the sequence."""
    before, after = write.before, write.after
    assert before is not None
    old = _document(before)
    new = _document(after)
    changed = {
        name: value
        for name, value in new.items()
        if name not in _APPENDED and name != "_id" and old.get(name) != value
    }
    update: Document = {"$set": changed | {"outbox_pending": True}}
    push: Document = {}
    if write.events:
        push["outbox"] = {"$each": [e.model_dump(mode="python") for e in write.events]}
    if write.caused_by:
        push["processed"] = {"$each": list(write.caused_by), "$slice": -PROCESSED_KEPT}
    if push:
        update["$push"] = push
    return update


async def write_one(store: "RoutingStore", write: Write) -> bool:
    """One complaint written, its load deltas applied and settled: the single-document
    form of what a batch does (``write_many``, ``apply_loads``, ``settle_loads``)."""
    staged = Write(
        write.before, with_load_deltas(write.before, write.after), write.events, write.caused_by
    )
    [applied] = await store.write_many([staged])
    if applied:
        await store.apply_loads(staged.after.load_deltas)
        await store.settle_loads([staged.after])
    return applied


def _apply(delta: LoadDelta) -> UpdateOne:
    applied = {"$ifNull": ["$applied", []]}
    fresh = {"$not": [{"$in": [delta.key, applied]}]}

    def plus(name: str, n: int) -> Document:
        return {"$add": [{"$ifNull": [f"${name}", 0]}, {"$cond": [fresh, n, 0]}]}

    remembered = {"$slice": [{"$concatArrays": [applied, [delta.key]]}, -APPLIED_KEPT]}
    return UpdateOne(
        {"_id": delta.handler_id},
        [
            {
                "$set": {
                    "open": plus("open", delta.open),
                    "total": plus("total", delta.total),
                    "applied": {"$cond": [fresh, remembered, applied]},
                }
            }
        ],
        upsert=True,
    )


class MongoRoutingStore:
    def __init__(
        self, db: AsyncDatabase[Document], *, keep_published: timedelta | None = None
    ) -> None:
        self.col: AsyncCollection[Document] = db[COLLECTION]
        self.transfers: AsyncCollection[Document] = db[TRANSFERS]
        self.counters: AsyncCollection[Document] = db[LOADS]
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
                IndexModel([("loads_pending", ASCENDING)], name="loads_pending"),
                # the relay's filters with a grace period (every field of the filter, or
                # SecantusDB scans)
                IndexModel(
                    [("outbox_pending", ASCENDING), ("updated_at", ASCENDING)],
                    name="outbox_pending_since",
                ),
                IndexModel(
                    [("loads_pending", ASCENDING), ("updated_at", ASCENDING)],
                    name="loads_pending_since",
                ),
                IndexModel([("state", ASCENDING), ("due_at", ASCENDING)], name="deadline_clock"),
                IndexModel([("next_alert_at", ASCENDING)], name="next_alert_at"),
                # The case lookups (반복민원, 중복민원): each filter's every field indexed.
                IndexModel(
                    [("repeat_key", ASCENDING), ("concluded_at", ASCENDING)], name="repeat_key"
                ),
                IndexModel([("case_key", ASCENDING), ("received_at", ASCENDING)], name="case_key"),
                IndexModel([("linked_case", ASCENDING)], name="linked_case"),
                # The sequence guard of every write: SecantusDB's planner uses an index only
                # if it covers every field of the filter, so ``_id`` alone leaves it to scan.
                IndexModel([("_id", ASCENDING), ("sequence", ASCENDING)], name="id_sequence"),
            ]
        )
        await self._count_loads_once()
        if self.keep_published is not None:
            await self._ensure_retention(self.keep_published)

    async def _count_loads_once(self) -> None:
        """Complaints stored before handler loads were counted are counted once, here."""
        if await self.counters.find_one({}) is not None:
            return
        if await self.col.find_one({"handler.handler_id": {"$exists": True}}) is None:
            return
        open_states = [s.value for s in OPEN_STATES]
        pipeline: list[Document] = [
            {"$match": {"handler.handler_id": {"$exists": True}}},
            {
                "$group": {
                    "_id": "$handler.handler_id",
                    "total": {"$sum": 1},
                    "open": {"$sum": {"$cond": [{"$in": ["$state", open_states]}, 1, 0]}},
                }
            },
        ]
        cursor = await self.col.aggregate(pipeline)
        counted = [
            InsertOne({"_id": doc["_id"], "open": doc["open"], "total": doc["total"]})
            async for doc in cursor
        ]
        if counted:
            with contextlib.suppress(BulkWriteError):  # another process counted first
                await self.counters.bulk_write(counted, ordered=False)

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

    async def get_many(self, complaint_ids: Collection[str]) -> dict[str, RoutingRecord]:
        if not complaint_ids:
            return {}
        records = [
            RoutingRecord.model_validate(d) for d in await find_in(self.col, "_id", complaint_ids)
        ]
        return {r.complaint_id: r for r in records}

    async def write_many(self, writes: Sequence[Write]) -> list[bool]:
        """A write whose complaint moved on is an upsert that collides with the stored
        document: the duplicate key error names the write, which a plain update's
        ``matched`` count would not."""
        if not writes:
            return []
        ops: list[InsertOne[Document] | UpdateOne] = []
        for write in writes:
            if write.before is None:
                ops.append(InsertOne(_document(write.after)))
            else:
                ops.append(
                    UpdateOne(
                        {"_id": write.before.complaint_id, "sequence": write.before.sequence},
                        _update(write),
                        upsert=True,
                    )
                )
        try:
            result = await self.col.bulk_write(ops, ordered=False)
            lost: set[int] = set()
            upserted = {int(n): key for n, key in (result.upserted_ids or {}).items()}
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            lost = {int(e["index"]) for e in errors}
            upserted = {int(u["index"]): u["_id"] for u in exc.details.get("upserted", [])}
        if upserted:  # an update of a complaint that is not stored: undone, and refused
            await delete_in(self.col, "_id", upserted.values())
            lost |= set(upserted)
        return [n not in lost for n in range(len(writes))]

    async def apply_loads(self, deltas: Sequence[LoadDelta]) -> None:
        """One update per delta, found by the handler's id alone (a filter the ``_id`` index
        serves): the pipeline adds the delta only if the handler has not seen its key."""
        ops = [_apply(d) for d in deltas]
        if ops:
            await self.counters.bulk_write(ops, ordered=False)

    async def clear_outboxes(self, cleared: Sequence[Cleared]) -> None:
        if not cleared:
            return
        if self.keep_published is not None:
            await self._keep([e for c in cleared for e in c.events])
        ops = [
            UpdateOne(
                {"_id": c.complaint_id, "sequence": c.up_to_sequence},
                {
                    "$pull": {"outbox": {"event_id": {"$in": list(c.event_ids)}}},
                    "$set": {"outbox_pending": False, "loads_pending": False, "load_deltas": []},
                },
            )
            for c in cleared
        ]
        result = await self.col.bulk_write(ops, ordered=False)
        if result.matched_count < len(cleared):  # some moved on meanwhile: clear those alone
            moved = await find_in(
                self.col,
                "_id",
                [c.complaint_id for c in cleared],
                projection={"sequence": 1, "outbox_pending": 1},
            )
            at = {doc["_id"]: doc["sequence"] for doc in moved if doc.get("outbox_pending")}
            for c in cleared:
                if c.complaint_id in at and at[c.complaint_id] != c.up_to_sequence:
                    await self.col.update_one(
                        {"_id": c.complaint_id},
                        {"$pull": {"outbox": {"event_id": {"$in": list(c.event_ids)}}}},
                    )

    async def pending_loads(
        self, limit: int = 200, staged_before: datetime | None = None
    ) -> list[RoutingRecord]:
        cursor = self.col.find(_staged("loads_pending", staged_before), limit=limit)
        return [RoutingRecord.model_validate(doc) async for doc in cursor]

    async def settle_loads(self, records: Sequence[RoutingRecord]) -> None:
        ops = [
            UpdateOne(
                {"_id": r.complaint_id, "sequence": r.sequence},
                {"$set": {"loads_pending": False, "load_deltas": []}},
            )
            for r in records
        ]
        if ops:
            await self.col.bulk_write(ops, ordered=False)

    async def create(self, record: RoutingRecord) -> bool:
        return await write_one(self, Write(None, record, record.outbox, record.processed))

    async def advance(
        self,
        record: RoutingRecord,
        *,
        caused_by: str,
        events: Sequence[ComplaintStatusChanged],
        changes: Changes = Changes(),  # noqa: B008 - frozen, never mutated
        counts: Counts = Counts(),
    ) -> bool:
        after = advanced(record, caused_by=caused_by, events=events, changes=changes, counts=counts)
        return await write_one(self, Write(record, after, tuple(events), (caused_by,)))

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

    async def case_candidates(self, lookup: CaseLookup, limit: int = 200) -> list[RoutingRecord]:
        """By key alone (``$in``), the latest first: SecantusDB plans no index for an
        ``$in`` together with a range, so the window is applied to what the key finds —
        one resident's concluded complaints in one department, or the open cases of one
        department in one 행정동 (the key is unset otherwise), at most ``limit``."""
        found: list[RoutingRecord] = []
        for key, at, since, wanted in (
            ("repeat_key", "concluded_at", lookup.repeat_since, lookup.repeat_keys),
            ("case_key", "received_at", lookup.case_since, lookup.case_keys),
        ):
            if not wanted:
                continue
            cursor = self.col.find(
                {key: {"$in": sorted(wanted)}}, sort=[(at, DESCENDING)], limit=limit
            )
            async for doc in cursor:
                record = RoutingRecord.model_validate(doc)
                moment = getattr(record, at)
                if moment is not None and moment >= since:
                    found.append(record)
        return found

    async def linked_to_cases(self, case_ids: Collection[str]) -> list[RoutingRecord]:
        if not case_ids:
            return []
        found = await find_in(self.col, "linked_case", case_ids)
        return [RoutingRecord.model_validate(doc) for doc in found]

    async def transfer_examples(self) -> list[TransferExample]:
        return [
            TransferExample(text=str(doc["text"]), department=str(doc["department"]))
            async for doc in self.transfers.find({}, sort=[("at", 1)])
        ]

    async def count_transfers(self) -> int:
        return await self.transfers.count_documents({})

    async def transfer_labels(self) -> list[TransferLabel]:
        return [
            TransferLabel(
                label_id=str(doc["_id"]),
                text=str(doc["text"]),
                department=str(doc["department"]),
                at=doc["at"],
            )
            async for doc in self.transfers.find({}, sort=[("at", 1), ("_id", 1)])
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
        await self._keep([ComplaintStatusChanged.model_validate(e) for e in events])

    async def _keep(self, events: Sequence[ComplaintStatusChanged]) -> None:
        """Keep published events for replay; one kept before (a repeat) is left as it is."""
        if not events:
            return
        now = datetime.now(UTC)
        try:
            await self.published.insert_many(
                [
                    {
                        "_id": e.event_id,
                        "complaint_id": e.complaint_id,
                        "sequence": e.sequence,
                        "published_at": now,
                        "event": e.model_dump(mode="python"),
                    }
                    for e in events
                ],
                ordered=False,
            )
        except BulkWriteError as exc:  # kept by an earlier pass: fine; anything else is not
            if any(err.get("code") != DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                raise

    async def pending_outboxes(
        self, limit: int = 200, staged_before: datetime | None = None
    ) -> list[RoutingRecord]:
        cursor = self.col.find(_staged("outbox_pending", staged_before), limit=limit)
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

    async def alerts_due(self, now: datetime, limit: int = 500) -> list[RoutingRecord]:
        cursor = self.col.find({"next_alert_at": {"$lte": now}}, limit=limit)
        return [RoutingRecord.model_validate(doc) async for doc in cursor]

    async def mark_alerts(
        self, record: RoutingRecord, keys: Sequence[str], next_alert_at: datetime | None
    ) -> None:
        added = {"$addToSet": {"sla_sent": {"$each": list(keys)}}}
        result = await self.col.update_one(
            {"_id": record.complaint_id, "sequence": record.sequence},
            added | {"$set": {"next_alert_at": next_alert_at}},
        )
        if result.matched_count == 0:
            await self.col.update_one({"_id": record.complaint_id}, added)

    async def unscheduled(self, limit: int = 500) -> list[RoutingRecord]:
        """At start-up only: SecantusDB serves no ``null`` match from an index, so this
        reads the open complaints once."""
        running = [s.value for s in RUNNING_CLOCK]
        cursor = self.col.find({"state": {"$in": running}, "next_alert_at": None}, limit=limit)
        return [
            r for doc in await cursor.to_list() if (r := RoutingRecord.model_validate(doc)).due_at
        ]

    async def schedule(self, times: Sequence[tuple[RoutingRecord, datetime | None]]) -> None:
        ops = [
            UpdateOne(
                {"_id": r.complaint_id, "sequence": r.sequence}, {"$set": {"next_alert_at": t}}
            )
            for r, t in times
        ]
        if ops:
            await self.col.bulk_write(ops, ordered=False)

    async def loads(self, handler_ids: Collection[str]) -> dict[str, Load]:
        """Read from the counters ``apply_loads`` keeps: one query however many
        complaints each handler has had."""
        if not handler_ids:
            return {}
        counted = await find_in(
            self.counters, "_id", handler_ids, projection={"open": 1, "total": 1}
        )
        found = {doc["_id"]: Load(open=doc["open"], total=doc["total"]) for doc in counted}
        return {h: found.get(h, Load()) for h in handler_ids}
