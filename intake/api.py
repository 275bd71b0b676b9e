"""intake's HTTP contract: what channels, department systems and residents send and get back.

These shapes are what integrators code against through the OpenAPI document, as
``schemas/`` is for Kafka; the routes that use them are in ``intake/handlers.py``.

A command body is one schema per action (discriminated by ``action``), each requiring
what routing would refuse the command without whatever state the complaint is in: a
result to resolve, a reason to transfer, request information, extend, reject or reopen,
a department that exists to transfer to, a new due time to extend. What depends on the
complaint's state (is it resolved already? is it this department's?) is still decided
by routing, and a refusal appears on ``complaint.rejections`` and in the tracker view.
"""

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    UUID4,
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from intake.photos import PHOTO_ID
from schemas import DepartmentAction
from schemas.catalogue import DepartmentCode, known_dong
from schemas.commands import (
    MAX_CORRECTION_PHOTOS,
    MAX_RATING_COMMENT,
    Note,
    ResidentAction,
    corrects_something,
)
from schemas.common import Text
from schemas.events import Submission
from schemas.states import ComplaintState

ComplaintId = Annotated[
    UUID4,
    WithJsonSchema({"type": "string", "format": "uuid", "description": "A UUID (version 4)."}),
]
"""A complaint id as intake issues it: a UUID4 (any case, canonical in what is published)."""

Remark = Annotated[Text, Field(max_length=2000)] | None


class FilingRequest(Submission):
    """A complaint to file: what the resident wrote and how to reach them. The event
    fields (id, type, version, time) are intake's to set; a body naming them is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    photos: Annotated[list[Annotated[str, Field(pattern=PHOTO_ID)]], Field(max_length=10)] = Field(
        default_factory=list,
        description="Ids answered by `POST /v1/photos`, at most as many as the district "
        "allows per complaint (a setting).",
    )


class CodeSent(BaseModel):
    """What a filing whose phone must be confirmed is told (and a resend answers)."""

    model_config = ConfigDict(frozen=True)

    confirmation_required: bool = Field(
        default=True,
        description="Messages to the phone wait until the code sent to it is entered.",
    )
    code_sent: bool = Field(
        description="The code message was handed to the notifier; false if it could not be "
        "(ask for another at `resend`)."
    )
    expires_at: datetime = Field(description="The code is refused after this time.")
    confirm: str = Field(description="POST the code here, with the tracking or resident token.")
    resend: str = Field(description="POST here for a new code (a few per hour).")


class ConfirmRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(
        pattern=r"^[0-9]{6}$", description="The six digits sent to the phone (인증번호)."
    )


class Confirmed(BaseModel):
    complaint_id: str
    confirmed: bool = True


class FiledResponse(BaseModel):
    complaint_id: str
    receipt_number: str
    tracking_token: str | None = Field(
        default=None,
        description="Keep it: it is the only way to follow the complaint. Given once, to the "
        "filing that made the complaint (never on a duplicate).",
    )
    resident_token: str | None = Field(
        default=None,
        description="Follows all of this resident's complaints; pass it when filing the next "
        "one. Given once, with the tracking token.",
    )
    duplicate: bool = Field(description="True when this (channel, channel_ref) was filed before.")
    contact: CodeSent | None = Field(
        default=None,
        description="Present when the phone must be confirmed: a one-time code was sent to "
        "it, and nothing else is until it is entered.",
    )


class NamedDepartment(BaseModel):
    code: str
    name: str
    source: Literal["service_code", "classifier"] = Field(
        default="service_code",
        description="Where the department came from: the filing's `service_code`, or "
        "routing's classifier, confident enough to route the text without review.",
    )


class OpenCase(BaseModel):
    """An open complaint that looks like the one about to be filed, as anyone may see it:
    what Open311's public GETs show of any request (the receipt number, the department,
    the step, the 행정동, when it was filed, the start of its text masked) — never its
    reporter's name, phone, e-mail or address."""

    complaint_id: str = Field(description="File with `joins` set to it to join this case.")
    receipt_number: str | None = Field(
        description="Its 접수번호 (Open311's `service_notice`); null when the tracker's staff "
        "API could not say."
    )
    state: ComplaintState
    department_name: str | None = Field(description="The department working on it.")
    excerpt: str | None = Field(
        description="The start of its text, 주민등록번호, phone numbers and e-mail addresses "
        "masked; only for services whose requests are public (Open311's `listed`), else null."
    )
    dong: str = Field(description="행정동.")
    filed_at: datetime | None = Field(
        description="When it was filed; null when the tracker's staff API could not say."
    )
    filed_on: date = Field(description="The day it was filed (Korean time).")
    similarity: float = Field(ge=0, le=1, description="How alike the texts are (0–1).")


class SimilarAnswer(BaseModel):
    """'이미 접수된 민원이 있어요': the open cases a filing may be repeating, before it is filed.
    Nothing is filed; file the same body (with `joins` to join one of them) to file it."""

    department: NamedDepartment | None = Field(
        description="The department the filing's `service_code` names or, without a known "
        "one, the department routing's classifier would route the text to without review "
        "(`source`); null when neither says: routing decides after filing, so there is "
        "nothing to look up yet."
    )
    looked_up: bool = Field(description="The tracker was asked; false: see `not_looked_up`.")
    not_looked_up: Literal["no_department", "no_dong", "tracker_unavailable"] | None = Field(
        default=None,
        description="Why no lookup was made: `no_department` (no known `service_code` and "
        "no confident classification), "
        "`no_dong` (no `location.dong`: open cases are found per 행정동), "
        "`tracker_unavailable` (the tracker did not answer; filing still works).",
    )
    items: list[OpenCase] = Field(description="The most alike first; at most 5.")


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    note: Remark = Field(default=None, description="A remark, kept with the transition.")


class StartSiteCheckCommand(_Command):
    """현장 확인: the handler goes to see."""

    action: Literal[DepartmentAction.START_SITE_CHECK]


class StartReviewCommand(_Command):
    """심사: the handler reviews the case."""

    action: Literal[DepartmentAction.START_REVIEW]


class ResolveCommand(_Command):
    """처리 완료: ``note`` is the result the resident reads."""

    action: Literal[DepartmentAction.RESOLVE]
    note: Note = Field(description="The result, as the resident will read it.")


class TransferCommand(_Command):
    """이송: to another department, with the reason."""

    action: Literal[DepartmentAction.TRANSFER]
    note: Note = Field(description="Why the complaint belongs to the other department.")
    to_department: DepartmentCode = Field(
        description="The receiving department: another one than the one responsible now."
    )


class RequestInfoCommand(_Command):
    """보완 요청: the deadline clock stops until the resident answers."""

    action: Literal[DepartmentAction.REQUEST_INFO]
    note: Note = Field(description="What the resident is asked to provide.")


class ExtendCommand(_Command):
    """기간 연장: a later due time. A first extension may at most double the legal period;
    a second needs the resident's consent."""

    action: Literal[DepartmentAction.EXTEND]
    note: Note = Field(description="Why more time is needed.")
    new_due_at: AwareDatetime = Field(description="The new due time, with its offset.")
    resident_consent: bool = Field(
        default=False, description="The resident agreed (needed for a second extension)."
    )


class RejectCommand(_Command):
    """반려: the reason, and what the resident can do about it."""

    action: Literal[DepartmentAction.REJECT]
    note: Note = Field(description="Why the complaint is rejected.")
    remedy: Annotated[Text, Field(max_length=1000)] | None = Field(
        default=None, description="What the resident can do: where to turn, how to appeal."
    )


class ReassignCommand(_Command):
    """Another handler: the one named, or the next by the assignment rule."""

    action: Literal[DepartmentAction.REASSIGN]
    handler_id: Annotated[Text, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="An on-duty handler of the department; left out, routing picks."
    )


class CloseCommand(_Command):
    """종결: a resolved complaint is closed."""

    action: Literal[DepartmentAction.CLOSE]


class ConcludeRepeatedCommand(_Command):
    """반복민원 종결 (민원 처리에 관한 법률 제23조): routing marked the complaint as repeating
    the same resident's concluded one; the resident is told the earlier answer."""

    action: Literal[DepartmentAction.CONCLUDE_REPEATED]


class DismissRepeatedCommand(_Command):
    """Not a 반복민원 after all (new facts, a new place): handled as a new complaint."""

    action: Literal[DepartmentAction.DISMISS_REPEATED]


class UnlinkCommand(_Command):
    """Not the same problem as the case it was linked to (중복민원): handled alone."""

    action: Literal[DepartmentAction.UNLINK]


DepartmentCommand = Annotated[
    StartSiteCheckCommand
    | StartReviewCommand
    | ResolveCommand
    | TransferCommand
    | RequestInfoCommand
    | ExtendCommand
    | RejectCommand
    | ReassignCommand
    | CloseCommand
    | ConcludeRepeatedCommand
    | DismissRepeatedCommand
    | UnlinkCommand,
    Field(discriminator="action"),
]
"""A department's command: one schema per ``action``."""


class _ResidentAction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str = Field(
        min_length=1,
        max_length=200,
        description="The complaint's tracking token, or the resident token of who filed it.",
    )
    note: Remark = None


class ProvideInfoAction(_ResidentAction):
    """The resident answers a 보완 요청; the deadline clock runs again."""

    action: Literal[ResidentAction.PROVIDE_INFO]
    note: Remark = Field(default=None, description="The information asked for.")


class WithdrawAction(_ResidentAction):
    """취하: the resident withdraws the complaint before it is resolved."""

    action: Literal[ResidentAction.WITHDRAW]


class ReopenAction(_ResidentAction):
    """재민원: the resident is not satisfied with the result."""

    action: Literal[ResidentAction.REOPEN]
    note: Note = Field(description="Why the result does not settle it.")


class CorrectAction(_ResidentAction):
    """정정: fix the address, the 행정동 or the title, or add photos, before the site check
    starts (at least one). Later, routing refuses it (``correction_closed``): send a note
    instead."""

    action: Literal[ResidentAction.CORRECT]
    address: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    dong: Annotated[Text, Field(min_length=1, max_length=40), AfterValidator(known_dong)] | None = (
        Field(default=None, description="행정동: one of the district's (GET the portal's list).")
    )
    title: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    photos: Annotated[
        list[Annotated[str, Field(pattern=PHOTO_ID)]], Field(max_length=MAX_CORRECTION_PHOTOS)
    ] = Field(
        default_factory=list,
        description="Photos to add (사진 추가): ids answered by `POST /v1/photos`, not yet "
        "attached to any other complaint; with those attached already, at most as many as "
        "the district allows per complaint (a setting).",
    )

    @model_validator(mode="after")
    def _something(self) -> "CorrectAction":
        if not corrects_something(self):
            raise ValueError("a correction names at least one of address, dong, title, photos")
        return self


class RateAction(_ResidentAction):
    """만족도: after resolution, once per resolution, 1–5 and an optional comment."""

    action: Literal[ResidentAction.RATE]
    rating: int = Field(ge=1, le=5, description="1 (매우 불만족) to 5 (매우 만족).")
    comment: Annotated[Text, Field(max_length=MAX_RATING_COMMENT)] | None = None


ResidentRequest = Annotated[
    ProvideInfoAction | WithdrawAction | ReopenAction | CorrectAction | RateAction,
    Field(discriminator="action"),
]
"""What a resident may do with their own complaint, proven by its tracking token or the
resident token of who filed it."""


class CommandAccepted(BaseModel):
    command_id: str
    complaint_id: str
    action: str
