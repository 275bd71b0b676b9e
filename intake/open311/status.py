"""The lifecycle seen through Open311: two statuses, and a Korean note for the step.

Open311 knows ``open`` and ``closed`` only. A complaint is closed once nothing more will
happen to it unless the resident acts: resolved (처리 완료), rejected (반려), withdrawn
(취하) or closed (종결); every other state, and a complaint routing has not yet recorded,
is open. ``status_notes`` says which step it is in, in the district's words
(``data/services.ko.json``).
"""

from enum import StrEnum

from schemas.states import OPEN_STATES, ComplaintState


class Status(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def status_of(state: ComplaintState | None) -> Status:
    return Status.OPEN if state is None or state in OPEN_STATES else Status.CLOSED


def states_of(status: Status) -> list[ComplaintState]:
    """The lifecycle states a status stands for, in the lifecycle's order."""
    return [s for s in ComplaintState if status_of(s) is status]
