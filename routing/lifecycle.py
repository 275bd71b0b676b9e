"""The complaint lifecycle, as one table. The only place that decides which move is legal.

One ``Machine(model=None, auto_transitions=False)`` serves every complaint: a transient
subject is added for one trigger and removed again, so nothing is built per complaint
on the hot path. Guards are predicates; the only callback records the change.
"""

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from transitions import EventData, Machine, MachineError

from routing.texts import RefusalCode, Texts, shipped
from schemas.commands import RESIDENT as COMMAND_RESIDENT
from schemas.states import CONCLUDED_STATES
from schemas.states import ComplaintState as S

_WORKING = [S.HANDLER_ASSIGNED, S.SITE_CHECK, S.REVIEWING]
_HELD = [S.ASSIGNED, *_WORKING, S.INFO_REQUESTED]
CORRECTABLE: Final = (S.RECEIVED, S.ASSIGNED, S.HANDLER_ASSIGNED)
"""정정 is open until the handler starts working on the facts: before the site check, and
not while a 보완 요청 is open (the resident answers that with provide_info)."""
RATEABLE: Final = (S.RESOLVED, S.CLOSED)

TRANSITIONS: Final[list[dict[str, Any]]] = [
    {"trigger": "assign", "source": S.RECEIVED, "dest": S.ASSIGNED},
    {"trigger": "assign_handler", "source": S.ASSIGNED, "dest": S.HANDLER_ASSIGNED},
    {"trigger": "start_site_check", "source": S.HANDLER_ASSIGNED, "dest": S.SITE_CHECK},
    {"trigger": "start_review", "source": [S.HANDLER_ASSIGNED, S.SITE_CHECK], "dest": S.REVIEWING},
    {"trigger": "resolve", "source": _WORKING, "dest": S.RESOLVED, "conditions": "has_result"},
    {
        "trigger": "transfer",
        "source": _HELD,
        "dest": S.ASSIGNED,
        "conditions": ["has_reason", "is_known_department", "is_other_department"],
    },
    {
        "trigger": "request_info",
        "source": _WORKING,
        "dest": S.INFO_REQUESTED,
        "conditions": "has_reason",
    },
    {
        "trigger": "provide_info",
        "source": S.INFO_REQUESTED,
        "dest": S.HANDLER_ASSIGNED,
        "conditions": "resumes_handler_assigned",
    },
    {
        "trigger": "provide_info",
        "source": S.INFO_REQUESTED,
        "dest": S.SITE_CHECK,
        "conditions": "resumes_site_check",
    },
    {
        "trigger": "provide_info",
        "source": S.INFO_REQUESTED,
        "dest": S.REVIEWING,
        "conditions": "resumes_reviewing",
    },
    {
        "trigger": "extend",
        "source": [*_WORKING, S.INFO_REQUESTED],
        "dest": None,
        "conditions": ["has_reason", "is_later_due", "within_first_limit", "consented_if_repeated"],
    },
    {"trigger": "reassign", "source": _WORKING, "dest": None},
    {"trigger": "reject", "source": _HELD, "dest": S.REJECTED, "conditions": "has_reason"},
    {"trigger": "withdraw", "source": [S.RECEIVED, *_HELD], "dest": S.WITHDRAWN},
    {
        "trigger": "reopen",
        "source": [S.RESOLVED, S.CLOSED],
        "dest": S.HANDLER_ASSIGNED,
        "conditions": "has_reason",
    },
    {"trigger": "close", "source": S.RESOLVED, "dest": S.CLOSED},
    {"trigger": "mark_repeated", "source": _HELD, "dest": None},
    {
        "trigger": "conclude_repeated",
        "source": _HELD,
        "dest": S.CLOSED,
        "conditions": ["is_marked_repeated", "earlier_concluded"],
    },
    {
        "trigger": "dismiss_repeated",
        "source": _HELD,
        "dest": None,
        "conditions": "is_marked_repeated",
    },
    {"trigger": "link", "source": _HELD, "dest": None},
    {"trigger": "unlink", "source": _HELD, "dest": None, "conditions": "is_linked"},
    {
        "trigger": "correct",
        "source": list(CORRECTABLE),
        "dest": None,
        "conditions": "changes_facts",
    },
    {"trigger": "rate", "source": list(RATEABLE), "dest": None, "conditions": "not_rated_yet"},
]
"""``dest: None`` is an internal transition: the state stays, the event is still recorded."""

ROUTING: Final = "routing"
RESIDENT: Final = "resident"
DEPARTMENT: Final = "responsible department"

WHO_MAY_FIRE: Final[dict[str, str]] = {
    "assign": ROUTING,
    "assign_handler": ROUTING,
    "start_site_check": DEPARTMENT,
    "start_review": DEPARTMENT,
    "resolve": DEPARTMENT,
    "transfer": DEPARTMENT,
    "request_info": DEPARTMENT,
    "provide_info": RESIDENT,
    "extend": DEPARTMENT,
    "reassign": DEPARTMENT,
    "reject": DEPARTMENT,
    "withdraw": RESIDENT,
    "reopen": RESIDENT,
    "close": DEPARTMENT,
    "mark_repeated": ROUTING,
    "conclude_repeated": DEPARTMENT,
    "dismiss_repeated": DEPARTMENT,
    "link": ROUTING,
    "unlink": DEPARTMENT,
    "correct": RESIDENT,
    "rate": RESIDENT,
}
"""Who may fire each trigger: routing itself (never by command), the resident (through
intake), or the department responsible for the complaint now."""

ACTOR_REFUSALS: Final[dict[str, RefusalCode]] = {
    ROUTING: RefusalCode.ROUTING_ONLY,
    RESIDENT: RefusalCode.RESIDENT_ONLY,
    DEPARTMENT: RefusalCode.NOT_RESPONSIBLE,
}
"""The refusal a command from anyone else gets."""

EFFECTS: Final[dict[str, str]] = {
    "assign": "department from the service code or the classifier; due time from its period",
    "assign_handler": "the on-duty handler for the area with the fewest open complaints",
    "transfer": "new department, then a handler there (assign_handler); kept as a training example",
    "request_info": "the clock pauses; the state to resume is kept",
    "provide_info": "back to the kept state; the due time moves by the working hours paused",
    "extend": "the new due time; one more extension",
    "reassign": "the named on-duty handler, or the least loaded other one",
    "reject": "the remedy is carried",
    "reopen": "a new clock from now; a handler if none; one more reopening",
    "mark_repeated": "repeated_of: the same resident's concluded complaint, and the similarity",
    "conclude_repeated": "closed by the earlier answer (법 제23조), which the event carries",
    "dismiss_repeated": "the mark is dropped; the complaint is handled as new",
    "link": "linked_to: the open case; the case's handler; the case's moves are followed",
    "unlink": "the link is dropped; the complaint is handled alone",
    "correct": "address, 행정동, title as given, photos added; a new 행정동 another handler "
    "covers: reassign",
    "rate": "the rating, once per resolution (a reopening allows the next one)",
}
"""What a trigger changes beside the state (``routing/complaint.py`` carries it out)."""

RESIDENT_TRIGGERS: Final = frozenset(t for t, who in WHO_MAY_FIRE.items() if who == RESIDENT)
ROUTING_TRIGGERS: Final = frozenset(t for t, who in WHO_MAY_FIRE.items() if who == ROUTING)

GUARD_REFUSALS: Final[dict[str, RefusalCode]] = {
    "has_result": RefusalCode.RESULT_REQUIRED,
    "has_reason": RefusalCode.REASON_REQUIRED,
    "is_known_department": RefusalCode.UNKNOWN_DEPARTMENT,
    "is_other_department": RefusalCode.SAME_DEPARTMENT,
    "is_later_due": RefusalCode.DUE_NOT_LATER,
    "within_first_limit": RefusalCode.EXTENSION_TOO_LONG,
    "consented_if_repeated": RefusalCode.CONSENT_REQUIRED,
    "is_marked_repeated": RefusalCode.NOT_MARKED_REPEATED,
    "earlier_concluded": RefusalCode.EARLIER_NOT_CONCLUDED,
    "is_linked": RefusalCode.NOT_LINKED,
    "changes_facts": RefusalCode.NOTHING_TO_CORRECT,
    "not_rated_yet": RefusalCode.ALREADY_RATED,
}
"""The refusal a failed guard gives; its sentences are in ``routing/data/texts.ko.json``."""

STATE_REFUSALS: Final[dict[str, RefusalCode]] = {
    "correct": RefusalCode.CORRECTION_CLOSED,
    "rate": RefusalCode.NOT_RESOLVED,
}
"""A resident's trigger fired from a state that does not allow it gets a reason that says
what to do instead, rather than the generic illegal transition."""


def refusal_for_actor(trigger: str, *, actor: str, department: str | None) -> RefusalCode | None:
    """Why ``actor`` may not fire ``trigger`` on a complaint ``department`` is responsible
    for, or None if it may (an unknown trigger is the machine's to refuse)."""
    who = WHO_MAY_FIRE.get(trigger)
    if who is None:
        return None
    allowed = {ROUTING: False, RESIDENT: actor == COMMAND_RESIDENT, DEPARTMENT: actor == department}
    return None if allowed[who] else ACTOR_REFUSALS[who]


@dataclass(frozen=True)
class Change:
    trigger: str
    from_state: S
    to_state: S


@dataclass(frozen=True)
class Facts:
    """What the guards look at, worked out by the caller so that the guards stay pure."""

    note: str | None = None
    department: str | None = None
    due_at: datetime | None = None
    to_department: str | None = None
    known_departments: Collection[str] = ()
    new_due_at: datetime | None = None
    extensions: int = 0
    resident_consent: bool = False
    within_double: bool = False
    resume_state: S | None = None
    marked_repeated: bool = False
    earlier_state: S | None = None
    """The state of the complaint this one is marked as repeating, read with it."""
    linked: bool = False
    corrects: bool = False
    """The correction changes at least one fact (worked out against the stored ones)."""
    rated: bool = False
    """The current resolution is rated already."""


NO_FACTS: Final = Facts()


@dataclass
class _Subject:
    """The machine's model for the duration of one trigger."""

    facts: Facts
    state: S = S.RECEIVED
    changes: list[Change] = field(default_factory=list)
    failed_guard: str | None = None

    def record(self, event: EventData) -> None:
        assert event.transition is not None
        # With Enum states, transitions names them by member name; None is internal.
        source = S[event.transition.source]
        dest = source if event.transition.dest is None else S[event.transition.dest]
        self.changes.append(Change(event.event.name, source, dest))

    def _check(self, name: str, ok: bool) -> bool:
        if not ok:
            self.failed_guard = name
        return ok

    def has_result(self, _: EventData) -> bool:
        return self._check("has_result", bool((self.facts.note or "").strip()))

    def has_reason(self, _: EventData) -> bool:
        return self._check("has_reason", bool((self.facts.note or "").strip()))

    def is_known_department(self, _: EventData) -> bool:
        target = self.facts.to_department
        return self._check(
            "is_known_department", bool(target) and target in self.facts.known_departments
        )

    def is_other_department(self, _: EventData) -> bool:
        ok = self.facts.to_department != self.facts.department
        return self._check("is_other_department", ok)

    def is_later_due(self, _: EventData) -> bool:
        new, current = self.facts.new_due_at, self.facts.due_at
        return self._check("is_later_due", new is not None and (current is None or new > current))

    def within_first_limit(self, _: EventData) -> bool:
        ok = self.facts.extensions > 0 or self.facts.within_double
        return self._check("within_first_limit", ok)

    def consented_if_repeated(self, _: EventData) -> bool:
        ok = self.facts.extensions == 0 or self.facts.resident_consent
        return self._check("consented_if_repeated", ok)

    def is_marked_repeated(self, _: EventData) -> bool:
        return self._check("is_marked_repeated", self.facts.marked_repeated)

    def earlier_concluded(self, _: EventData) -> bool:
        ok = self.facts.earlier_state in CONCLUDED_STATES
        return self._check("earlier_concluded", ok)

    def is_linked(self, _: EventData) -> bool:
        return self._check("is_linked", self.facts.linked)

    def changes_facts(self, _: EventData) -> bool:
        return self._check("changes_facts", self.facts.corrects)

    def not_rated_yet(self, _: EventData) -> bool:
        return self._check("not_rated_yet", not self.facts.rated)

    def resumes_handler_assigned(self, _: EventData) -> bool:
        return self.facts.resume_state in (None, S.HANDLER_ASSIGNED)

    def resumes_site_check(self, _: EventData) -> bool:
        return self.facts.resume_state == S.SITE_CHECK

    def resumes_reviewing(self, _: EventData) -> bool:
        return self.facts.resume_state == S.REVIEWING


class Lifecycle:
    def __init__(self, texts: Texts | None = None) -> None:
        self.texts = shipped() if texts is None else texts
        self.machine = Machine(
            model=None,
            states=list(S),
            transitions=TRANSITIONS,
            initial=S.RECEIVED,
            auto_transitions=False,
            send_event=True,
            after_state_change="record",
        )

    def triggers(self) -> list[str]:
        return [name for name in self.machine.events if not name.startswith("to_")]

    def allowed(self, state: S) -> list[str]:
        return sorted(self.machine.get_triggers(state))

    def fire(self, state: S, trigger: str, facts: Facts = NO_FACTS) -> Change:
        """Apply one trigger to a complaint in ``state``; raise Refusal if it is not legal."""
        if trigger not in self.machine.events:
            raise self.texts.refusal(RefusalCode.UNKNOWN_ACTION, action=trigger)
        subject = _Subject(facts=facts, state=state)
        self.machine.add_model(subject, initial=state)
        try:
            try:
                moved = self.machine.events[trigger].trigger(subject)
            except MachineError:
                if trigger in STATE_REFUSALS:
                    raise self.texts.refusal(STATE_REFUSALS[trigger]) from None
                raise self.texts.refusal(
                    RefusalCode.ILLEGAL_TRANSITION,
                    action=trigger,
                    state=state.value,
                    state_ko=self.texts.states[state],
                ) from None
            if not moved:
                raise self.texts.refusal(GUARD_REFUSALS[subject.failed_guard or "has_reason"])
            return subject.changes[-1]
        finally:
            self.machine.remove_model(subject)
