"""What a resident holding the tracking token may see of their complaint.

The read model keeps personal data for department views; this view is the only shape
that leaves tracker publicly, so masking happens here and nowhere else.
"""

import re
from datetime import datetime

from pydantic import BaseModel, Field

from schemas import ComplaintState
from schemas.common import PHONE_PATTERN, mask_name, mask_phone
from schemas.events import Outcome
from tracker.projection import ReadModel

_PHONE = re.compile(PHONE_PATTERN)
_EMAIL = re.compile(r"^([^@\s])[^@\s]*(@[^@\s]+)$")


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


class ResidentView(BaseModel):
    name: str | None = Field(description="Masked: 홍길동 → 홍*동.")


class ComplaintView(BaseModel):
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
    timeline: list[TimelineEntry]
    notifications: list[NotificationView]
    rejections: list[RejectionView]
    resident: ResidentView


def mask_recipient(recipient: str) -> str:
    """A phone number or e-mail address shown the way a public page may show it."""
    if _PHONE.match(recipient):
        return mask_phone(recipient) or ""
    if email := _EMAIL.match(recipient):
        return f"{email.group(1)}***{email.group(2)}"
    return recipient


def public_view(model: ReadModel) -> ComplaintView:
    """Built field by field, so nothing personal is ever copied over by accident."""
    department = model["department"]
    resident = model["resident"] or {}
    return ComplaintView(
        complaint_id=model["complaint_id"],
        receipt_number=model["receipt_number"],
        state=model["state"],
        department=DepartmentView(code=department, name=model["department_name"])
        if department
        else None,
        handler=_handler(model["handler"]),
        due_at=model["due_at"],
        overdue=bool(model.get("overdue")),
        filed_at=model["filed_at"],
        title=model["title"],
        timeline=[
            TimelineEntry(
                sequence=entry["sequence"],
                state=entry["state"],
                from_state=entry["from_state"],
                trigger=entry["trigger"],
                occurred_at=entry["occurred_at"],
                department=entry["department"],
                department_name=entry["department_name"],
                handler=_handler(entry["handler"]),
                note=entry["note"],
                due_at=entry["due_at"],
                actor=entry["actor"],
            )
            for entry in model["timeline"]
        ],
        notifications=[
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
        rejections=[
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
        resident=ResidentView(name=mask_name(resident.get("name"))),
    )


def _handler(handler: dict[str, str] | None) -> HandlerView | None:
    if handler is None:
        return None
    return HandlerView(name=handler["name"], office_phone=handler["office_phone"])
