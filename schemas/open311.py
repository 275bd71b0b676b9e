"""The lifecycle seen through Open311 GeoReport v2: two statuses, a note per step, and the
update an app is pushed.

Open311 knows ``open`` and ``closed`` only. A complaint is closed once nothing more will
happen to it unless the resident acts: resolved (처리 완료), rejected (반려), withdrawn
(취하) or closed (종결); every other state, and a complaint routing has not yet recorded,
is open. ``status_notes`` says which step it is in, in the district's words
(``data/open311.ko.json``, which a district may edit).

It is contract data: intake answers Open311 reads with it, and the notifier pushes the same
words to the apps that registered a webhook (:func:`service_request_update`), so an app
reads one status vocabulary whether it polls or is pushed.
"""

from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, model_validator

from schemas.events import ComplaintStatusChanged
from schemas.pii import mask_text
from schemas.states import OPEN_STATES, ComplaintState

KST = ZoneInfo("Asia/Seoul")
DATA = Path(__file__).parent / "data" / "open311.ko.json"

NOT_ROUTED: Literal["not_routed"] = "not_routed"
"""The note's key for a complaint routing has not recorded yet."""

UPDATE_EVENT_TYPE = "open311.service_request_update"
"""A pushed update's event type (CloudEvent type
``kr.go.sotong.open311.service_request_update.v1``)."""


class Status(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def status_of(state: ComplaintState | None) -> Status:
    return Status.OPEN if state is None or state in OPEN_STATES else Status.CLOSED


def states_of(status: Status) -> list[ComplaintState]:
    """The lifecycle states a status stands for, in the lifecycle's order."""
    return [s for s in ComplaintState if status_of(s) is status]


class Open311Words(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    status_notes: dict[ComplaintState | Literal["not_routed"], str]

    @model_validator(mode="after")
    def _every_state_has_a_note(self) -> Self:
        missing = {*ComplaintState, NOT_ROUTED} - set(self.status_notes)
        if missing:
            raise ValueError(f"status_notes: no note for {sorted(missing)}")
        return self

    def note(self, state: ComplaintState | None) -> str:
        return self.status_notes[state or NOT_ROUTED]


@cache
def words() -> Open311Words:
    """The shipped words (read once)."""
    return Open311Words.model_validate_json(DATA.read_bytes())


def w3c(moment: datetime | None) -> str | None:
    """A W3C datetime (ISO 8601 with its offset), in Korean time, to the second."""
    if moment is None:
        return None
    return moment.astimezone(KST).isoformat(timespec="seconds")


def service_request_update(event: ComplaintStatusChanged) -> dict[str, Any]:
    """One step of a request as an app is pushed it: the fields of the mySociety updates
    extension (``servicerequestupdates``), plus the receipt number, the department, the
    legal due time and the step's sequence number (an app applies a lower one it receives
    late, after a retry, under the higher it already has: it never goes back a step).

    Public-safe by construction: nothing about the resident, and the department's note
    (their free text) only with phone numbers, e-mail addresses and 주민등록번호 masked.
    """
    note = words().note(event.to_state)
    said = mask_text(event.note) if event.note else None
    return {
        "update_id": event.event_id,
        "service_request_id": event.complaint_id,
        "service_notice": event.receipt_number,
        "status": status_of(event.to_state).value,
        "sotong_state": event.to_state.value,
        "updated_datetime": w3c(event.occurred_at),
        "description": f"{note} {said}" if said else note,
        "agency_responsible": event.department_name,
        "expected_datetime": w3c(event.due_at),
        "sequence": event.sequence,
        "media_url": "",
    }
