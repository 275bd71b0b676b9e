"""The contract: every message that crosses a service boundary, the topics, the envelope.

Department systems code against this package (or the AsyncAPI document generated from
it). Models are frozen; readers ignore unknown fields so additive changes never break a
subscriber.
"""

from schemas import topics
from schemas.commands import ComplaintCommand, DepartmentAction
from schemas.common import Channel, ChatTurn, Coordinates, Location, Resident
from schemas.envelope import CE_SPECVERSION, cloudevent_headers
from schemas.events import (
    CommandRejected,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    ComplaintSubmitted,
    DeadLetter,
    FieldError,
    NotificationOutcome,
    NotificationRetryScheduled,
)
from schemas.states import ComplaintState

__all__ = [
    "CE_SPECVERSION",
    "Channel",
    "ChatTurn",
    "CommandRejected",
    "ComplaintCommand",
    "ComplaintDeadlineAlert",
    "ComplaintFiled",
    "ComplaintState",
    "ComplaintStatusChanged",
    "ComplaintSubmitted",
    "Coordinates",
    "DeadLetter",
    "DepartmentAction",
    "FieldError",
    "Location",
    "NotificationOutcome",
    "NotificationRetryScheduled",
    "Resident",
    "cloudevent_headers",
    "topics",
]
