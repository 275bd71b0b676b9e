"""The shapes that leave tracker, each built field by field from a read model.

The read model keeps personal data for the responsible department. Only
:func:`department_view` copies it out; the resident's own view masks the name, and lists,
the queue and search results are built from documents the store fetched without it. A
field is never copied over by accident because nothing here copies a whole document.
"""

import re
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from schemas import ComplaintState
from schemas.common import PHONE_PATTERN, mask_name, mask_phone
from schemas.events import Outcome
from tracker.projection import ReadModel

_PHONE = re.compile(PHONE_PATTERN)
_PHONE_IN_TEXT = re.compile(r"(?<!\d)0\d{1,2}[-. ]?\d{3,4}[-. ]?\d{4}(?!\d)")
_EMAIL = re.compile(r"^([^@\s])[^@\s]*(@[^@\s]+)$")
EXCERPT_CHARS = 160

Item = TypeVar("Item", bound=BaseModel)


class DepartmentView(BaseModel):
    code: str
    name: str | None = None


class HandlerView(BaseModel):
    name: str
    office_phone: str = Field(description="The office number, never a personal one.")


class TimelineEntry(BaseModel):
    sequence: int
    state: ComplaintState
    from_state: ComplaintState | None
    trigger: str
    occurred_at: datetime
    department: str | None
    department_name: str | None
    handler: HandlerView | None
    note: str | None
    remedy: str | None = Field(default=None, description="On rejection: what the resident can do.")
    due_at: datetime | None
    actor: str


class NotificationView(BaseModel):
    channel: str
    recipient: str = Field(description="Phone numbers and e-mail addresses are masked.")
    outcome: Outcome
    template: str
    detail: str | None
    occurred_at: datetime


class RejectionView(BaseModel):
    command_id: str
    action: str
    code: str
    reason: str
    reason_ko: str
    occurred_at: datetime


class AlertView(BaseModel):
    kind: str = Field(description="deadline_warning, deadline_breached or progress_notice.")
    due_at: datetime
    occurred_at: datetime


class ResidentView(BaseModel):
    name: str | None = Field(description="Masked: 홍길동 → 홍*동.")


class ResidentContact(BaseModel):
    """Who filed, for the responsible department only."""

    name: str | None
    phone: str | None
    email: str | None
    address: str | None


class _Complaint(BaseModel):
    complaint_id: str
    receipt_number: str
    state: ComplaintState | None = Field(
        description="Null until routing has recorded the complaint's first transition."
    )
    department: DepartmentView | None
    handler: HandlerView | None
    due_at: datetime | None
    overdue: bool = Field(description="Open and past its legal due time.")
    filed_at: datetime
    title: str | None
    transfer_count: int = Field(description="Times moved to another department (이송).")
    reopen_count: int = Field(description="Times the resident reopened it (재민원).")
    timeline: list[TimelineEntry]
    notifications: list[NotificationView]
    rejections: list[RejectionView]


class ComplaintView(_Complaint):
    """A complaint as its resident sees it."""

    resident: ResidentView


class DepartmentComplaintView(_Complaint):
    """A complaint as the responsible department sees it, the resident's contact included."""

    body: str | None
    channel: str | None
    service_code: str | None
    dong: str | None = Field(description="행정동.")
    auto_routed: bool | None = Field(
        description="Routed by the classifier or service code; false: the general desk assigned."
    )
    alerts: list[AlertView]
    resident: ResidentContact


class ComplaintSummary(BaseModel):
    """One line of a list: where a complaint stands, without its text or its resident."""

    complaint_id: str
    receipt_number: str | None
    state: ComplaintState | None
    department: DepartmentView | None
    handler: HandlerView | None
    title: str | None
    filed_at: datetime | None
    updated_at: datetime | None
    due_at: datetime | None
    overdue: bool


class QueueItem(ComplaintSummary):
    dong: str | None
    transfer_count: int
    reopen_count: int
    auto_routed: bool | None


class SearchHit(QueueItem):
    excerpt: str = Field(
        description=f"The body's first {EXCERPT_CHARS} characters; phone numbers are masked."
    )


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int = Field(description="How many match, over all pages.")
    limit: int
    offset: int
    next_offset: int | None = Field(description="Pass as offset for the next page; null: last.")


class DepartmentQueue(Page[QueueItem]):
    department: str
    counts: dict[ComplaintState, int] = Field(description="Open complaints per state.")


class SearchResults(Page[SearchHit]):
    terms: list[str] = Field(description="The content words every result contains.")


def page(items: list[Item], total: int, *, limit: int, offset: int) -> dict[str, Any]:
    following = offset + len(items)
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": following if following < total and items else None,
    }


def mask_recipient(recipient: str) -> str:
    """A phone number or e-mail address shown the way a public page may show it."""
    if _PHONE.match(recipient):
        return mask_phone(recipient) or ""
    if email := _EMAIL.match(recipient):
        return f"{email.group(1)}***{email.group(2)}"
    return recipient


def excerpt(body: str | None) -> str:
    """The start of what the resident wrote, with any phone number in it masked."""
    text = _PHONE_IN_TEXT.sub(
        lambda m: mask_phone(m.group(0)) or "", " ".join((body or "").split())
    )
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def public_view(model: ReadModel) -> ComplaintView:
    resident = model["resident"] or {}
    return ComplaintView(
        **_complaint(model), resident=ResidentView(name=mask_name(resident.get("name")))
    )


def department_view(model: ReadModel) -> DepartmentComplaintView:
    resident = model["resident"] or {}
    return DepartmentComplaintView(
        **_complaint(model),
        body=model["body"],
        channel=model["channel"],
        service_code=model["service_code"],
        dong=model["dong"],
        auto_routed=model["auto_routed"],
        alerts=[
            AlertView(kind=a["kind"], due_at=a["due_at"], occurred_at=a["occurred_at"])
            for a in model["alerts"]
        ],
        resident=ResidentContact(
            name=resident.get("name"),
            phone=resident.get("phone"),
            email=resident.get("email"),
            address=resident.get("address"),
        ),
    )


def summary(model: ReadModel) -> ComplaintSummary:
    return ComplaintSummary(**_summary(model))


def queue_item(model: ReadModel) -> QueueItem:
    return QueueItem(**_summary(model), **_queue(model))


def search_hit(model: ReadModel) -> SearchHit:
    return SearchHit(**_summary(model), **_queue(model), excerpt=excerpt(model.get("body")))


def timeline_entry(entry: ReadModel) -> TimelineEntry:
    return TimelineEntry(
        sequence=entry["sequence"],
        state=entry["state"],
        from_state=entry["from_state"],
        trigger=entry["trigger"],
        occurred_at=entry["occurred_at"],
        department=entry["department"],
        department_name=entry["department_name"],
        handler=_handler(entry["handler"]),
        note=entry["note"],
        remedy=entry.get("remedy"),
        due_at=entry["due_at"],
        actor=entry["actor"],
    )


def _complaint(model: ReadModel) -> dict[str, Any]:
    return {
        "complaint_id": model["complaint_id"],
        "receipt_number": model["receipt_number"],
        "state": model["state"],
        "department": _department(model),
        "handler": _handler(model["handler"]),
        "due_at": model["due_at"],
        "overdue": bool(model.get("overdue")),
        "filed_at": model["filed_at"],
        "title": model["title"],
        "transfer_count": model.get("transfer_count", 0),
        "reopen_count": model.get("reopen_count", 0),
        "timeline": [timeline_entry(entry) for entry in model["timeline"]],
        "notifications": [
            NotificationView(
                channel=entry["channel"],
                recipient=mask_recipient(entry["recipient"]),
                outcome=entry["outcome"],
                template=entry["template"],
                detail=entry["detail"],
                occurred_at=entry["occurred_at"],
            )
            for entry in model["notifications"]
        ],
        "rejections": [
            RejectionView(
                command_id=entry["command_id"],
                action=entry["action"],
                code=entry["code"],
                reason=entry["reason"],
                reason_ko=entry["reason_ko"],
                occurred_at=entry["occurred_at"],
            )
            for entry in model["rejections"]
        ],
    }


def _summary(model: ReadModel) -> dict[str, Any]:
    return {
        "complaint_id": model["complaint_id"],
        "receipt_number": model.get("receipt_number"),
        "state": model.get("state"),
        "department": _department(model),
        "handler": _handler(model.get("handler")),
        "title": model.get("title"),
        "filed_at": model.get("filed_at"),
        "updated_at": model.get("updated_at"),
        "due_at": model.get("due_at"),
        "overdue": bool(model.get("overdue")),
    }


def _queue(model: ReadModel) -> dict[str, Any]:
    return {
        "dong": model.get("dong"),
        "transfer_count": model.get("transfer_count", 0),
        "reopen_count": model.get("reopen_count", 0),
        "auto_routed": model.get("auto_routed"),
    }


def _department(model: ReadModel) -> DepartmentView | None:
    code = model.get("department")
    return DepartmentView(code=code, name=model.get("department_name")) if code else None


def _handler(handler: dict[str, str] | None) -> HandlerView | None:
    if handler is None:
        return None
    return HandlerView(name=handler["name"], office_phone=handler["office_phone"])
