"""Commands: imperative, one model per action, discriminated by ``action``.

Department systems send the department actions; the resident's actions (provide_info,
withdraw, reopen, correct, rate) arrive through intake after the tracking token was checked. An
unknown action is a validation error naming the field.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, TypeAdapter, model_validator

from schemas.catalogue import known_dong
from schemas.common import Text, WireModel
from schemas.events import PhotoRef, new_event_id, utcnow

Note = Annotated[Text, Field(min_length=1, max_length=2000)]


class DepartmentAction(StrEnum):
    START_SITE_CHECK = "start_site_check"
    START_REVIEW = "start_review"
    RESOLVE = "resolve"
    TRANSFER = "transfer"
    REQUEST_INFO = "request_info"
    EXTEND = "extend"
    REJECT = "reject"
    REASSIGN = "reassign"
    CLOSE = "close"
    CONCLUDE_REPEATED = "conclude_repeated"
    DISMISS_REPEATED = "dismiss_repeated"
    UNLINK = "unlink"


class ResidentAction(StrEnum):
    PROVIDE_INFO = "provide_info"
    WITHDRAW = "withdraw"
    REOPEN = "reopen"
    CORRECT = "correct"
    RATE = "rate"


RESIDENT = "resident"


class _Command(WireModel):
    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=100)
    event_type: Literal["complaint.command"] = "complaint.command"
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    complaint_id: Annotated[Text, Field(min_length=1, max_length=64)]
    actor: Annotated[Text, Field(min_length=1, max_length=64)] = Field(
        description="The department code acting (set by intake from the API key), or 'resident'."
    )
    note: Annotated[Text, Field(max_length=2000)] | None = None
    signature: Annotated[str, Field(max_length=200)] | None = Field(
        default=None,
        description="Set by intake: '<key id>:<HMAC-SHA256 hex>' over this command's JSON "
        "without this field. routing refuses a command without a valid one when it has keys.",
    )


class StartSiteCheck(_Command):
    action: Literal[DepartmentAction.START_SITE_CHECK] = DepartmentAction.START_SITE_CHECK


class StartReview(_Command):
    action: Literal[DepartmentAction.START_REVIEW] = DepartmentAction.START_REVIEW


class ResolveComplaint(_Command):
    """``note`` is the result the resident reads; the lifecycle refuses a resolve without it."""

    action: Literal[DepartmentAction.RESOLVE] = DepartmentAction.RESOLVE


class TransferComplaint(_Command):
    """이송: to another department, with the reason in ``note``."""

    action: Literal[DepartmentAction.TRANSFER] = DepartmentAction.TRANSFER
    to_department: Annotated[Text, Field(min_length=1, max_length=64)]


class RequestInfo(_Command):
    """보완 요청: the deadline clock stops until the resident answers."""

    action: Literal[DepartmentAction.REQUEST_INFO] = DepartmentAction.REQUEST_INFO


class ExtendDeadline(_Command):
    """기간 연장: a new due time and the reason. A second extension needs the resident's consent."""

    action: Literal[DepartmentAction.EXTEND] = DepartmentAction.EXTEND
    new_due_at: AwareDatetime
    resident_consent: bool = False


class RejectComplaint(_Command):
    """반려/종결: the reason in ``note`` and what the resident can do about it."""

    action: Literal[DepartmentAction.REJECT] = DepartmentAction.REJECT
    remedy: Annotated[Text, Field(max_length=1000)] | None = None


class ReassignHandler(_Command):
    """A new handler: the one named, or the next by the assignment rule."""

    action: Literal[DepartmentAction.REASSIGN] = DepartmentAction.REASSIGN
    handler_id: Annotated[Text, Field(min_length=1, max_length=64)] | None = None


class CloseComplaint(_Command):
    action: Literal[DepartmentAction.CLOSE] = DepartmentAction.CLOSE


class ConcludeRepeated(_Command):
    """반복민원 종결 (민원 처리에 관한 법률 제23조): conclude a complaint routing marked as
    repeating the same resident's concluded one, by referring to the earlier answer.
    Refused unless the mark exists and the earlier complaint is still concluded. The
    event's ``note`` is the earlier answer, which the resident's notice quotes (``note``
    here stands in only when the earlier complaint has no answer recorded)."""

    action: Literal[DepartmentAction.CONCLUDE_REPEATED] = DepartmentAction.CONCLUDE_REPEATED


class DismissRepeated(_Command):
    """The mark was wrong (new facts, a new place): the complaint is handled as new."""

    action: Literal[DepartmentAction.DISMISS_REPEATED] = DepartmentAction.DISMISS_REPEATED


class UnlinkComplaint(_Command):
    """The complaint is not the same problem as the case it was linked to: handled alone."""

    action: Literal[DepartmentAction.UNLINK] = DepartmentAction.UNLINK


class ProvideInfo(_Command):
    action: Literal[ResidentAction.PROVIDE_INFO] = ResidentAction.PROVIDE_INFO


class WithdrawComplaint(_Command):
    action: Literal[ResidentAction.WITHDRAW] = ResidentAction.WITHDRAW


class ReopenComplaint(_Command):
    """재민원: the resident is not satisfied with the result; ``note`` says why."""

    action: Literal[ResidentAction.REOPEN] = ResidentAction.REOPEN


CORRECTABLE_FIELDS = ("address", "dong", "title", "photos")
"""What a correction may change, in the order the lifecycle event lists them (``photos``
adds photos; none is taken away)."""

MAX_CORRECTION_PHOTOS = 10
"""A bound on the wire; intake holds a complaint to the district's own, smaller limit."""

MAX_RATING_COMMENT = 500


class CorrectComplaint(_Command):
    """정정: the resident fixes where (address, 행정동) or the title, or adds photos, before
    the site check starts; at least one. Routing refuses it later (a note to the handler
    then). ``photos`` are set by intake once it attached them to the complaint: the
    uploads' references, never bytes."""

    action: Literal[ResidentAction.CORRECT] = ResidentAction.CORRECT
    address: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    dong: Annotated[Text, Field(min_length=1, max_length=40), AfterValidator(known_dong)] | None = (
        Field(default=None, description="행정동, one of the district's (schemas/data/dongs.json).")
    )
    title: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    photos: Annotated[list[PhotoRef], Field(max_length=MAX_CORRECTION_PHOTOS)] = Field(
        default_factory=list,
        description="Photos to add, already attached to the complaint by intake.",
    )

    @model_validator(mode="after")
    def _something(self) -> "CorrectComplaint":
        if not corrects_something(self):
            raise ValueError("a correction names at least one of address, dong, title, photos")
        return self


def corrects_something(correction: object) -> bool:
    """Whether a correction names at least one field (``photos`` non-empty)."""
    return any(getattr(correction, name, None) for name in CORRECTABLE_FIELDS)


class RateComplaint(_Command):
    """만족도: the resident rates the handling after resolution, once per resolution."""

    action: Literal[ResidentAction.RATE] = ResidentAction.RATE
    rating: int = Field(ge=1, le=5, description="1 (매우 불만족) to 5 (매우 만족).")
    comment: Annotated[Text, Field(max_length=MAX_RATING_COMMENT)] | None = None


AnyCommand = (
    StartSiteCheck
    | StartReview
    | ResolveComplaint
    | TransferComplaint
    | RequestInfo
    | ExtendDeadline
    | RejectComplaint
    | ReassignHandler
    | CloseComplaint
    | ConcludeRepeated
    | DismissRepeated
    | UnlinkComplaint
    | ProvideInfo
    | WithdrawComplaint
    | ReopenComplaint
    | CorrectComplaint
    | RateComplaint
)
ComplaintCommand = Annotated[AnyCommand, Field(discriminator="action")]
COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(ComplaintCommand)

__all__ = [
    "COMMAND_ADAPTER",
    "CORRECTABLE_FIELDS",
    "MAX_CORRECTION_PHOTOS",
    "RESIDENT",
    "AnyCommand",
    "CloseComplaint",
    "ComplaintCommand",
    "ConcludeRepeated",
    "CorrectComplaint",
    "DepartmentAction",
    "DismissRepeated",
    "ExtendDeadline",
    "Note",
    "ProvideInfo",
    "RateComplaint",
    "ReassignHandler",
    "RejectComplaint",
    "ReopenComplaint",
    "RequestInfo",
    "ResidentAction",
    "ResolveComplaint",
    "StartReview",
    "StartSiteCheck",
    "TransferComplaint",
    "UnlinkComplaint",
    "WithdrawComplaint",
    "corrects_something",
]
