"""routing's handlers: filed complaints and commands in, lifecycle events out.

Follow one message here from its subscriber (:func:`subscribe`) through :class:`Routing`
to the store's single-document write and the publish that empties the outbox.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field

from routing.assignment import choose_handler
from routing.catalogue import Catalogue, Department
from routing.deadlines import Period, WorkingCalendar
from routing.lifecycle import RESIDENT_TRIGGERS, ROUTING_TRIGGERS, Facts, Lifecycle
from routing.sla import crossed
from routing.store import Changes, Counts, RoutingRecord, RoutingStore, Transfer
from routing.texts import Refusal, RefusalCode, Texts
from schemas import (
    CommandRejected,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    topics,
)
from schemas.commands import (
    RESIDENT,
    AnyCommand,
    ComplaintCommand,
    ExtendDeadline,
    ProvideInfo,
    ReassignHandler,
    RejectComplaint,
    TransferComplaint,
)
from schemas.events import HandlerRef
from schemas.states import ComplaintState
from services.broker import KeyedEvent
from services.errors import RetryableError
from services.http import ApiError
from services.openapi import refusals
from services.replay import Replayer
from services.runtime import Clock, Publish, Runtime

if TYPE_CHECKING:
    from routing.classifier import Prediction  # scikit-learn loads only where it is used

log = logging.getLogger("sotong.routing")


class Predicts(Protocol):
    """What routing asks of a classifier: the fitted ``routing.classifier.Classifier``,
    or a stub in unit tests."""

    def predict(self, text: str) -> "Prediction": ...

    def predict_many(self, texts: Sequence[str]) -> "list[Prediction]": ...


@dataclass(frozen=True)
class Routed:
    department: Department
    auto: bool
    confidence: float


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
            "Lifecycle transitions, by trigger and state reached.",
            ["trigger", "to_state"],
            registry=registry,
        )
        self.sla_alerts = Counter(
            "sotong_sla_alerts_total",
            "Deadline alerts: warnings (75%), breaches, 30-day progress notices.",
            ["kind", "department"],
            registry=registry,
        )
        self.rejected = Counter(
            "sotong_commands_rejected_total",
            "Commands refused, by reason code.",
            ["code"],
            registry=registry,
        )


@dataclass(kw_only=True)
class Routing:
    """The application service both subscribers call, and the deadline watcher and the
    outbox relay run on: every collaborator comes in, so tests hand in fakes."""

    store: RoutingStore
    catalogue: Catalogue
    lifecycle: Lifecycle
    texts: Texts
    publish: Publish
    metrics: RoutingMetrics
    on_duplicate: Callable[[str], None]
    calendar: WorkingCalendar
    classifier: Predicts
    clock: Clock

    # -- filing -----------------------------------------------------------------------

    async def on_filed(self, filed: ComplaintFiled) -> None:
        existing = await self.store.get(filed.complaint_id)
        if existing is not None:
            self.on_duplicate(topics.FILED)
            await self.flush(existing)
            return
        text = f"{filed.title or ''} {filed.body}".strip()
        routed = self.route(text, filed.service_code)
        dept = routed.department
        handler = await self._choose_handler(dept, filed.location.dong)
        due_at = self.calendar.due(filed.occurred_at, dept.period(filed.service_code))
        common: dict[str, Any] = {
            "complaint_id": filed.complaint_id,
            "receipt_number": filed.receipt_number,
            "actor": "routing",
            "caused_by": filed.event_id,
            "occurred_at": self.clock(),
            "due_at": due_at,
        }
        received = ComplaintStatusChanged(
            sequence=1, from_state=None, to_state=ComplaintState.RECEIVED, trigger="file", **common
        )
        located = common | {"department": dept.code, "department_name": dept.name}
        assigned = self._next(received, "assign", located | {"auto_routed": routed.auto})
        handled = self._next(assigned, "assign_handler", located | {"handler": handler})
        events = [received, assigned, handled]
        created = await self.store.create(
            RoutingRecord(
                complaint_id=filed.complaint_id,
                receipt_number=filed.receipt_number,
                area=filed.location.dong,
                state=handled.to_state,
                sequence=handled.sequence,
                department=dept.code,
                department_name=dept.name,
                handler=handler,
                due_at=due_at,
                updated_at=handled.occurred_at,
                auto_routed=routed.auto,
                confidence=routed.confidence,
                service_code=filed.service_code,
                text=text,
                received_at=filed.occurred_at,
                original_due_at=due_at,
                processed=(filed.event_id,),
                outbox=tuple(events),
                outbox_pending=True,
            )
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

    def route(self, text: str, service_code: str | None) -> Routed:
        """The service code when it names a department; else what the classifier reads.

        Below the confidence threshold the complaint goes to the general desk, marked
        not auto-routed, for a person to assign (by transfer).
        """
        if service_code:
            dept = self.catalogue.by_service_code(service_code)
            if dept is not None:
                return Routed(dept, auto=True, confidence=1.0)
        prediction = self.classifier.predict(text)
        return Routed(
            self.catalogue.departments[prediction.department],
            auto=prediction.auto,
            confidence=prediction.confidence,
        )

    # -- commands ---------------------------------------------------------------------

    async def on_command(self, command: AnyCommand) -> None:
        record = await self.store.get(command.complaint_id)
        if record is None:
            await self._reject(command, None, self.texts.refusal(RefusalCode.UNKNOWN_COMPLAINT))
            return
        if record.has_processed(command.event_id):
            self.on_duplicate(topics.COMMANDS)
            await self.flush(record)
            return
        try:
            self._authorise(command, record)
            change = self.lifecycle.fire(
                record.state, command.action.value, self._guard_facts(command, record)
            )
            events, changes, counts = await self._effects(
                command, record, change.trigger, change.to_state
            )
        except Refusal as refusal:
            await self._reject(command, record.state, refusal)
            return
        applied = await self.store.advance(
            record, caused_by=command.event_id, events=events, changes=changes, counts=counts
        )
        if not applied:
            raise RetryableError("the complaint changed while the command was applied")
        if isinstance(command, TransferComplaint):
            await self.store.record_transfer(
                Transfer(
                    caused_by=command.event_id,
                    complaint_id=record.complaint_id,
                    text=record.text,
                    from_department=record.department,
                    to_department=command.to_department,
                    reason=command.note,
                    at=events[0].occurred_at,
                ),
            )
        await self._publish_events(record.complaint_id, events, command.event_id)

    def _authorise(self, command: AnyCommand, record: RoutingRecord) -> None:
        action = command.action.value
        if action in ROUTING_TRIGGERS:
            raise self.texts.refusal(RefusalCode.ROUTING_ONLY)
        if action in RESIDENT_TRIGGERS:
            if command.actor != RESIDENT:
                raise self.texts.refusal(RefusalCode.RESIDENT_ONLY)
        elif command.actor != record.department:
            raise self.texts.refusal(RefusalCode.NOT_RESPONSIBLE)

    def _guard_facts(self, command: AnyCommand, record: RoutingRecord) -> Facts:
        common = Facts(note=command.note, department=record.department, due_at=record.due_at)
        if isinstance(command, TransferComplaint):
            return replace(
                common,
                to_department=command.to_department,
                known_departments=self.catalogue.departments.keys(),
            )
        if isinstance(command, ExtendDeadline):
            return replace(
                common,
                new_due_at=command.new_due_at,
                extensions=record.extensions,
                resident_consent=command.resident_consent,
                within_double=self._within_double(record, command.new_due_at),
            )
        if isinstance(command, ProvideInfo):
            return replace(common, resume_state=record.resume_state)
        return common

    def _within_double(self, record: RoutingRecord, new_due_at: datetime) -> bool:
        """A first extension may at most double the legal period, counted the same way."""
        dept = self.catalogue.departments.get(record.department or "")
        received = record.received_at
        if dept is None or received is None:
            return False
        period = dept.period(record.service_code)
        doubled = Period(period.amount * 2, period.unit)
        return new_due_at <= self.calendar.due(received, doubled)

    async def _effects(
        self, command: AnyCommand, record: RoutingRecord, trigger: str, to_state: ComplaintState
    ) -> tuple[list[ComplaintStatusChanged], Changes, Counts]:
        """The events a legal command produces and the fields it changes."""
        now = self.clock()
        base: dict[str, Any] = {
            "complaint_id": record.complaint_id,
            "receipt_number": record.receipt_number,
            "department": record.department,
            "department_name": record.department_name,
            "handler": record.handler,
            "actor": command.actor,
            "note": command.note,
            "due_at": record.due_at,
            "caused_by": command.event_id,
            "occurred_at": now,
        }
        changes, counts = Changes(), Counts()
        if isinstance(command, TransferComplaint):
            dept = self.catalogue.departments[command.to_department]
            moved = self._first(
                record,
                trigger,
                to_state,
                base | {"department": dept.code, "department_name": dept.name, "handler": None},
            )
            handler = await self._choose_handler(dept, record.area)
            handled = self._next(
                moved,
                "assign_handler",
                base
                | {
                    "department": dept.code,
                    "department_name": dept.name,
                    "handler": handler,
                    "actor": "routing",
                    "note": None,
                },
            )
            return [moved, handled], changes, Counts(transfer_count=1)
        if isinstance(command, ExtendDeadline):
            base["due_at"] = command.new_due_at
            counts = Counts(extensions=1)
        elif isinstance(command, RejectComplaint):
            base["remedy"] = command.remedy
        elif isinstance(command, ReassignHandler):
            base["handler"] = await self._reassign(command, record)
        elif trigger == "request_info":
            changes = Changes(resume_state=record.state, paused_at=now)
        elif trigger == "provide_info" and record.due_at is not None:
            paused_at = record.paused_at or now
            paused = self.calendar.working_hours_between(paused_at, now)
            base["due_at"] = (
                self.calendar.add_working_hours(record.due_at, paused) if paused else record.due_at
            )
            changes = Changes(resume_state=None, paused_at=None)
        elif trigger == "reopen":
            reopened = self.catalogue.departments.get(record.department or "")
            if reopened is not None and record.handler is None:
                base["handler"] = await self._choose_handler(reopened, record.area)
            if reopened is not None:
                base["due_at"] = self.calendar.due(now, reopened.period(record.service_code))
                changes = Changes(received_at=now, original_due_at=base["due_at"], extensions=0)
            counts = Counts(reopen_count=1)
        return [self._first(record, trigger, to_state, base)], changes, counts

    async def _reassign(self, command: ReassignHandler, record: RoutingRecord) -> HandlerRef:
        dept = self.catalogue.departments[record.department or self.catalogue.general_desk]
        roster = self.catalogue.rosters.get(dept.code, ())
        if command.handler_id is not None:
            for handler in roster:
                if handler.handler_id == command.handler_id and handler.on_duty:
                    return handler.ref()
            raise self.texts.refusal(RefusalCode.UNKNOWN_HANDLER)
        current = record.handler.handler_id if record.handler else None
        others = tuple(h for h in roster if h.handler_id != current)
        return choose_handler(
            dept,
            others,
            area=record.area,
            loads=await self.store.loads([h.handler_id for h in others]),
        )

    async def _choose_handler(self, dept: Department, area: str | None) -> HandlerRef:
        roster = self.catalogue.rosters.get(dept.code, ())
        candidates = [
            h.handler_id for h in roster if h.on_duty and (area is None or area in h.areas)
        ]
        loads = await self.store.loads(candidates)
        return choose_handler(dept, roster, area=area, loads=loads)

    @staticmethod
    def _first(
        record: RoutingRecord, trigger: str, to_state: ComplaintState, fields: dict[str, Any]
    ) -> ComplaintStatusChanged:
        return ComplaintStatusChanged.model_validate(
            fields
            | {
                "sequence": record.sequence + 1,
                "from_state": record.state,
                "to_state": to_state,
                "trigger": trigger,
            }
        )

    def _next(
        self, previous: ComplaintStatusChanged, trigger: str, fields: dict[str, Any]
    ) -> ComplaintStatusChanged:
        change = self.lifecycle.fire(previous.to_state, trigger)
        return ComplaintStatusChanged.model_validate(
            fields
            | {
                "sequence": previous.sequence + 1,
                "from_state": change.from_state,
                "to_state": change.to_state,
                "trigger": change.trigger,
            }
        )

    async def _reject(
        self, command: AnyCommand, state: ComplaintState | None, refusal: Refusal
    ) -> None:
        self.metrics.rejected.labels(refusal.code.value).inc()
        log.info("command rejected", extra={"action": command.action.value, "code": refusal.code})
        rejection = CommandRejected(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sotong:rejected:{command.event_id}")),
            complaint_id=command.complaint_id,
            command_id=command.event_id,
            action=command.action.value,
            code=refusal.code.value,
            reason=refusal.reason,
            reason_ko=refusal.reason_ko,
            current_state=state,
            occurred_at=self.clock(),
        )
        await self.publish(topics.REJECTIONS, rejection, command.event_id)

    # -- deadlines --------------------------------------------------------------------

    async def scan_deadlines(self) -> int:
        """Publish every threshold crossed since the last scan; exactly once per clock.

        The alert's id is derived from its key, and the key is recorded after the
        publish: a crash in between repeats the publish with the same id (a duplicate
        downstream), never loses it.
        """
        now = self.clock()
        published = 0
        for record in await self.store.with_running_clock():
            received, due = record.received_at, record.due_at
            if received is None or due is None:
                continue
            alerts = crossed(
                now=now,
                received_at=received,
                due_at=due,
                calendar=self.calendar,
                sent=record.sla_sent,
            )
            dept = self.catalogue.departments.get(record.department or "")
            for alert in alerts:
                event = ComplaintDeadlineAlert(
                    event_id=str(
                        uuid.uuid5(
                            uuid.NAMESPACE_URL, f"sotong:sla:{record.complaint_id}:{alert.key}"
                        )
                    ),
                    complaint_id=record.complaint_id,
                    receipt_number=record.receipt_number,
                    kind=alert.kind,
                    state=record.state,
                    department=record.department,
                    department_name=record.department_name,
                    handler=record.handler,
                    supervisor=dept.supervisor if dept else None,
                    received_at=received,
                    due_at=due,
                    occurred_at=now,
                )
                await self.publish(topics.SLA, event)
                await self.store.mark_alert(record.complaint_id, alert.key)
                self.metrics.sla_alerts.labels(alert.kind.value, record.department or "none").inc()
                published += 1
        return published

    async def deadlines_forever(self, interval: float) -> None:
        while True:
            try:
                await self.scan_deadlines()
            except Exception:
                log.exception("deadline scan failed; will try again")
            await asyncio.sleep(interval)

    # -- publishing -------------------------------------------------------------------

    async def _publish_events(
        self,
        complaint_id: str,
        events: Sequence[ComplaintStatusChanged],
        correlation_id: str | None,
    ) -> None:
        for event in events:
            await self.publish(topics.LIFECYCLE, event, correlation_id)
            self.metrics.transitions.labels(event.trigger, event.to_state.value).inc()
        await self.store.clear_outbox(
            complaint_id, [e.event_id for e in events], max(e.sequence for e in events)
        )

    async def flush(self, record: RoutingRecord) -> None:
        """Publish what a crash left in a complaint's outbox (same ids: duplicates downstream)."""
        pending = record.outbox
        if pending:
            await self._publish_events(record.complaint_id, pending, pending[0].caused_by)

    async def published_since(
        self, since: datetime
    ) -> AsyncIterator[tuple[str, KeyedEvent, str | None]]:
        """What a replay publishes again (``services.replay``): the lifecycle events kept."""
        async for event in self.store.published_since(since):
            yield topics.LIFECYCLE, event, event.caused_by

    async def relay_forever(self, interval: float, replayer: Replayer | None = None) -> None:
        """Check the broker is the one last published to (a replay if not), then publish
        what a crash left in outboxes; every ``interval`` seconds."""
        try:
            while True:
                try:
                    if replayer is not None:
                        await replayer.check()
                    for record in await self.store.pending_outboxes():
                        await self.flush(record)
                except Exception:
                    log.exception("outbox relay failed; will try again")
                await asyncio.sleep(interval)
        finally:
            if replayer is not None:
                await replayer.close()


def subscribe(runtime: Runtime, routing: Routing) -> None:
    """Each topic gets its own consumer group, so a slow command never holds up filing."""

    @runtime.subscriber(topics.FILED, group="filed")
    async def on_filed(filed: ComplaintFiled) -> None:
        await routing.on_filed(filed)

    @runtime.subscriber(topics.COMMANDS, group="commands")
    async def on_command(command: ComplaintCommand) -> None:
        await routing.on_command(command)


MAX_TEXTS = 50
"""Texts per classify request: each costs a few milliseconds of the event loop's time."""


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(
        min_length=1,
        max_length=MAX_TEXTS,
        description="What residents wrote, in Korean, one complaint or question each.",
    )


class Classified(BaseModel):
    department: str = Field(
        description="Where routing would send it (the general desk below the confidence threshold)."
    )
    confidence: float = Field(ge=0, le=1, description="The model's probability of its best guess.")
    auto: bool = Field(description="Whether routing would send it without a person's review.")


class ClassifyResponse(BaseModel):
    predictions: list[Classified] = Field(description="One per text, in the order given.")


def routes(classifier: Predicts) -> APIRouter:
    """Classification offered over HTTP (the portal's chatbot handoff and service search,
    ``sotong classify``): nothing outside routing imports the classifier."""
    router = APIRouter()

    @router.post(
        "/v1/classify",
        response_model=ClassifyResponse,
        responses=refusals(415, 422),
        tags=["classification"],
    )
    async def classify(request: ClassifyRequest) -> ClassifyResponse:
        """Which department each text belongs to, as routing would route it now. Texts are
        not stored. On the event loop, as the subscribers classify, so the tokenizer is
        never used from two threads."""
        for n, text in enumerate(request.texts):
            if not text.strip() or len(text) > 4000:
                raise ApiError(
                    422, "invalid_request", f"texts.{n}: 1 to 4000 characters, not blank"
                )
        predictions = classifier.predict_many(request.texts)
        return ClassifyResponse(
            predictions=[
                Classified(department=p.department, confidence=p.confidence, auto=p.auto)
                for p in predictions
            ]
        )

    return router
