"""Commands from department systems: imperative, one model per action.

The ``action`` field is the discriminator, so ``{"action": "resolve", ...}`` parses to
``ResolveComplaint`` and an unknown action is a validation error naming the field.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from schemas.common import Text, WireModel
from schemas.events import new_event_id, utcnow


class DepartmentAction(StrEnum):
    START_SITE_CHECK = "start_site_check"
    START_REVIEW = "start_review"
    RESOLVE = "resolve"


class _Command(WireModel):
    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=100)
    event_type: Literal["complaint.command"] = "complaint.command"
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    complaint_id: Annotated[Text, Field(min_length=1, max_length=64)]
    actor: Annotated[Text, Field(min_length=1, max_length=64)] = Field(
        default="department", description="Who issues it: a department code or a staff id."
    )
    note: Annotated[Text, Field(max_length=2000)] | None = None


class StartSiteCheck(_Command):
    action: Literal[DepartmentAction.START_SITE_CHECK] = DepartmentAction.START_SITE_CHECK


class StartReview(_Command):
    action: Literal[DepartmentAction.START_REVIEW] = DepartmentAction.START_REVIEW


class ResolveComplaint(_Command):
    action: Literal[DepartmentAction.RESOLVE] = DepartmentAction.RESOLVE


ComplaintCommand = Annotated[
    StartSiteCheck | StartReview | ResolveComplaint, Field(discriminator="action")
]
COMMAND_ADAPTER: TypeAdapter[StartSiteCheck | StartReview | ResolveComplaint] = TypeAdapter(
    ComplaintCommand
)


__all__ = [
    "COMMAND_ADAPTER",
    "ComplaintCommand",
    "DepartmentAction",
    "ResolveComplaint",
    "StartReview",
    "StartSiteCheck",
    "utcnow",
]
