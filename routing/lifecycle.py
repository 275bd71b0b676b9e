"""The complaint lifecycle, as one table. The only place that decides which move is legal.

One ``Machine(model=None, auto_transitions=False)`` serves every complaint: a transient
subject is added for one trigger and removed again, so nothing is built per complaint
on the hot path. Guards are predicates; the only callback records the change.
"""

from dataclasses import dataclass, field
from typing import Any, Final

from transitions import EventData, Machine, MachineError

from schemas.states import ComplaintState as S

TRANSITIONS: Final[list[dict[str, Any]]] = [
    {"trigger": "assign", "source": S.RECEIVED, "dest": S.ASSIGNED},
    {"trigger": "assign_handler", "source": S.ASSIGNED, "dest": S.HANDLER_ASSIGNED},
    {"trigger": "start_site_check", "source": S.HANDLER_ASSIGNED, "dest": S.SITE_CHECK},
    {"trigger": "start_review", "source": [S.HANDLER_ASSIGNED, S.SITE_CHECK], "dest": S.REVIEWING},
    {
        "trigger": "resolve",
        "source": [S.HANDLER_ASSIGNED, S.SITE_CHECK, S.REVIEWING],
        "dest": S.RESOLVED,
        "conditions": "has_result",
    },
    {"trigger": "close", "source": S.RESOLVED, "dest": S.CLOSED},
]

STATE_KO: Final = {
    S.RECEIVED: "접수",
    S.ASSIGNED: "부서 배정",
    S.HANDLER_ASSIGNED: "담당자 지정",
    S.SITE_CHECK: "현장 확인 중",
    S.REVIEWING: "심사 중",
    S.INFO_REQUESTED: "보완 요청",
    S.RESOLVED: "처리 완료",
    S.REJECTED: "반려",
    S.WITHDRAWN: "취하",
    S.CLOSED: "종결",
}

GUARD_REFUSALS: Final = {
    "has_result": (
        "result_required",
        "resolve needs a result text in note",
        "처리 결과(note)를 입력해야 합니다",
    ),
}


@dataclass(frozen=True)
class Change:
    trigger: str
    from_state: S
    to_state: S


@dataclass(frozen=True)
class Refusal(Exception):
    """A command the lifecycle does not allow. ``code`` is for machines, reasons for people."""

    code: str
    reason: str
    reason_ko: str

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


@dataclass
class _Subject:
    """The machine's model for the duration of one trigger."""

    state: S = S.RECEIVED
    changes: list[Change] = field(default_factory=list)
    failed_guard: str | None = None

    def record(self, event: EventData) -> None:
        assert event.transition is not None
        assert event.transition.dest is not None
        # With Enum states, transitions names them by member name.
        source, dest = S[event.transition.source], S[event.transition.dest]
        self.changes.append(Change(event.event.name, source, dest))

    def has_result(self, event: EventData) -> bool:
        ok = bool(str(event.kwargs.get("note") or "").strip())
        if not ok:
            self.failed_guard = "has_result"
        return ok


class Lifecycle:
    def __init__(self) -> None:
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

    def fire(self, state: S, trigger: str, **kwargs: Any) -> Change:
        """Apply one trigger to a complaint in ``state``; raise Refusal if it is not legal."""
        if trigger not in self.machine.events:
            raise Refusal(
                "unknown_action", f"unknown action {trigger!r}", f"알 수 없는 처리({trigger})입니다"
            )
        subject = _Subject(state=state)
        self.machine.add_model(subject, initial=state)
        try:
            try:
                moved = self.machine.events[trigger].trigger(subject, **kwargs)
            except MachineError:
                raise Refusal(
                    "illegal_transition",
                    f"cannot {trigger} a complaint that is {state.value}",
                    f"현재 상태({STATE_KO[state]})에서는 할 수 없는 처리입니다",
                ) from None
            if not moved:
                code, reason, reason_ko = GUARD_REFUSALS[subject.failed_guard or "has_result"]
                raise Refusal(code, reason, reason_ko)
            return subject.changes[-1]
        finally:
            self.machine.remove_model(subject)
