"""The shapes that leave tracker, each validated from a read model's attributes.

A view names the fields it shows and nothing else: built from a whole read model it
still carries only those, and the store fetches exactly those fields for lists (see
``stored_fields`` in ``tracker.store``), so what a list "never holds" is what its view
does not declare. Only :class:`DepartmentComplaintView` declares the resident's contact;
the resident's own view masks the name, and notification recipients are masked for all.
"""

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Generic, TypedDict, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from schemas import ComplaintState
from schemas.common import PHONE_PATTERN, ChatTurn, mask_name, mask_phone
from schemas.events import Correction, Outcome, Rating
from schemas.pii import mask_text

_PHONE = re.compile(PHONE_PATTERN)
_EMAIL = re.compile(r"^([^@\s])[^@\s]*(@[^@\s]+)$")
EXCERPT_CHARS = 160

Item = TypeVar("Item", bound=BaseModel)


def mask_recipient(recipient: str) -> str:
    """A phone number or e-mail address shown the way a public page may show it."""
    if _PHONE.match(recipient):
        return mask_phone(recipient) or ""
    if email := _EMAIL.match(recipient):
        return f"{email.group(1)}***{email.group(2)}"
    return recipient


def excerpt(body: str | None) -> str:
    """The start of what the resident wrote, personal data in it masked (before the cut, so
    a number cut in two is still masked whole)."""
    text = mask_text(" ".join((body or "").split()))
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _unknown_if_none(view: type[BaseModel]) -> Callable[[Any], Any]:
    """Before the filing arrives a read model has no resident: every field unknown."""
    return lambda value: dict.fromkeys(view.model_fields) if value is None else value


DepartmentName = SkipJsonSchema[str | None]
"""A read model keeps the department's code and name side by side (the queue and its
index filter on the code); a view reads the name into ``department`` and does not show
it again on its own."""


class DepartmentView(BaseModel):
    code: str
    name: str | None = None


class _NestsDepartment(BaseModel):
    @field_validator("department", mode="before", check_fields=False)
    @classmethod
    def _nest(cls, code: object, info: ValidationInfo) -> object:
        if isinstance(code, str):
            name = info.data.get("department_name")
            return DepartmentView(code=code, name=name) if code else None
        return code


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
    correction: Correction | None = Field(
        default=None, description="On a correction (정정): which fields, the new 행정동."
    )
    rating: Rating | None = Field(default=None, description="On a rating (만족도).")


class PhotoView(BaseModel):
    """A photo of the complaint: intake serves it at ``/v1/photos/{photo_id}`` (and
    ``/thumbnail``) to the resident's tracking token and the responsible department's key."""

    photo_id: str
    content_type: str
    size: int = Field(description="Bytes of the stored photo.")


class NotificationView(BaseModel):
    channel: str
    recipient: Annotated[str, AfterValidator(mask_recipient)] = Field(
        description="Phone numbers and e-mail addresses are masked."
    )
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
    name: Annotated[str | None, AfterValidator(mask_name)] = Field(
        description="Masked: 홍길동 → 홍*동."
    )


class ResidentContact(BaseModel):
    """Who filed, for the responsible department only."""

    name: str | None
    phone: str | None
    email: str | None
    address: str | None


class _Complaint(_NestsDepartment):
    complaint_id: str
    receipt_number: str
    state: ComplaintState | None = Field(
        description="Null until routing has recorded the complaint's first transition."
    )
    department_name: DepartmentName = Field(default=None, exclude=True, repr=False)
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
    photos: list[PhotoView] = Field(
        default=[],
        description="Attached at filing, then added by corrections (사진 추가), once each.",
    )


class ComplaintView(_Complaint):
    """A complaint as its resident sees it."""

    dong: str | None = Field(default=None, description="행정동, as filed or corrected.")
    rating: int | None = Field(default=None, description="The resident's latest rating (1–5).")

    resident: Annotated[ResidentView, BeforeValidator(_unknown_if_none(ResidentView))]


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
    transcript: list[ChatTurn] = Field(
        default=[],
        description="The chat with the chatbot that led to the complaint, oldest first; "
        "empty for other channels.",
    )
    resident: Annotated[ResidentContact, BeforeValidator(_unknown_if_none(ResidentContact))]


class ComplaintSummary(_NestsDepartment):
    """One line of a list: where a complaint stands, without its text or its resident."""

    complaint_id: str
    receipt_number: str | None
    state: ComplaintState | None
    department_name: DepartmentName = Field(default=None, exclude=True, repr=False)
    department: DepartmentView | None
    handler: HandlerView | None
    title: str | None
    filed_at: datetime | None
    updated_at: datetime | None
    due_at: datetime | None
    overdue: bool


class RepeatMark(BaseModel):
    """반복민원: the earlier complaint, for the handler to confirm (``conclude_repeated``)
    or dismiss (``dismiss_repeated``)."""

    complaint_id: str
    receipt_number: str
    similarity: float


class CaseLink(BaseModel):
    """중복민원: the case this complaint was joined to (``unlink`` to handle it alone)."""

    complaint_id: str
    receipt_number: str
    similarity: float
    distance_m: float | None


class QueueItem(ComplaintSummary):
    dong: str | None
    transfer_count: int
    reopen_count: int
    auto_routed: bool | None
    repeated_of: RepeatMark | None = Field(
        default=None, description="반복민원 routing found, until confirmed or dismissed."
    )
    repeated: bool = Field(default=False, description="Concluded as a 반복민원.")
    linked_to: CaseLink | None = Field(
        default=None, description="중복민원: the case it was joined to."
    )


Excerpt = Annotated[str, BeforeValidator(excerpt)]


class SearchHit(QueueItem):
    title: Annotated[str | None, AfterValidator(mask_text)] = Field(
        description="주민등록번호, phone numbers and e-mail addresses are masked."
    )
    service_code: str | None = Field(
        default=None, description="The Open311 service code filed with."
    )
    excerpt: Excerpt = Field(
        validation_alias="body",
        description=f"The body's first {EXCERPT_CHARS} characters; 주민등록번호, phone numbers "
        "and e-mail addresses are masked.",
    )


class StaffComplaintView(SearchHit):
    """Where one complaint stands, for staff: exactly the fields a staff search shows for
    it (no name, phone or address), looked up by id."""


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


class Paging(TypedDict, Generic[Item]):
    items: list[Item]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def page(items: list[Item], total: int, *, limit: int, offset: int) -> Paging[Item]:
    following = offset + len(items)
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": following if following < total and items else None,
    }
