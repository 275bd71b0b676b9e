"""intake's HTTP contract: what channels, department systems and residents send and get back.

These shapes are what integrators code against through the OpenAPI document, as
``schemas/`` is for Kafka; the routes that use them are in ``intake/handlers.py``.
"""

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas import DepartmentAction
from schemas.commands import ResidentAction


class FiledResponse(BaseModel):
    complaint_id: str
    receipt_number: str
    tracking_token: str = Field(description="Keep it: it is the only way to follow the complaint.")
    resident_token: str = Field(
        description="Follows all of this resident's complaints; pass it when filing the next one."
    )
    duplicate: bool = Field(description="True when this (channel, channel_ref) was filed before.")


class CommandRequest(BaseModel):
    """A department's command. Which fields an action needs is checked per action."""

    model_config = ConfigDict(extra="forbid")

    action: DepartmentAction
    note: str | None = Field(default=None, max_length=2000, description="Result, reason or remark.")
    to_department: str | None = Field(
        default=None, description="transfer: the receiving department."
    )
    new_due_at: AwareDatetime | None = Field(default=None, description="extend: the new due time.")
    resident_consent: bool | None = Field(default=None, description="extend: consent recorded.")
    remedy: str | None = Field(default=None, max_length=1000, description="reject: the remedy.")
    handler_id: str | None = Field(default=None, description="reassign: a specific handler.")


class ResidentRequest(BaseModel):
    """What a resident may do with their own complaint, proven by the tracking token."""

    model_config = ConfigDict(extra="forbid")

    action: ResidentAction
    token: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)


class CommandAccepted(BaseModel):
    command_id: str
    complaint_id: str
    action: str
