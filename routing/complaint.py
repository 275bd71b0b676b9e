"""What routing decides about one complaint, as a pure function of what it knows.

``Rules.decide(complaint, message, facts) -> Decision``: the complaint as stored (or None),
one message (a filing or a command) and the facts fetched before the call (the time, the
handlers' loads, where a new complaint's text points) give the complaint after the
message, the events to publish, or the refusal to publish instead. No I/O happens here,
so a batch of messages is decided in memory between one read and one write
(``routing/handlers.py``). Which trigger who may fire, and what each one changes beside
the state, is listed with the lifecycle table (``routing/lifecycle.py``: ``WHO_MAY_FIRE``,
``EFFECTS``); the functions here carry those effects out.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from routing.assignment import Load, choose_handler, handler_for_new_area
from routing.cases import Link
from routing.catalogue import Catalogue, Department
from routing.deadlines import Period, WorkingCalendar
from routing.lifecycle import Facts as GuardFacts
from routing.lifecycle import Lifecycle, refusal_for_actor
from routing.sla import next_alert_at
from routing.store import RUNNING_CLOCK, Changes, Complaint, Counts, Transfer, advanced
from routing.texts import Refusal, RefusalCode, Texts
from schemas import CommandRejected, ComplaintFiled, ComplaintStatusChanged
from schemas.commands import (
    CORRECTABLE_FIELDS,
    AnyCommand,
    ConcludeRepeated,
    CorrectComplaint,
    DismissRepeated,
    ExtendDeadline,
    ProvideInfo,
    RateComplaint,
    ReassignHandler,
    RejectComplaint,
    ResolveComplaint,
    TransferComplaint,
    UnlinkComplaint,
)
from schemas.events import Correction, HandlerRef, PhotoRef, Rating, RepeatedOf
from schemas.pii import mask_text
from schemas.states import ComplaintState

FOLLOWED = frozenset(
    {"start_site_check", "start_review", "resolve", "reject", "close", "reassign", "extend"}
)
"""A case's moves its linked complaints make too (중복민원): the same step, result and handler.

An extension (연장) is followed when it is one for the linked complaint too — its own legal
limits decide (a later due time than its own, within its first-extension limit; a second
extension of it is left to the department, which needs that resident's consent) — and
then with the case's reason and due time. An info request (보완 요청) is not followed: the
handler asks the case's reporter, and another reporter's answer would be about the same
problem only by chance."""
RELEASED = frozenset({"withdraw", "transfer"})
"""A case's moves after which its linked complaints are unlinked and handled alone."""


@dataclass(frozen=True)
class Follow:
    """One move of a case, to be made on one complaint linked to it. Its id is derived
    from the case's event and the complaint, so doing it again is a duplicate."""

    complaint_id: str
    case_event: ComplaintStatusChanged

    @property
    def event_id(self) -> str:
        key = f"sotong:follow:{self.case_event.event_id}:{self.complaint_id}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def follows(event: ComplaintStatusChanged) -> bool:
    """Whether the complaints linked to this event's complaint follow it."""
    return event.case_of is None and event.trigger in FOLLOWED | RELEASED


Message = ComplaintFiled | AnyCommand | Follow


@dataclass(frozen=True)
class Routed:
    """Where a new complaint goes, and whether a person should look at it."""

    department: Department
    auto: bool
    confidence: float
    model_version: str | None = None
    """The classifier's version, when the text (not a service code) decided."""


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What a decision needs beyond the complaint, fetched before the call."""

    now: datetime
    loads: Mapping[str, Load]
    """Open and total complaints of the handlers it may choose between."""
    routed: Routed | None = None
    """For a filing: where its service code or its text points."""
    resident_key: str | None = None
    """For a filing: its resident, hashed (``routing.cases.resident_key``)."""
    terms: tuple[str, ...] = ()
    """For a filing: its text's features (``routing.similarity.terms_of``)."""
    repeated_of: RepeatedOf | None = None
    """For a filing: the same resident's concluded complaint it repeats (반복민원)."""
    link: Link | None = None
    """For a filing: the open case it joins (중복민원)."""
    related: Mapping[str, Complaint] = field(default_factory=dict)
    """For a command: the complaints its guards look at (the one a mark names)."""


@dataclass(frozen=True)
class Decision:
    """The complaint after one message, and what to publish about it.

    A duplicate (a message the complaint has processed) changes nothing: the caller
    publishes whatever the complaint's outbox still holds. A refusal changes nothing
    either and is published as a ``CommandRejected``.
    """

    complaint: Complaint | None
    events: tuple[ComplaintStatusChanged, ...] = ()
    rejection: CommandRejected | None = None
    transfer: Transfer | None = None
    duplicate: bool = False
    ignored: bool = False
    """A case's move this complaint cannot follow (unlinked since, or moved on): nothing
    happens, and nobody is told, since nobody asked."""


@dataclass(frozen=True, kw_only=True)
class Rules:
    """The district's rules a decision follows: departments and rosters, the working
    calendar, the lifecycle table and the refusal texts."""

    catalogue: Catalogue
    calendar: WorkingCalendar
    lifecycle: Lifecycle
    texts: Texts

    def decide(self, complaint: Complaint | None, message: Message, facts: Facts) -> Decision:
        if isinstance(message, ComplaintFiled):
            return self._file(complaint, message, facts)
        if isinstance(message, Follow):
            return self._follow(complaint, message, facts)
        return self._command(complaint, message, facts)

    # -- a case's moves, on its linked complaints -------------------------------------

    def _follow(self, complaint: Complaint | None, follow: Follow, facts: Facts) -> Decision:
        case = follow.case_event
        if complaint is None:
            return Decision(None, ignored=True)
        if complaint.has_processed(follow.event_id):
            return Decision(complaint, duplicate=True)
        link = complaint.linked_to
        if link is None or link.complaint_id != case.complaint_id:
            return Decision(complaint, ignored=True)
        trigger = case.trigger if case.trigger in FOLLOWED else "unlink"
        guard = GuardFacts(note=case.note, linked=True, due_at=complaint.due_at)
        if trigger == "extend":
            if case.due_at is None:
                return Decision(complaint, ignored=True)
            guard = replace(
                guard,
                new_due_at=case.due_at,
                extensions=complaint.extensions,
                resident_consent=False,
                within_double=self._within_double(complaint, case.due_at),
            )
        try:
            change = self.lifecycle.fire(complaint.state, trigger, guard)
        except Refusal:
            return Decision(complaint, ignored=True)
        changes, counts = Changes(), Counts()
        fields: dict[str, Any] = {
            "complaint_id": complaint.complaint_id,
            "receipt_number": complaint.receipt_number,
            "department": complaint.department,
            "department_name": complaint.department_name,
            "handler": case.handler if trigger == "reassign" else complaint.handler,
            "actor": case.actor,
            "note": case.note,
            "remedy": case.remedy,
            "due_at": complaint.due_at,
            "caused_by": follow.event_id,
            "occurred_at": facts.now,
            "case_of": case.complaint_id,
        }
        if trigger == "resolve":
            changes = Changes(result=case.note)
        elif trigger == "extend":
            fields["due_at"] = case.due_at
            counts = Counts(extensions=1)
        elif trigger == "unlink":
            fields |= {"linked_to": link, "note": None, "remedy": None}
            changes = Changes(linked_to=None)
        event = self._first(complaint, change.trigger, change.to_state, fields)
        after = advanced(
            complaint, caused_by=follow.event_id, events=[event], changes=changes, counts=counts
        )
        return Decision(self.scheduled(after), (event,))

    # -- filing -----------------------------------------------------------------------

    def _file(self, complaint: Complaint | None, filed: ComplaintFiled, facts: Facts) -> Decision:
        if complaint is not None:
            return Decision(complaint, duplicate=True)
        routed = facts.routed
        if routed is None:
            raise ValueError("a filing is decided with where it is routed (Facts.routed)")
        dept = routed.department
        handler = self.choose(dept, filed.location.dong, facts.loads)
        due_at = self.calendar.due(filed.occurred_at, dept.period(filed.service_code))
        common: dict[str, Any] = {
            "complaint_id": filed.complaint_id,
            "receipt_number": filed.receipt_number,
            "actor": "routing",
            "caused_by": filed.event_id,
            "occurred_at": facts.now,
            "due_at": due_at,
        }
        received = ComplaintStatusChanged(
            sequence=1, from_state=None, to_state=ComplaintState.RECEIVED, trigger="file", **common
        )
        located = common | {"department": dept.code, "department_name": dept.name}
        assigned = self._next(
            received,
            "assign",
            located | {"auto_routed": routed.auto, "model_version": routed.model_version},
        )
        handled = self._next(assigned, "assign_handler", located | {"handler": handler})
        events: tuple[ComplaintStatusChanged, ...] = (received, assigned, handled)
        if facts.repeated_of is not None:
            marked = located | {"handler": handler, "repeated_of": facts.repeated_of}
            events += (self._next(handled, "mark_repeated", marked),)
        elif facts.link is not None:
            handler = facts.link.handler or handler
            linked = located | {"handler": handler, "linked_to": facts.link.to}
            events += (self._next(handled, "link", linked),)
        last = events[-1]
        coordinates = filed.location.coordinates
        created = Complaint(
            complaint_id=filed.complaint_id,
            receipt_number=filed.receipt_number,
            area=filed.location.dong,
            state=last.to_state,
            sequence=last.sequence,
            department=dept.code,
            department_name=dept.name,
            handler=handler,
            due_at=due_at,
            updated_at=last.occurred_at,
            auto_routed=routed.auto,
            confidence=routed.confidence,
            service_code=filed.service_code,
            text=text_of(filed),
            received_at=filed.occurred_at,
            original_due_at=due_at,
            processed=(filed.event_id,),
            outbox=events,
            outbox_pending=True,
            resident_key=facts.resident_key,
            terms=facts.terms,
            address=filed.location.address,
            lat=coordinates.lat if coordinates else None,
            lon=coordinates.lon if coordinates else None,
            repeated_of=facts.repeated_of,
            linked_to=facts.link.to if facts.link else None,
            title=filed.title,
            photos=tuple(p.photo_id for p in filed.photos),
        )
        return Decision(self.scheduled(created), events)

    # -- commands ---------------------------------------------------------------------

    def _command(self, complaint: Complaint | None, command: AnyCommand, facts: Facts) -> Decision:
        if complaint is None:
            refusal = self.texts.refusal(RefusalCode.UNKNOWN_COMPLAINT)
            return Decision(None, rejection=self.rejection(command, None, refusal, facts.now))
        if complaint.has_processed(command.event_id):
            return Decision(complaint, duplicate=True)
        try:
            code = refusal_for_actor(
                command.action.value, actor=command.actor, department=complaint.department
            )
            if code is not None:
                raise self.texts.refusal(code)
            change = self.lifecycle.fire(
                complaint.state,
                command.action.value,
                self._guard_facts(command, complaint, facts.related),
            )
            events, changes, counts = self._effects(
                command, complaint, change.trigger, change.to_state, facts
            )
        except Refusal as refusal:
            rejection = self.rejection(command, complaint.state, refusal, facts.now)
            return Decision(complaint, rejection=rejection)
        after = advanced(
            complaint, caused_by=command.event_id, events=events, changes=changes, counts=counts
        )
        transfer = None
        if isinstance(command, TransferComplaint):
            transfer = Transfer(
                caused_by=command.event_id,
                complaint_id=complaint.complaint_id,
                text=complaint.text,
                from_department=complaint.department,
                to_department=command.to_department,
                reason=command.note,
                at=events[0].occurred_at,
            )
        return Decision(self.scheduled(after), tuple(events), transfer=transfer)

    def scheduled(self, complaint: Complaint) -> Complaint:
        """The complaint with the time the deadline watcher should next look at it."""
        return complaint.model_copy(update={"next_alert_at": self.next_alert_at(complaint)})

    def next_alert_at(self, complaint: Complaint) -> datetime | None:
        received, due = complaint.received_at, complaint.due_at
        if complaint.state not in RUNNING_CLOCK or received is None or due is None:
            return None
        return next_alert_at(
            received_at=received, due_at=due, calendar=self.calendar, sent=complaint.sla_sent
        )

    def _guard_facts(
        self, command: AnyCommand, complaint: Complaint, related: Mapping[str, Complaint]
    ) -> GuardFacts:
        common = GuardFacts(
            note=command.note, department=complaint.department, due_at=complaint.due_at
        )
        if isinstance(command, ConcludeRepeated | DismissRepeated):
            mark = complaint.repeated_of
            earlier = related.get(mark.complaint_id) if mark else None
            return replace(
                common,
                marked_repeated=mark is not None,
                earlier_state=earlier.state if earlier else None,
            )
        if isinstance(command, UnlinkComplaint):
            return replace(common, linked=complaint.linked_to is not None)
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
                extensions=complaint.extensions,
                resident_consent=command.resident_consent,
                within_double=self._within_double(complaint, command.new_due_at),
            )
        if isinstance(command, ProvideInfo):
            return replace(common, resume_state=complaint.resume_state)
        if isinstance(command, CorrectComplaint):
            return replace(common, corrects=bool(corrected_fields(complaint, command)))
        if isinstance(command, RateComplaint):
            return replace(common, rated=complaint.rated)
        return common

    def _within_double(self, complaint: Complaint, new_due_at: datetime) -> bool:
        """A first extension may at most double the legal period, counted the same way."""
        dept = self.catalogue.departments.get(complaint.department or "")
        received = complaint.received_at
        if dept is None or received is None:
            return False
        period = dept.period(complaint.service_code)
        doubled = Period(period.amount * 2, period.unit)
        return new_due_at <= self.calendar.due(received, doubled)

    def _effects(
        self,
        command: AnyCommand,
        complaint: Complaint,
        trigger: str,
        to_state: ComplaintState,
        facts: Facts,
    ) -> tuple[list[ComplaintStatusChanged], Changes, Counts]:
        """The events a legal command produces and the fields it changes (``EFFECTS``)."""
        now = facts.now
        base: dict[str, Any] = {
            "complaint_id": complaint.complaint_id,
            "receipt_number": complaint.receipt_number,
            "department": complaint.department,
            "department_name": complaint.department_name,
            "handler": complaint.handler,
            "actor": command.actor,
            "note": mask_text(command.note),  # complaint.lifecycle is department-shared
            "due_at": complaint.due_at,
            "caused_by": command.event_id,
            "occurred_at": now,
        }
        changes, counts = Changes(), Counts()
        if isinstance(command, TransferComplaint):
            dept = self.catalogue.departments[command.to_department]
            moved = self._first(
                complaint,
                trigger,
                to_state,
                base | {"department": dept.code, "department_name": dept.name, "handler": None},
            )
            handler = self.choose(dept, complaint.area, facts.loads)
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
        if isinstance(command, CorrectComplaint):
            return self._correct(command, complaint, trigger, to_state, base, facts.loads)
        if isinstance(command, ExtendDeadline):
            base["due_at"] = command.new_due_at
            counts = Counts(extensions=1)
        elif isinstance(command, RejectComplaint):
            base["remedy"] = mask_text(command.remedy)
        elif isinstance(command, ResolveComplaint):
            changes = Changes(result=command.note)
        elif isinstance(command, ConcludeRepeated) and complaint.repeated_of is not None:
            earlier = facts.related[complaint.repeated_of.complaint_id]
            base["repeated_of"] = complaint.repeated_of.model_copy(
                update={"answer": earlier.result}
            )
            base["note"] = earlier.result or command.note  # what the resident's notice quotes
        elif isinstance(command, DismissRepeated):
            base["repeated_of"] = complaint.repeated_of
            changes = Changes(repeated_of=None)
        elif isinstance(command, UnlinkComplaint):
            base["linked_to"] = complaint.linked_to
            changes = Changes(linked_to=None)
        elif isinstance(command, ReassignHandler):
            base["handler"] = self._reassign(command, complaint, facts.loads)
        elif trigger == "request_info":
            changes = Changes(resume_state=complaint.state, paused_at=now)
        elif trigger == "provide_info" and complaint.due_at is not None:
            paused_at = complaint.paused_at or now
            paused = self.calendar.working_hours_between(paused_at, now)
            base["due_at"] = (
                self.calendar.add_working_hours(complaint.due_at, paused)
                if paused
                else complaint.due_at
            )
            changes = Changes(resume_state=None, paused_at=None)
        elif isinstance(command, RateComplaint):
            base["note"] = None
            base["rating"] = Rating(score=command.rating, comment=mask_text(command.comment))
            changes = Changes(rated=True)
        elif trigger == "reopen":
            reopened = self.catalogue.departments.get(complaint.department or "")
            if reopened is not None and complaint.handler is None:
                base["handler"] = self.choose(reopened, complaint.area, facts.loads)
            changes = Changes(rated=False)
            if reopened is not None:
                base["due_at"] = self.calendar.due(now, reopened.period(complaint.service_code))
                changes = Changes(
                    received_at=now, original_due_at=base["due_at"], extensions=0, rated=False
                )
            counts = Counts(reopen_count=1)
        return [self._first(complaint, trigger, to_state, base)], changes, counts

    def _correct(
        self,
        command: CorrectComplaint,
        complaint: Complaint,
        trigger: str,
        to_state: ComplaintState,
        base: dict[str, Any],
        loads: Mapping[str, Load],
    ) -> tuple[list[ComplaintStatusChanged], Changes, Counts]:
        """The corrected facts, and a new handler when the new 행정동 is not the current
        one's (same department: moving departments stays the department's transfer). A
        complaint joined to a case (중복민원) keeps the case's handler: the department
        reads the correction and unlinks it if it is not the same place after all.
        Photos added are listed in the event (references intake attached), once each."""
        fields = corrected_fields(complaint, command)
        area = command.dong if "dong" in fields else complaint.area
        added = added_photos(complaint, command)
        given = {
            "area": area,
            "address": command.address if "address" in fields else complaint.address,
            "title": command.title if "title" in fields else complaint.title,
            "photos": (*complaint.photos, *(p.photo_id for p in added)),
        }
        correction = Correction(fields=list(fields), dong=area, photos=added)
        corrected = self._first(complaint, trigger, to_state, base | {"correction": correction})
        events = [corrected]
        dept = self.catalogue.departments.get(complaint.department or "")
        movable = to_state == ComplaintState.HANDLER_ASSIGNED and complaint.linked_to is None
        if "dong" in fields and dept is not None and movable:
            new = handler_for_new_area(
                dept,
                self.catalogue.rosters.get(dept.code, ()),
                current=complaint.handler,
                area=area,
                loads=loads,
            )
            if new is not None:
                moved = base | {"handler": new, "actor": "routing", "note": None}
                events.append(self._next(corrected, "reassign", moved))
        return events, Changes(**given), Counts()

    def _reassign(
        self, command: ReassignHandler, complaint: Complaint, loads: Mapping[str, Load]
    ) -> HandlerRef:
        dept = self.catalogue.departments[complaint.department or self.catalogue.general_desk]
        roster = self.catalogue.rosters.get(dept.code, ())
        if command.handler_id is not None:
            for handler in roster:
                if handler.handler_id == command.handler_id and handler.on_duty:
                    return handler.ref()
            raise self.texts.refusal(RefusalCode.UNKNOWN_HANDLER)
        current = complaint.handler.handler_id if complaint.handler else None
        others = tuple(h for h in roster if h.handler_id != current)
        return choose_handler(dept, others, area=complaint.area, loads=loads)

    def choose(self, dept: Department, area: str | None, loads: Mapping[str, Load]) -> HandlerRef:
        return choose_handler(
            dept, self.catalogue.rosters.get(dept.code, ()), area=area, loads=loads
        )

    def candidates(self, department: str | None) -> tuple[str, ...]:
        """The handlers whose loads a decision in this department may read."""
        roster = self.catalogue.rosters.get(department or "", ())
        return tuple(h.handler_id for h in roster)

    @staticmethod
    def _first(
        complaint: Complaint, trigger: str, to_state: ComplaintState, fields: dict[str, Any]
    ) -> ComplaintStatusChanged:
        return ComplaintStatusChanged.model_validate(
            fields
            | {
                "sequence": complaint.sequence + 1,
                "from_state": complaint.state,
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

    @staticmethod
    def rejection(
        command: AnyCommand, state: ComplaintState | None, refusal: Refusal, now: datetime
    ) -> CommandRejected:
        """The same id for the same command, so a redelivered refusal is a duplicate."""
        return CommandRejected(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sotong:rejected:{command.event_id}")),
            complaint_id=command.complaint_id,
            command_id=command.event_id,
            action=command.action.value,
            code=refusal.code.value,
            reason=refusal.reason,
            reason_ko=refusal.reason_ko,
            current_state=state,
            occurred_at=now,
        )


def corrected_fields(complaint: Complaint, command: CorrectComplaint) -> tuple[str, ...]:
    """The fields this correction changes: given, and different from what is stored
    (``photos``: at least one photo the complaint does not have yet)."""
    stored = {"address": complaint.address, "dong": complaint.area, "title": complaint.title}
    return tuple(
        name
        for name in CORRECTABLE_FIELDS
        if (
            bool(added_photos(complaint, command))
            if name == "photos"
            else (value := getattr(command, name)) is not None and value != stored[name]
        )
    )


def added_photos(complaint: Complaint, command: CorrectComplaint) -> list[PhotoRef]:
    """The correction's photos the complaint does not have yet, once each, in its order."""
    have = set(complaint.photos)
    added: list[PhotoRef] = []
    for photo in command.photos:
        if photo.photo_id not in have:
            have.add(photo.photo_id)
            added.append(photo)
    return added


def text_of(filed: ComplaintFiled) -> str:
    """What the classifier reads: the title and the body."""
    return f"{filed.title or ''} {filed.body}".strip()
