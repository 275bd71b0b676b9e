"""A complaint's read model, rebuilt from every event tracker stored for it.

The read model is a pure function of the *set* of events: order of arrival, redelivery
and duplicates cannot change it. That is what makes tracker correct over four topics
whose relative order Kafka does not promise, and what lets ``tracker.rebuild`` throw every
read model away and get the same documents back.

The department queue, staff search and statistics are queries over these documents
(each reads only the fields it may show), so they are rebuilt with them.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import Field, TypeAdapter

from schemas import (
    CommandRejected,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    NotificationOutcome,
)
from schemas.events import AlertKind, HandlerRef
from schemas.states import OPEN_STATES, ComplaintState
from tracker.search import search_terms

AnyTracked = (
    ComplaintFiled
    | ComplaintStatusChanged
    | CommandRejected
    | NotificationOutcome
    | ComplaintDeadlineAlert
)
TrackedEvent = Annotated[AnyTracked, Field(discriminator="event_type")]
TRACKED_EVENT: TypeAdapter[AnyTracked] = TypeAdapter(TrackedEvent)

ReadModel = dict[str, Any]
Timed = TypeVar("Timed", NotificationOutcome, CommandRejected, ComplaintDeadlineAlert)

FILING_FIELDS = (
    "tracking_token_hash",
    "resident_token_hash",
    "title",
    "body",
    "channel",
    "filed_at",
    "submitted_at",
    "service_code",
    "dong",
    "resident",
)
TRANSFER = "transfer"
REOPEN = "reopen"


def project(events: Iterable[TrackedEvent]) -> ReadModel:
    """The read-model document of one complaint (``_id`` is its complaint id).

    ``event_count`` counts distinct events: the store replaces a read model only with one
    built from more events, so a slower writer holding an older snapshot cannot win.
    """
    unique = {event.event_id: event for event in events}
    complaint_ids = {event.complaint_id for event in unique.values()}
    if len(complaint_ids) != 1:
        raise ValueError("a read model is built from the events of exactly one complaint")
    (complaint_id,) = complaint_ids

    filed = min(
        (e for e in unique.values() if isinstance(e, ComplaintFiled)),
        key=lambda e: (e.occurred_at, e.event_id),
        default=None,
    )
    changes = sorted(
        (e for e in unique.values() if isinstance(e, ComplaintStatusChanged)),
        key=lambda e: (e.sequence, e.event_id),
    )
    notifications = _by_time(e for e in unique.values() if isinstance(e, NotificationOutcome))
    rejections = _by_time(e for e in unique.values() if isinstance(e, CommandRejected))
    alerts = _by_time(e for e in unique.values() if isinstance(e, ComplaintDeadlineAlert))
    assignment = _assignment(changes)
    state = changes[-1].to_state if changes else None
    receipt_number = (
        filed.receipt_number if filed else changes[-1].receipt_number if changes else None
    )
    return {
        "_id": complaint_id,
        "complaint_id": complaint_id,
        "event_count": len(unique),
        "receipt_number": receipt_number,
        "state": state.value if state else None,
        "updated_at": max(
            [change.occurred_at for change in changes] + ([filed.occurred_at] if filed else []),
            default=None,
        ),
        **assignment,
        "overdue": _overdue(state, assignment["due_at"], alerts),
        "auto_routed": next((c.auto_routed for c in changes if c.auto_routed is not None), None),
        "transfer_count": sum(1 for change in changes if change.trigger == TRANSFER),
        "reopen_count": sum(1 for change in changes if change.trigger == REOPEN),
        "alerts": [_alert(alert) for alert in alerts],
        "timeline": [_timeline_entry(change) for change in changes],
        "notifications": [_notification(outcome) for outcome in notifications],
        "rejections": [_rejection(rejection) for rejection in rejections],
        **_filing(filed),
    }


def _by_time(events: Iterable[Timed]) -> list[Timed]:
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def _assignment(changes: list[ComplaintStatusChanged]) -> ReadModel:
    """Who holds the complaint now: each field from the latest change that names it.

    A move to another department drops the handler named in the previous one, so a
    handler is never shown for a department they do not work in.
    """
    department: str | None = None
    department_name: str | None = None
    handler: HandlerRef | None = None
    due_at: datetime | None = None
    for change in changes:
        if change.department is not None:
            if department is not None and change.department != department:
                department_name, handler = None, None
            department = change.department
        department_name = change.department_name or department_name
        handler = change.handler or handler
        due_at = change.due_at or due_at
    return {
        "department": department,
        "department_name": department_name,
        "handler": _handler(handler),
        "due_at": due_at,
    }


def _handler(handler: HandlerRef | None) -> dict[str, str] | None:
    if handler is None:
        return None
    return {
        "handler_id": handler.handler_id,
        "name": handler.name,
        "office_phone": handler.office_phone,
    }


def _timeline_entry(change: ComplaintStatusChanged) -> ReadModel:
    return {
        "event_id": change.event_id,
        "sequence": change.sequence,
        "state": change.to_state.value,
        "from_state": change.from_state.value if change.from_state else None,
        "trigger": change.trigger,
        "occurred_at": change.occurred_at,
        "department": change.department,
        "department_name": change.department_name,
        "handler": _handler(change.handler),
        "note": change.note,
        "remedy": change.remedy,
        "due_at": change.due_at,
        "actor": change.actor,
    }


def _notification(outcome: NotificationOutcome) -> ReadModel:
    return {
        "event_id": outcome.event_id,
        "channel": outcome.channel,
        "recipient": outcome.recipient,
        "outcome": outcome.outcome.value,
        "template": outcome.template,
        "detail": outcome.detail,
        "occurred_at": outcome.occurred_at,
    }


def _overdue(
    state: ComplaintState | None, due_at: datetime | None, alerts: list[ComplaintDeadlineAlert]
) -> bool:
    """Open, and routing has reported the current due time as breached."""
    return (
        state in OPEN_STATES
        and due_at is not None
        and any(a.kind is AlertKind.BREACH and a.due_at == due_at for a in alerts)
    )


def _alert(alert: ComplaintDeadlineAlert) -> ReadModel:
    return {
        "event_id": alert.event_id,
        "kind": alert.kind.value,
        "due_at": alert.due_at,
        "occurred_at": alert.occurred_at,
    }


def _rejection(rejection: CommandRejected) -> ReadModel:
    return {
        "event_id": rejection.event_id,
        "command_id": rejection.command_id,
        "action": rejection.action,
        "code": rejection.code,
        "reason": rejection.reason,
        "reason_ko": rejection.reason_ko,
        "occurred_at": rejection.occurred_at,
    }


def _filing(filed: ComplaintFiled | None) -> ReadModel:
    """What intake recorded; None until ComplaintFiled arrives. Personal data is kept for
    the responsible department's view and never leaves tracker otherwise (the resident's
    own view masks the name).

    ``search_terms`` are the content morphemes of title and body, for staff search.
    """
    if filed is None:
        return dict.fromkeys(FILING_FIELDS) | {"search_terms": []}
    return {
        "tracking_token_hash": filed.tracking_token_hash,
        "resident_token_hash": filed.resident_token_hash,
        "title": filed.title,
        "body": filed.body,
        "channel": filed.channel.value,
        "filed_at": filed.occurred_at,
        "submitted_at": filed.submitted_at,
        "service_code": filed.service_code,
        "dong": filed.location.dong,
        "resident": {
            "name": filed.resident.name,
            "phone": filed.resident.phone,
            "email": filed.resident.email,
            "address": filed.location.address,
        },
        "search_terms": list(search_terms(f"{filed.title or ''}\n{filed.body}")),
    }
