"""routing's MongoDB adapter: one document per complaint holding its state and its outbox.

A state change, the id of the message that caused it and the events it produces are
written in one single-document update guarded by the current sequence (optimistic
concurrency). Events are then published and removed from the outbox; a crash in
between leaves them to be published again with the same ids (a harmless duplicate).
"""

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from routing.assignment import Load
from schemas import ComplaintStatusChanged
from schemas.events import HandlerRef
from schemas.states import OPEN_STATES, ComplaintState
from services.mongo import Document

COLLECTION = "routing_complaints"
TRANSFERS = "routing_transfer_examples"
PROCESSED_KEPT = 500


class RoutingRecord:
    """A complaint as routing sees it."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc

    @property
    def complaint_id(self) -> str:
        return str(self.doc["_id"])

    @property
    def state(self) -> ComplaintState:
        return ComplaintState(str(self.doc["state"]))

    @property
    def sequence(self) -> int:
        return int(self.doc["sequence"])

    @property
    def receipt_number(self) -> str:
        return str(self.doc["receipt_number"])

    @property
    def department(self) -> str | None:
        dept = self.doc.get("department")
        return None if dept is None else str(dept)

    @property
    def handler(self) -> HandlerRef | None:
        handler = self.doc.get("handler")
        return None if handler is None else HandlerRef.model_validate(handler)

    @property
    def due_at(self) -> datetime | None:
        return self._time("due_at")

    @property
    def received_at(self) -> datetime | None:
        return self._time("received_at")

    @property
    def original_due_at(self) -> datetime | None:
        return self._time("original_due_at")

    @property
    def paused_at(self) -> datetime | None:
        return self._time("paused_at")

    @property
    def department_name(self) -> str | None:
        name = self.doc.get("department_name")
        return None if name is None else str(name)

    @property
    def area(self) -> str | None:
        area = self.doc.get("area")
        return None if area is None else str(area)

    @property
    def text(self) -> str:
        return str(self.doc.get("text") or "")

    @property
    def service_code(self) -> str | None:
        code = self.doc.get("service_code")
        return None if code is None else str(code)

    @property
    def resume_state(self) -> ComplaintState | None:
        state = self.doc.get("resume_state")
        return None if state is None else ComplaintState(str(state))

    @property
    def sla_sent(self) -> set[str]:
        return {str(key) for key in self.doc.get("sla_sent", [])}

    def int_field(self, name: str) -> int:
        return int(self.doc.get(name) or 0)

    def _time(self, name: str) -> datetime | None:
        value = self.doc.get(name)
        return value if isinstance(value, datetime) else None

    def processed(self, message_id: str) -> bool:
        return message_id in self.doc.get("processed", [])

    def outbox(self) -> list[ComplaintStatusChanged]:
        return [ComplaintStatusChanged.model_validate(e) for e in self.doc.get("outbox", [])]


def _state_fields(events: Sequence[ComplaintStatusChanged]) -> dict[str, Any]:
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


class RoutingStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.col: AsyncCollection[Document] = db[COLLECTION]
        self.transfers: AsyncCollection[Document] = db[TRANSFERS]

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

    async def get(self, complaint_id: str) -> RoutingRecord | None:
        doc = await self.col.find_one({"_id": complaint_id})
        return None if doc is None else RoutingRecord(doc)

    async def create(
        self,
        *,
        complaint_id: str,
        receipt_number: str,
        area: str | None,
        caused_by: str,
        events: Sequence[ComplaintStatusChanged],
        extra: dict[str, Any],
    ) -> bool:
        """Insert a new complaint with its first events. False if it already exists."""
        doc: Document = {
            "_id": complaint_id,
            "receipt_number": receipt_number,
            "area": area,
            **extra,
            **_state_fields(events),
            "processed": [caused_by],
            "outbox": [e.model_dump(mode="python") for e in events],
            "outbox_pending": True,
        }
        try:
            await self.col.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def advance(
        self,
        record: RoutingRecord,
        *,
        caused_by: str,
        events: Sequence[ComplaintStatusChanged],
        set_fields: dict[str, Any] | None = None,
        inc: dict[str, int] | None = None,
    ) -> bool:
        """Apply events if nobody moved the complaint meanwhile. False on a lost race."""
        update: dict[str, Any] = {
            "$set": {**(set_fields or {}), **_state_fields(events), "outbox_pending": True},
        }
        if inc:
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

    async def record_transfer(
        self,
        *,
        caused_by: str,
        complaint_id: str,
        text: str,
        from_department: str | None,
        to_department: str,
        reason: str | None,
        at: datetime,
    ) -> None:
        """Every transfer (이송) is a labelled example for retraining the classifier."""
        with contextlib.suppress(DuplicateKeyError):
            await self.transfers.insert_one(
                {
                    "_id": caused_by,
                    "complaint_id": complaint_id,
                    "text": text,
                    "from_department": from_department,
                    "department": to_department,
                    "reason": reason,
                    "at": at,
                }
            )

    async def transfer_examples(self) -> list[dict[str, Any]]:
        return [
            {"text": doc["text"], "department": doc["department"]}
            async for doc in self.transfers.find({}, sort=[("at", 1)])
        ]

    async def clear_outbox(
        self, complaint_id: str, event_ids: Sequence[str], up_to_sequence: int
    ) -> None:
        """Remove published events. One update when nothing was appended meanwhile (the
        usual case): then the outbox is empty and no longer pending."""
        pull = {"$pull": {"outbox": {"event_id": {"$in": list(event_ids)}}}}
        result = await self.col.update_one(
            {"_id": complaint_id, "sequence": up_to_sequence},
            pull | {"$set": {"outbox_pending": False}},
        )
        if result.matched_count == 0:
            await self.col.update_one({"_id": complaint_id}, pull)

    async def pending_outboxes(self, limit: int = 200) -> list[RoutingRecord]:
        cursor = self.col.find({"outbox_pending": True}, limit=limit)
        return [RoutingRecord(doc) async for doc in cursor]

    async def with_running_clock(self) -> list[RoutingRecord]:
        """Open complaints whose deadline clock is running (보완 요청 pauses it)."""
        running = [s.value for s in OPEN_STATES if s is not ComplaintState.INFO_REQUESTED]
        cursor = self.col.find({"state": {"$in": running}, "due_at": {"$ne": None}})
        return [RoutingRecord(doc) async for doc in cursor]

    async def mark_alert(self, complaint_id: str, key: str) -> None:
        await self.col.update_one({"_id": complaint_id}, {"$addToSet": {"sla_sent": key}})

    async def loads(self, handler_ids: Sequence[str]) -> dict[str, Load]:
        """Open and total complaints of each handler, counted from the complaints themselves.

        Only the handlers that could take the complaint are counted, each with two indexed
        counts, so the cost does not grow with the department's history.
        """
        open_states = [s.value for s in OPEN_STATES]
        loads = {}
        for handler_id in handler_ids:
            total = await self.col.count_documents({"handler.handler_id": handler_id})
            still_open = await self.col.count_documents(
                {"handler.handler_id": handler_id, "state": {"$in": open_states}}
            )
            loads[handler_id] = Load(open=still_open, total=total)
        return loads
