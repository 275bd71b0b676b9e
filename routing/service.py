"""routing's message handlers: filed complaints in, commands in, lifecycle events out."""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter

from routing.assignment import choose_handler
from routing.catalogue import Catalogue, classify
from routing.deadlines import WorkingCalendar
from routing.lifecycle import Change, Lifecycle, Refusal
from routing.store import RoutingRecord, RoutingStore
from schemas import CommandRejected, ComplaintFiled, ComplaintStatusChanged, topics
from schemas.commands import ResolveComplaint, StartReview, StartSiteCheck
from schemas.events import utcnow
from schemas.states import ComplaintState
from services.errors import RetryableError

log = logging.getLogger("sotong.routing")

Command = StartSiteCheck | StartReview | ResolveComplaint
Publish = Callable[[str, ComplaintStatusChanged | CommandRejected, str | None], Awaitable[None]]

UNKNOWN_COMPLAINT = Refusal(
    "unknown_complaint", "no complaint with this id", "해당 민원을 찾을 수 없습니다"
)


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.routed = Counter(
            "sotong_complaints_routed_total",
            "Complaints routed to a department, automatically or to the general desk.",
            ["department", "auto"],
            registry=registry,
        )
        self.transitions = Counter(
            "sotong_transitions_total",
            "Lifecycle transitions, by state reached.",
            ["to_state"],
            registry=registry,
        )
        self.rejected = Counter(
            "sotong_commands_rejected_total",
            "Commands refused, by reason code.",
            ["code"],
            registry=registry,
        )


class Routing:
    def __init__(
        self,
        *,
        store: RoutingStore,
        catalogue: Catalogue,
        lifecycle: Lifecycle,
        publish: Publish,
        metrics: RoutingMetrics,
        on_duplicate: Callable[[str], None],
        calendar: WorkingCalendar,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.calendar = calendar
        self.store = store
        self.catalogue = catalogue
        self.lifecycle = lifecycle
        self.publish = publish
        self.metrics = metrics
        self.on_duplicate = on_duplicate
        self.clock = clock

    async def on_filed(self, filed: ComplaintFiled) -> None:
        existing = await self.store.get(filed.complaint_id)
        if existing is not None:
            self.on_duplicate(topics.FILED)
            await self.flush(existing)
            return
        routed = classify(
            self.catalogue,
            text=f"{filed.title or ''} {filed.body}",
            service_code=filed.service_code,
        )
        dept = routed.department
        loads = await self.store.loads(dept.code)
        handler = choose_handler(
            dept, self.catalogue.rosters.get(dept.code, ()), area=filed.location.dong, loads=loads
        )
        now = self.clock()
        common = {
            "complaint_id": filed.complaint_id,
            "receipt_number": filed.receipt_number,
            "actor": "routing",
            "caused_by": filed.event_id,
            "occurred_at": now,
            "due_at": self.calendar.due(filed.occurred_at, dept.period(filed.service_code)),
        }
        received = ComplaintStatusChanged(
            sequence=1, from_state=None, to_state=ComplaintState.RECEIVED, trigger="file", **common
        )
        assigned = self._next(
            received,
            self.lifecycle.fire(received.to_state, "assign"),
            department=dept.code,
            department_name=dept.name,
            auto_routed=routed.auto,
            **common,
        )
        handled = self._next(
            assigned,
            self.lifecycle.fire(assigned.to_state, "assign_handler"),
            department=dept.code,
            department_name=dept.name,
            handler=handler,
            **common,
        )
        events = [received, assigned, handled]
        created = await self.store.create(
            complaint_id=filed.complaint_id,
            receipt_number=filed.receipt_number,
            area=filed.location.dong,
            caused_by=filed.event_id,
            events=events,
            extra={
                "auto_routed": routed.auto,
                "service_code": filed.service_code,
                "filed_at": filed.occurred_at,
            },
        )
        if not created:  # a concurrent delivery of the same event won the insert
            self.on_duplicate(topics.FILED)
            record = await self.store.get(filed.complaint_id)
            if record is not None:
                await self.flush(record)
            return
        self.metrics.routed.labels(dept.code, str(routed.auto).lower()).inc()
        log.info("complaint routed", extra={"department": dept.code, "auto": routed.auto})
        await self._publish_events(filed.complaint_id, events, filed.event_id)

    async def on_command(self, command: Command) -> None:
        record = await self.store.get(command.complaint_id)
        if record is None:
            await self._reject(command, None, UNKNOWN_COMPLAINT)
            return
        if record.processed(command.event_id):
            self.on_duplicate(topics.COMMANDS)
            await self.flush(record)
            return
        try:
            change = self.lifecycle.fire(record.state, command.action.value, note=command.note)
        except Refusal as refusal:
            await self._reject(command, record.state, refusal)
            return
        event = ComplaintStatusChanged(
            complaint_id=record.complaint_id,
            receipt_number=record.receipt_number,
            sequence=record.sequence + 1,
            from_state=change.from_state,
            to_state=change.to_state,
            trigger=change.trigger,
            department=record.department,
            department_name=record.doc.get("department_name"),
            handler=record.handler,
            actor=command.actor,
            note=command.note,
            due_at=record.due_at,
            caused_by=command.event_id,
            occurred_at=self.clock(),
        )
        if not await self.store.advance(record, caused_by=command.event_id, events=[event]):
            raise RetryableError("the complaint changed while the command was applied")
        await self._publish_events(record.complaint_id, [event], command.event_id)

    @staticmethod
    def _next(
        previous: ComplaintStatusChanged, change: Change, **fields: object
    ) -> ComplaintStatusChanged:
        return ComplaintStatusChanged.model_validate(
            {
                **fields,
                "sequence": previous.sequence + 1,
                "from_state": change.from_state,
                "to_state": change.to_state,
                "trigger": change.trigger,
            }
        )

    async def _reject(
        self, command: Command, state: ComplaintState | None, refusal: Refusal
    ) -> None:
        self.metrics.rejected.labels(refusal.code).inc()
        log.info("command rejected", extra={"action": command.action.value, "code": refusal.code})
        rejection = CommandRejected(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sotong:rejected:{command.event_id}")),
            complaint_id=command.complaint_id,
            command_id=command.event_id,
            action=command.action.value,
            code=refusal.code,
            reason=refusal.reason,
            reason_ko=refusal.reason_ko,
            current_state=state,
        )
        await self.publish(topics.REJECTIONS, rejection, command.event_id)

    async def _publish_events(
        self,
        complaint_id: str,
        events: Sequence[ComplaintStatusChanged],
        correlation_id: str | None,
    ) -> None:
        for event in events:
            await self.publish(topics.LIFECYCLE, event, correlation_id)
            self.metrics.transitions.labels(event.to_state.value).inc()
        await self.store.clear_outbox(complaint_id, [e.event_id for e in events])

    async def flush(self, record: RoutingRecord) -> None:
        """Publish what a crash left in a complaint's outbox (same ids: duplicates downstream)."""
        pending = record.outbox()
        if pending:
            await self._publish_events(record.complaint_id, pending, pending[0].caused_by)

    async def relay_forever(self, interval: float) -> None:
        while True:
            try:
                for record in await self.store.pending_outboxes():
                    await self.flush(record)
            except Exception:
                log.exception("outbox relay failed; will try again")
            await asyncio.sleep(interval)
