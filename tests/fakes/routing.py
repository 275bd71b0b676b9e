"""routing's collaborators in memory: the store, a recording publisher, a settable clock.

``InMemoryRoutingStore`` passes ``tests/contract/test_routing_store.py`` like the MongoDB
adapter: it refuses a second insert, applies an update only at the sequence it was read
at, and hands back copies with times as BSON keeps them (UTC, whole milliseconds), so a
handler cannot pass here by holding on to an object or a microsecond Mongo drops.
"""

from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from routing.assignment import Load, LoadDelta
from routing.deadlines import KST
from routing.store import (
    PROCESSED_KEPT,
    RUNNING_CLOCK,
    CaseLookup,
    Changes,
    Cleared,
    Counts,
    RoutingRecord,
    Transfer,
    TransferExample,
    TransferLabel,
    Write,
    advanced,
    lookup_keys,
    write_one,
)
from schemas import ComplaintStatusChanged, topics
from schemas.states import OPEN_STATES
from services.broker import KeyedEvent


def _as_bson(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {k: _as_bson(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_bson(v) for v in value]
    return value


def _stored(record: RoutingRecord) -> RoutingRecord:
    return RoutingRecord.model_validate(_as_bson(record.model_dump(by_alias=True)))


class InMemoryRoutingStore:
    def __init__(self, *, keep_published: timedelta | None = None) -> None:
        self.records: dict[str, RoutingRecord] = {}
        self.transfers: dict[str, tuple[datetime, TransferExample]] = {}
        self.applied: list[LoadDelta] = []
        self.keep_published = keep_published
        self.published: list[tuple[datetime, ComplaintStatusChanged]] = []

    async def ensure_indexes(self) -> None:
        return None

    async def get(self, complaint_id: str) -> RoutingRecord | None:
        return self.records.get(complaint_id)

    async def get_many(self, complaint_ids: Collection[str]) -> dict[str, RoutingRecord]:
        return {c: self.records[c] for c in complaint_ids if c in self.records}

    async def write_many(self, writes: Sequence[Write]) -> list[bool]:
        applied = []
        for write in writes:
            current = self.records.get(write.after.complaint_id)
            if write.before is None:
                ok = current is None
            else:
                ok = current is not None and current.sequence == write.before.sequence
            if ok:
                # As the MongoDB adapter does: what others changed meanwhile without moving
                # the sequence (the outbox, the alerts sent) is kept, the rest replaced.
                kept = (
                    {}
                    if current is None
                    else {
                        "outbox": (*current.outbox, *write.events),
                        "sla_sent": current.sla_sent,
                        "processed": (*current.processed, *write.caused_by)[-PROCESSED_KEPT:],
                    }
                )
                self.records[write.after.complaint_id] = _stored(
                    write.after.model_copy(update=kept | {"outbox_pending": True})
                )
            applied.append(ok)
        return applied

    async def apply_loads(self, deltas: Sequence[LoadDelta]) -> None:
        """Loads are counted from the records here; the contract tests hold the MongoDB
        adapter's counters to the same answers."""
        self.applied.extend(deltas)

    async def clear_outboxes(self, cleared: Sequence[Cleared]) -> None:
        for c in cleared:
            current = self.records.get(c.complaint_id)
            settled = current is not None and current.sequence == c.up_to_sequence
            await self.clear_outbox(c.complaint_id, c.event_ids, c.up_to_sequence)
            if settled:
                self.records[c.complaint_id] = self.records[c.complaint_id].model_copy(
                    update={"loads_pending": False, "load_deltas": ()}
                )

    async def pending_loads(
        self, limit: int = 200, staged_before: datetime | None = None
    ) -> list[RoutingRecord]:
        return [r for r in self.records.values() if r.loads_pending and _staged(r, staged_before)][
            :limit
        ]

    async def settle_loads(self, records: Sequence[RoutingRecord]) -> None:
        for record in records:
            current = self.records.get(record.complaint_id)
            if current is not None and current.sequence == record.sequence:
                self.records[record.complaint_id] = current.model_copy(
                    update={"loads_pending": False, "load_deltas": ()}
                )

    async def create(self, record: RoutingRecord) -> bool:
        return await write_one(self, Write(None, record, record.outbox, record.processed))

    async def advance(
        self,
        record: RoutingRecord,
        *,
        caused_by: str,
        events: Sequence[ComplaintStatusChanged],
        changes: Changes = Changes(),  # noqa: B008 - frozen, never mutated
        counts: Counts = Counts(),  # noqa: B008 - frozen, never mutated
    ) -> bool:
        after = advanced(record, caused_by=caused_by, events=events, changes=changes, counts=counts)
        return await write_one(self, Write(record, after, tuple(events), (caused_by,)))

    async def clear_outbox(
        self, complaint_id: str, event_ids: Sequence[str], up_to_sequence: int
    ) -> None:
        current = self.records.get(complaint_id)
        if current is None:
            return
        kept = tuple(e for e in current.outbox if e.event_id not in set(event_ids))
        pending = current.outbox_pending and current.sequence != up_to_sequence
        self.records[complaint_id] = current.model_copy(
            update={"outbox": kept, "outbox_pending": pending}
        )
        if self.keep_published is not None:
            now = _as_bson(datetime.now(UTC))
            known = {e.event_id for _, e in self.published}
            self.published += [
                (now, e)
                for e in current.outbox
                if e.event_id in set(event_ids) and e.event_id not in known
            ]

    async def published_since(self, since: datetime) -> AsyncIterator[ComplaintStatusChanged]:
        kept = [(at, e) for at, e in self.published if at >= since]
        for _, event in sorted(kept, key=lambda x: (x[0], x[1].complaint_id, x[1].sequence)):
            yield event

    async def pending_outboxes(
        self, limit: int = 200, staged_before: datetime | None = None
    ) -> list[RoutingRecord]:
        return [r for r in self.records.values() if r.outbox_pending and _staged(r, staged_before)][
            :limit
        ]

    async def with_running_clock(self) -> list[RoutingRecord]:
        return [
            r for r in self.records.values() if r.state in RUNNING_CLOCK and r.due_at is not None
        ]

    async def mark_alert(self, complaint_id: str, key: str) -> None:
        current = self.records.get(complaint_id)
        if current is not None and key not in current.sla_sent:
            self.records[complaint_id] = current.model_copy(
                update={"sla_sent": (*current.sla_sent, key)}
            )

    async def alerts_due(self, now: datetime, limit: int = 500) -> list[RoutingRecord]:
        due = [
            r
            for r in self.records.values()
            if r.next_alert_at is not None and r.next_alert_at <= now
        ]
        return due[:limit]

    async def mark_alerts(
        self, record: RoutingRecord, keys: Sequence[str], next_alert_at: datetime | None
    ) -> None:
        current = self.records.get(record.complaint_id)
        if current is None:
            return
        sent = (*current.sla_sent, *(k for k in keys if k not in current.sla_sent))
        update: dict[str, Any] = {"sla_sent": sent}
        if current.sequence == record.sequence:
            update["next_alert_at"] = _as_bson(next_alert_at)
        self.records[record.complaint_id] = current.model_copy(update=update)

    async def unscheduled(self, limit: int = 500) -> list[RoutingRecord]:
        return [
            r
            for r in self.records.values()
            if r.state in RUNNING_CLOCK and r.due_at is not None and r.next_alert_at is None
        ][:limit]

    async def schedule(self, times: Sequence[tuple[RoutingRecord, datetime | None]]) -> None:
        for record, at in times:
            current = self.records.get(record.complaint_id)
            if current is not None and current.sequence == record.sequence:
                self.records[record.complaint_id] = current.model_copy(
                    update={"next_alert_at": _as_bson(at)}
                )

    async def loads(self, handler_ids: Collection[str]) -> dict[str, Load]:
        loads = {}
        for handler_id in handler_ids:
            mine = [
                r
                for r in self.records.values()
                if r.handler is not None and r.handler.handler_id == handler_id
            ]
            loads[handler_id] = Load(
                open=sum(r.state in OPEN_STATES for r in mine), total=len(mine)
            )
        return loads

    async def record_transfer(self, transfer: Transfer) -> None:
        if transfer.caused_by not in self.transfers:
            example = TransferExample(text=transfer.text, department=transfer.to_department)
            self.transfers[transfer.caused_by] = (transfer.at, example)

    async def transfer_examples(self) -> list[TransferExample]:
        ordered = sorted(self.transfers.values(), key=lambda kept: kept[0])
        return [example for _, example in ordered]

    async def count_transfers(self) -> int:
        return len(self.transfers)

    async def transfer_labels(self) -> list[TransferLabel]:
        ordered = sorted(self.transfers.items(), key=lambda kept: (kept[1][0], kept[0]))
        return [
            TransferLabel(label_id=cid, text=x.text, department=x.department, at=at)
            for cid, (at, x) in ordered
        ]

    async def case_candidates(self, lookup: CaseLookup, limit: int = 200) -> list[RoutingRecord]:
        keyed = [(lookup_keys(r), r) for r in self.records.values()]
        repeats = sorted(
            (
                r
                for k, r in keyed
                if k["repeat_key"] in lookup.repeat_keys
                and r.concluded_at is not None
                and r.concluded_at >= lookup.repeat_since
            ),
            key=lambda r: (lookup_keys(r)["repeat_key"] or "", -_ts(r.concluded_at)),
        )
        cases = sorted(
            (
                r
                for k, r in keyed
                if k["case_key"] in lookup.case_keys
                and r.received_at is not None
                and r.received_at >= lookup.case_since
            ),
            key=lambda r: (lookup_keys(r)["case_key"] or "", -_ts(r.received_at)),
        )
        return repeats[:limit] + cases[:limit]

    async def linked_to_cases(self, case_ids: Collection[str]) -> list[RoutingRecord]:
        wanted = set(case_ids)
        return [
            r for r in self.records.values() if r.linked_to and r.linked_to.complaint_id in wanted
        ]


def _ts(at: datetime | None) -> float:
    return at.timestamp() if at else 0.0


class RecordingPublish:
    """Publishes into a list; ``fail_next`` makes the next sends fail as a lost broker does."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.fail_next = 0

    async def __call__(
        self, topic: str, event: KeyedEvent, correlation_id: str | None = None
    ) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker unreachable")
        self.sent.append((topic, event))

    def lifecycle(self, complaint_id: str) -> list[ComplaintStatusChanged]:
        return [e for t, e in self.sent if t == topics.LIFECYCLE and e.complaint_id == complaint_id]


class SettableClock:
    """A clock that stands still until a test moves it (Wednesday 2026-11-25 10:00 KST)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 25, 10, 0, tzinfo=KST)

    def __call__(self) -> datetime:
        return self.now


def _staged(record: RoutingRecord, before: datetime | None) -> bool:
    return before is None or (record.updated_at is not None and record.updated_at <= before)
