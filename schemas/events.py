"""Events: what happened, in the past tense. Every event names its type and schema version."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, HttpUrl

from schemas.common import Channel, Location, Resident, Text, Transcript, WireModel
from schemas.states import ComplaintState


def new_event_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(WireModel):
    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=100)
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)


JOINS_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
"""A complaint id as intake issues it (a UUID)."""


class Submission(WireModel):
    """What a resident wrote, as a channel hands it over (over HTTP, the body of a filing).
    Only ``channel`` and ``body`` are required.

    ``channel_ref`` is the channel's own id for the submission: submitting the same
    (channel, channel_ref) again returns the complaint already filed.
    """

    channel: Channel
    channel_ref: Annotated[Text, Field(min_length=1, max_length=100)] | None = None
    resident: Resident = Field(default_factory=Resident)
    title: Annotated[Text, Field(max_length=200)] | None = None
    body: Annotated[Text, Field(min_length=1, max_length=4000)]
    service_code: Annotated[Text, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")] | None = None
    location: Location = Field(default_factory=Location)
    attachments: Annotated[list[HttpUrl], Field(max_length=10)] = Field(default_factory=list)
    resident_token: Annotated[Text, Field(min_length=16, max_length=100)] | None = Field(
        default=None,
        description="A returning resident's token from an earlier filing: the new complaint "
        "joins the complaints they already follow, without identifying themselves again.",
    )
    transcript: Transcript = Field(default_factory=list)
    joins: Annotated[str, Field(pattern=JOINS_PATTERN)] | None = Field(
        default=None,
        description="'이미 접수된 민원이 있어요': the id of an open complaint at the same place "
        "(from the tracker's `GET /v1/complaints/similar`) the resident chose to join. "
        "Routing links this complaint to it — the same department, handler and progress — "
        "if it is still an open case; otherwise it is routed as any other.",
    )


class ComplaintSubmitted(Event, Submission):
    """A submission on ``complaint.submissions``: a channel without HTTP hands over what a
    resident wrote. Only ``channel`` and ``body`` are required."""

    event_type: Literal["complaint.submitted"] = "complaint.submitted"


class PhotoRef(WireModel):
    """A photo the resident attached, as intake keeps it (metadata stripped): where to ask
    for it, never its bytes. Served by intake to the resident and the responsible
    department at ``/v1/photos/{photo_id}`` (and ``/thumbnail``)."""

    photo_id: str = Field(min_length=1, max_length=64)
    content_type: str
    size: int = Field(ge=0, description="Bytes of the stored photo.")


class ComplaintFiled(Event):
    """intake accepted a submission and gave it an id, a receipt number and a tracking token.

    Only a hash of the tracking token travels; the token itself goes to the resident once.
    """

    event_type: Literal["complaint.filed"] = "complaint.filed"
    complaint_id: str
    receipt_number: str
    tracking_token_hash: str
    resident_token_hash: str | None = Field(
        default=None, description="SHA-256 of the resident token: one resident's complaints."
    )
    channel: Channel
    channel_ref: str | None = Field(default=None, max_length=100)
    channel_client: str | None = Field(
        default=None,
        max_length=64,
        description="The client app whose credential filed it (an Open311 app's name), set "
        "by intake from the credential, never from what was submitted. An app with a "
        "registered webhook is pushed the complaint's public progress.",
    )
    resident: Resident
    title: str | None = Field(default=None, max_length=200)
    body: str = Field(
        min_length=1,
        max_length=4000,
        description="As the submission allows: a longer one was never filed by intake, and "
        "a record carrying one is dead-lettered rather than tokenised for minutes.",
    )
    service_code: str | None = None
    location: Location
    attachments: list[HttpUrl] = Field(default_factory=list)
    transcript: Transcript = Field(default_factory=list)
    submitted_at: AwareDatetime
    photos: list[PhotoRef] = Field(
        default_factory=list, description="Photos attached at filing: references, no bytes."
    )
    joins: str | None = Field(
        default=None,
        max_length=64,
        description="The open complaint the resident chose to join (see the submission's).",
    )
    contact_unconfirmed: bool = Field(
        default=False,
        description="The resident's phone came from an anonymous filing and is not yet "
        "confirmed: messages to the resident wait for ContactConfirmed (`contact.codes`).",
    )


class HandlerRef(BaseModel):
    """The person responsible. ``office_phone`` is the office number, never a personal one."""

    model_config = WireModel.model_config
    handler_id: str
    name: str
    office_phone: str


class RepeatedOf(BaseModel):
    """반복민원: the earlier, concluded complaint of the same resident this one repeats.

    ``answer`` is the earlier complaint's result as the department wrote it; it is carried
    only when the department confirms the mark (``conclude_repeated``), for the notice."""

    model_config = WireModel.model_config
    complaint_id: str
    receipt_number: str
    similarity: float = Field(ge=0, le=1)
    answer: str | None = None


class LinkedTo(BaseModel):
    """중복민원: the open case of another resident this complaint joins. Only the case's
    ids travel: nothing about the other resident."""

    model_config = WireModel.model_config
    complaint_id: str
    receipt_number: str
    similarity: float = Field(ge=0, le=1)
    distance_m: float | None = Field(
        default=None, description="Between the two locations, when both had coordinates."
    )


class Correction(BaseModel):
    """What a resident's correction (정정) changed: the field names, the 행정동 after it and
    the photos it added (references, as ``ComplaintFiled.photos``). Never the address or
    the title themselves: the lifecycle topic is shared with departments, which read the
    corrected facts from the tracker's department API and fetch a photo from intake with
    the responsible department's key."""

    model_config = WireModel.model_config
    fields: list[Literal["address", "dong", "title", "photos"]] = Field(min_length=1)
    dong: str | None = Field(default=None, description="The 행정동 after the correction.")
    photos: list[PhotoRef] = Field(
        default_factory=list,
        description="The photos this correction added (사진 추가): references, no bytes.",
    )


class Rating(BaseModel):
    """The resident's rating of the handling (만족도): 1–5, the comment masked."""

    model_config = WireModel.model_config
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(
        default=None,
        max_length=1000,
        description="As the resident wrote it (at most 500 characters), phone numbers, "
        "e-mail addresses and 주민등록번호 masked: masking can lengthen it (a@b.kr → a***@b.kr).",
    )


class ComplaintStatusChanged(Event):
    """One state transition of one complaint. ``sequence`` increases by one per complaint.

    Marks are internal transitions (the state stays) on the same topic, in sequence:
    ``mark_repeated`` carries ``repeated_of``, ``link`` carries ``linked_to`` (the
    complaint joined an open case, 중복민원), ``dismiss_repeated`` and ``unlink`` clear
    them, and ``conclude_repeated`` closes the complaint with ``repeated_of`` and the
    earlier answer. A move of a case made for its linked complaints names the case in
    ``case_of``. The resident's ``correct`` carries ``correction`` (followed by a
    ``reassign`` by routing when the new 행정동 is another handler's) and ``rate``
    carries ``rating``; both keep the state.
    """

    event_type: Literal["complaint.status_changed"] = "complaint.status_changed"
    complaint_id: str
    receipt_number: str
    sequence: int = Field(ge=1)
    from_state: ComplaintState | None
    to_state: ComplaintState
    trigger: str
    department: str | None = None
    department_name: str | None = None
    handler: HandlerRef | None = None
    actor: str
    note: str | None = None
    remedy: str | None = Field(default=None, description="On rejection: what the resident can do.")
    due_at: AwareDatetime | None = None
    auto_routed: bool | None = None
    caused_by: str | None = Field(
        default=None, description="event_id of the message that caused it"
    )
    model_version: str | None = Field(
        default=None,
        description="On the assignment a classifier decided: which fitted model decided it "
        "(a fingerprint of its training data, code and library versions).",
    )
    repeated_of: RepeatedOf | None = None
    linked_to: LinkedTo | None = None
    case_of: str | None = Field(
        default=None, description="The case (complaint id) whose move this one follows."
    )
    correction: Correction | None = None
    rating: Rating | None = None


class CommandRejected(Event):
    """routing refused a command; nothing changed. ``code`` is for machines, reasons for people."""

    event_type: Literal["complaint.command_rejected"] = "complaint.command_rejected"
    complaint_id: str
    command_id: str
    action: str
    code: str
    reason: str
    reason_ko: str
    current_state: ComplaintState | None = None


class AlertKind(StrEnum):
    WARNING = "deadline_warning"  # 75% of the legal period used
    BREACH = "deadline_breached"  # past the due time
    PROGRESS_NOTICE = "progress_notice"  # 30 days open: the resident is owed a progress notice


class ComplaintDeadlineAlert(Event):
    """A deadline threshold crossed, once per complaint, threshold and due time.

    Addressed to the handler and the department's supervisor (and, for the progress
    notice, the resident). ``event_id`` is derived from the complaint, the threshold and
    the due time, so a repeated publish is a duplicate downstream.
    """

    event_type: Literal["complaint.deadline_alert"] = "complaint.deadline_alert"
    complaint_id: str
    receipt_number: str
    kind: AlertKind
    state: ComplaintState
    department: str | None = None
    department_name: str | None = None
    handler: HandlerRef | None = None
    supervisor: HandlerRef | None = None
    received_at: AwareDatetime
    due_at: AwareDatetime


class Outcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


class NotificationOutcome(Event):
    """What became of one message to one recipient on one channel."""

    event_type: Literal["notification.outcome"] = "notification.outcome"
    complaint_id: str
    source_event_id: str
    recipient: str
    channel: str
    outcome: Outcome
    template: str
    detail: str | None = None
    attempts: int = 1


class NotificationRetryScheduled(Event):
    """One delivery whose channel failed in a way trying again can help, to be tried again
    no earlier than ``not_before`` (``notification.retry``: the notifier's own retry
    topic, published and consumed by it alone). ``retry`` counts the retries so far; the
    notifier gives up and dead-letters past its configured bound."""

    event_type: Literal["notification.retry_scheduled"] = "notification.retry_scheduled"
    complaint_id: str
    delivery_id: str
    source: Annotated[
        ComplaintStatusChanged | ComplaintDeadlineAlert, Field(discriminator="event_type")
    ]
    recipient: str
    channel: str
    retry: int = Field(ge=0)
    not_before: AwareDatetime
    reason: str


class CodePurpose(StrEnum):
    CONTACT = "contact"
    """Confirm the phone an anonymous filing gave."""
    RECOVERY = "recovery"
    """Find one's complaints on another device (다른 기기에서 내 민원 찾기)."""


class ContactCodeIssued(Event):
    """intake made a one-time code to confirm the phone an anonymous filing gave, or to let
    its resident find the complaint on another device, for the notifier to send at once
    (``contact.codes``: personal data, intake to notifier only)."""

    event_type: Literal["contact.code_issued"] = "contact.code_issued"
    complaint_id: str
    receipt_number: str
    phone: str = Field(min_length=1, max_length=20)
    code: str = Field(pattern=r"^[0-9]{6}$")
    expires_at: AwareDatetime
    purpose: CodePurpose = Field(
        default=CodePurpose.CONTACT,
        description="Which message carries the code: `contact` (confirm the phone of a "
        "filing) or `recovery` (find one's complaints on another device).",
    )


class ContactConfirmed(Event):
    """The resident entered the code: messages held for the complaint's phone may go."""

    event_type: Literal["contact.confirmed"] = "contact.confirmed"
    complaint_id: str


ContactEvent = Annotated[ContactCodeIssued | ContactConfirmed, Field(discriminator="event_type")]
"""What ``contact.codes`` carries."""


SHA256_HEX = r"^[0-9a-f]{64}$"


class ResidentBound(Event):
    """A resident proved, with the code sent to the complaint's phone on file, that the
    complaint is theirs on another device: the complaint is listed (내 민원) and may be acted
    on with that device's resident token too. Only the token's SHA-256 travels."""

    event_type: Literal["resident.bound"] = "resident.bound"
    complaint_id: str
    resident_token_hash: str = Field(
        pattern=SHA256_HEX, description="SHA-256 of the device's resident token."
    )


def bound_event(complaint_id: str, resident_token_hash: str, at: datetime) -> ResidentBound:
    """The same binding always has the same id: a repeat is a duplicate downstream."""
    return ResidentBound(
        event_id=str(
            uuid.uuid5(
                uuid.NAMESPACE_URL, f"sotong:resident-bound:{complaint_id}:{resident_token_hash}"
            )
        ),
        complaint_id=complaint_id,
        resident_token_hash=resident_token_hash,
        occurred_at=at,
    )


class FieldError(BaseModel):
    model_config = WireModel.model_config
    field: str
    reason: str


class DeadLetter(Event):
    """A message that could not be processed: the reason and everything needed to replay it."""

    event_type: Literal["sotong.dead_lettered"] = "sotong.dead_lettered"
    complaint_id: str | None = None
    original_topic: str
    original_partition: int | None = None
    original_offset: int | None = None
    original_key: str | None = None
    original_headers: dict[str, str] = Field(default_factory=dict)
    original_value_b64: str = Field(
        description="The original value, base64; only its first bytes when "
        "`original_truncated`, masked when `original_masked` (the whole original is then "
        "kept in the dead-letter archive)."
    )
    original_size: int | None = Field(default=None, description="Bytes in the original value.")
    original_sha256: str | None = Field(default=None, description="SHA-256 of the original value.")
    original_truncated: bool = False
    original_masked: bool = Field(
        default=False,
        description="The value carried has 주민등록번호, phone numbers and e-mail addresses "
        "masked (JSON rewritten compactly); the original is in the dead-letter archive.",
    )
    consumer: str
    reason: str
    errors: list[FieldError] = Field(default_factory=list)
    retryable: bool
    attempts: int


LifecycleEvent = ComplaintStatusChanged
