"""A complaint's read model, rebuilt from every event tracker stored for it.

A read model exists only once the complaint's filing is stored (:func:`read_model_of`):
a command, a rejection or any other event for a complaint id intake never filed is kept
in the event store, but shows nowhere, so a mistyped id cannot make a phantom complaint
that the queue, search or statistics would count. When the filing arrives after other
events of its complaint (Kafka orders each topic, not the four together), the read model
is projected from everything stored by then.

The read model is a pure function of the *set* of events: order of arrival, redelivery
and duplicates cannot change it. That is what makes tracker correct over four topics
whose relative order Kafka does not promise, and what lets ``tracker.rebuild`` throw every
read model away and get the same documents back.

The department queue, staff search and statistics are queries over these documents
(each reads only the fields its view has, see ``tracker.view``), so they are rebuilt
with them.
"""

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter

from schemas import (
    Channel,
    CommandRejected,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    NotificationOutcome,
)
from schemas.commands import CorrectComplaint
from schemas.common import ChatTurn
from schemas.events import (
    AlertKind,
    Correction,
    HandlerRef,
    LinkedTo,
    Outcome,
    PhotoRef,
    Rating,
    RepeatedOf,
    ResidentBound,
)
from schemas.pii import mask_text
from schemas.states import OPEN_STATES, ComplaintState
from tracker.search import search_terms

AnyTracked = (
    ComplaintFiled
    | ComplaintStatusChanged
    | CommandRejected
    | NotificationOutcome
    | ComplaintDeadlineAlert
    | CorrectComplaint
    | ResidentBound
)
"""``CorrectComplaint`` is the one command tracker keeps: the corrected address and title
travel only on ``complaint.commands`` (the lifecycle topic is department-shared), and they
count once routing's ``correct`` change names the command as its cause. ``ResidentBound``
(``resident.bindings``) adds a device's resident token to the complaint's resident."""
TrackedEvent = Annotated[AnyTracked, Field(discriminator="event_type")]
TRACKED_EVENT: TypeAdapter[AnyTracked] = TypeAdapter(TrackedEvent)

Timed = TypeVar("Timed", NotificationOutcome, CommandRejected, ComplaintDeadlineAlert)

TRANSFER = "transfer"
REOPEN = "reopen"


class Recorded(BaseModel):
    """A part of a read model: frozen, and tolerant of what an older or newer tracker
    stored beside it (``_id``, a field since dropped)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Transition(Recorded):
    """One status change, as the timeline keeps it."""

    event_id: str
    sequence: int
    state: ComplaintState = Field(validation_alias=AliasChoices("state", "to_state"))
    from_state: ComplaintState | None
    trigger: str
    occurred_at: datetime
    department: str | None
    department_name: str | None
    handler: HandlerRef | None
    note: str | None
    remedy: str | None = None
    due_at: datetime | None
    actor: str
    correction: Correction | None = None
    rating: Rating | None = None


class Notification(Recorded):
    event_id: str
    channel: str
    recipient: str
    outcome: Outcome
    template: str
    detail: str | None
    occurred_at: datetime


class Alert(Recorded):
    event_id: str
    kind: AlertKind
    due_at: datetime
    occurred_at: datetime


class Rejection(Recorded):
    event_id: str
    command_id: str
    action: str
    code: str
    reason: str
    reason_ko: str
    occurred_at: datetime


class Contact(Recorded):
    """Who filed and where: personal data, for the responsible department only."""

    name: str | None
    phone: str | None
    email: str | None
    address: str | None


class ReadModel(Recorded):
    """Everything tracker knows of one complaint; stored as one document, ``_id`` its
    complaint id. Defaults are for documents an older tracker stored without the field.

    ``event_count`` counts distinct events: the store replaces a read model only with one
    built from at least as many events, so a slower writer holding an older snapshot
    cannot win.
    """

    complaint_id: str
    event_count: int
    receipt_number: str | None
    state: ComplaintState | None
    updated_at: datetime | None
    department: str | None
    department_name: str | None
    handler: HandlerRef | None
    due_at: datetime | None
    overdue: bool = False
    auto_routed: bool | None = None
    transfer_count: int = 0
    reopen_count: int = 0
    alerts: list[Alert] = []
    timeline: list[Transition]
    notifications: list[Notification]
    rejections: list[Rejection]
    # What intake recorded; None until ComplaintFiled arrives.
    tracking_token_hash: str | None = None
    resident_token_hash: str | None = None
    bound_resident_hashes: list[str] = Field(
        default=[],
        description="Resident tokens (SHA-256) bound by recovery on another device: each "
        "lists the complaint and acts on it as the filer's does. Sorted.",
    )
    title: str | None = None
    body: str | None = None
    channel: Channel | None = None
    filed_at: datetime | None = None
    submitted_at: datetime | None = None
    service_code: str | None = None
    dong: str | None = None
    resident: Contact | None = None
    transcript: list[ChatTurn] = Field(
        default=[], description="The chat that led to the complaint (chatbot, KakaoTalk)."
    )
    search_terms: list[str] = Field(
        default=[], description="The content morphemes of title and body, for staff search."
    )
    repeated_of: RepeatedOf | None = Field(
        default=None,
        description="반복민원: the same resident's concluded complaint routing found this one "
        "repeats, until the department dismisses the mark.",
    )
    repeated: bool = Field(
        default=False, description="Concluded as a 반복민원 by the earlier answer."
    )
    linked_to: LinkedTo | None = Field(
        default=None, description="중복민원: the open case this complaint was joined to."
    )
    linked: bool = Field(default=False, description="Joined to a case now.")
    rating: int | None = Field(
        default=None, description="The resident's latest rating of the handling (1–5)."
    )
    rating_comment: str | None = Field(default=None, description="With it, masked.")
    photos: list[PhotoRef] = Field(
        default=[],
        description="The photos attached at filing, then those corrections added (사진 추가), "
        "once each: references intake serves, never bytes.",
    )


def read_model_of(events: Collection[TrackedEvent]) -> ReadModel | None:
    """The complaint's read model, or None while its filing is not stored: what the
    ingest and the rebuild write."""
    return project(events) if any(isinstance(e, ComplaintFiled) for e in events) else None


def project(events: Iterable[TrackedEvent]) -> ReadModel:
    """The read model of one complaint, from any delivery of its events (with or without
    its filing: :func:`read_model_of` decides whether one is stored)."""
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
    department, department_name, handler, due_at = _assignment(changes)
    state = changes[-1].to_state if changes else None
    return ReadModel(
        complaint_id=complaint_id,
        event_count=len(unique),
        receipt_number=(
            filed.receipt_number if filed else changes[-1].receipt_number if changes else None
        ),
        state=state,
        updated_at=max(
            [change.occurred_at for change in changes] + ([filed.occurred_at] if filed else []),
            default=None,
        ),
        department=department,
        department_name=department_name,
        handler=handler,
        due_at=due_at,
        overdue=_overdue(state, due_at, alerts),
        auto_routed=next((c.auto_routed for c in changes if c.auto_routed is not None), None),
        transfer_count=sum(1 for change in changes if change.trigger == TRANSFER),
        reopen_count=sum(1 for change in changes if change.trigger == REOPEN),
        alerts=[Alert.model_validate(a, from_attributes=True) for a in alerts],
        timeline=[Transition.model_validate(c, from_attributes=True) for c in changes],
        notifications=[Notification.model_validate(n, from_attributes=True) for n in notifications],
        rejections=[Rejection.model_validate(r, from_attributes=True) for r in rejections],
        **_marks(changes),
        **_rating(changes),
        **(_corrected(_filing(filed), changes, unique.values()) if filed else {}),
        bound_resident_hashes=sorted(
            {e.resident_token_hash for e in unique.values() if isinstance(e, ResidentBound)}
        ),
        photos=_photos(filed, changes),
    )


def _photos(filed: ComplaintFiled | None, changes: list[ComplaintStatusChanged]) -> list[PhotoRef]:
    """The filing's photos, then each correction's in its order, once each. A correction's
    photos show even before the filing arrives (the read model is stored only then)."""
    photos: dict[str, PhotoRef] = {p.photo_id: p for p in (filed.photos if filed else [])}
    for change in changes:
        if change.trigger == "correct" and change.correction is not None:
            for photo in change.correction.photos:
                photos.setdefault(photo.photo_id, photo)
    return list(photos.values())


def _rating(changes: list[ComplaintStatusChanged]) -> dict[str, Any]:
    """The latest rating: routing takes one per resolution, so a later one rates a later
    resolution (after a 재민원)."""
    rated = [c.rating for c in changes if c.trigger == "rate" and c.rating is not None]
    latest = rated[-1] if rated else None
    return {
        "rating": latest.score if latest else None,
        "rating_comment": latest.comment if latest else None,
    }


def _corrected(
    filing: dict[str, Any], changes: list[ComplaintStatusChanged], events: Iterable[TrackedEvent]
) -> dict[str, Any]:
    """What intake recorded, with the resident's corrections applied in their order: each
    ``correct`` change names the fields and the new 행정동; the address and the title come
    from its command (kept by tracker), and wait for it when it arrives later."""
    commands = {e.event_id: e for e in events if isinstance(e, CorrectComplaint)}
    for change in changes:
        if change.trigger != "correct" or change.correction is None:
            continue
        fields = set(change.correction.fields)
        if "dong" in fields:
            filing["dong"] = change.correction.dong
        command = commands.get(change.caused_by or "")
        if command is None:
            continue
        if "title" in fields and command.title is not None:
            filing["title"] = command.title
            text = f"{command.title}\n{filing['body']}"
            filing["search_terms"] = list(search_terms(mask_text(text)))
        if "address" in fields and command.address is not None:
            filing["resident"] = filing["resident"].model_copy(update={"address": command.address})
    return filing


def _marks(changes: list[ComplaintStatusChanged]) -> dict[str, Any]:
    """The 반복민원 and 중복민원 marks as the latest changes leave them."""
    repeated_of: RepeatedOf | None = None
    linked_to: LinkedTo | None = None
    repeated = False
    for change in changes:
        if change.trigger == "mark_repeated":
            repeated_of = change.repeated_of
        elif change.trigger == "dismiss_repeated":
            repeated_of = None
        elif change.trigger == "conclude_repeated":
            repeated_of, repeated = change.repeated_of or repeated_of, True
        elif change.trigger == "link":
            linked_to = change.linked_to
        elif change.trigger == "unlink":
            linked_to = None
    return {
        "repeated_of": repeated_of,
        "repeated": repeated,
        "linked_to": linked_to,
        "linked": linked_to is not None,
    }


def _by_time(events: Iterable[Timed]) -> list[Timed]:
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def _assignment(
    changes: list[ComplaintStatusChanged],
) -> tuple[str | None, str | None, HandlerRef | None, datetime | None]:
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
    return department, department_name, handler, due_at


def _overdue(
    state: ComplaintState | None, due_at: datetime | None, alerts: list[ComplaintDeadlineAlert]
) -> bool:
    """Open, and routing has reported the current due time as breached."""
    return (
        state in OPEN_STATES
        and due_at is not None
        and any(a.kind is AlertKind.BREACH and a.due_at == due_at for a in alerts)
    )


def _filing(filed: ComplaintFiled) -> dict[str, Any]:
    """What intake recorded. Personal data is kept for the responsible department's view
    and never leaves tracker otherwise (the resident's own view masks the name)."""
    return {
        "tracking_token_hash": filed.tracking_token_hash,
        "resident_token_hash": filed.resident_token_hash,
        "title": filed.title,
        "body": filed.body,
        "channel": filed.channel,
        "filed_at": filed.occurred_at,
        "submitted_at": filed.submitted_at,
        "service_code": filed.service_code,
        "dong": filed.location.dong,
        "resident": Contact(
            name=filed.resident.name,
            phone=filed.resident.phone,
            email=filed.resident.email,
            address=filed.location.address,
        ),
        "transcript": filed.transcript,
        "search_terms": list(search_terms(mask_text(f"{filed.title or ''}\n{filed.body}"))),
    }
