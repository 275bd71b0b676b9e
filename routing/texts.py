"""The words people read from routing, kept as data (``routing/data/texts.ko.json``).

The Korean name of every state and the reason for every refusal, each code's English
(for integrators) beside its Korean (for residents and departments), so a district can
reword them without touching code. Which codes exist is code (:class:`RefusalCode`);
a file that misses one, or names a placeholder the code does not fill, fails at load.
"""

import string
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.states import ComplaintState

TEXTS = Path(__file__).parent / "data" / "texts.ko.json"


class RefusalCode(StrEnum):
    """Every reason routing refuses a command for: the ``code`` of a CommandRejected."""

    # the lifecycle: no such trigger, not from this state, a guard failed
    UNKNOWN_ACTION = "unknown_action"
    ILLEGAL_TRANSITION = "illegal_transition"
    RESULT_REQUIRED = "result_required"
    REASON_REQUIRED = "reason_required"
    UNKNOWN_DEPARTMENT = "unknown_department"
    SAME_DEPARTMENT = "same_department"
    DUE_NOT_LATER = "due_not_later"
    EXTENSION_TOO_LONG = "extension_too_long"
    CONSENT_REQUIRED = "consent_required"
    NOT_MARKED_REPEATED = "not_marked_repeated"
    EARLIER_NOT_CONCLUDED = "earlier_not_concluded"
    NOT_LINKED = "not_linked"
    CORRECTION_CLOSED = "correction_closed"
    NOTHING_TO_CORRECT = "nothing_to_correct"
    NOT_RESOLVED = "not_resolved"
    ALREADY_RATED = "already_rated"
    # the handlers: who may act, on what
    UNKNOWN_COMPLAINT = "unknown_complaint"
    NOT_RESPONSIBLE = "not_responsible"
    RESIDENT_ONLY = "resident_only"
    ROUTING_ONLY = "routing_only"
    UNKNOWN_HANDLER = "unknown_handler"


PLACEHOLDERS: Final[dict[RefusalCode, frozenset[str]]] = {
    RefusalCode.UNKNOWN_ACTION: frozenset({"action"}),
    RefusalCode.ILLEGAL_TRANSITION: frozenset({"action", "state", "state_ko"}),
}
"""What each refusal's sentences may mention (``str.format`` fields); the rest are fixed."""


@dataclass(frozen=True)
class Refusal(Exception):
    """A command routing does not allow. ``code`` is for machines, reasons for people."""

    code: RefusalCode
    reason: str
    reason_ko: str

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class RefusalText(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(min_length=1)
    reason_ko: str = Field(min_length=1)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


class Texts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    states: dict[ComplaintState, str]
    refusals: dict[RefusalCode, RefusalText]

    @model_validator(mode="after")
    def _complete(self) -> Self:
        unnamed = [s.value for s in ComplaintState if not self.states.get(s, "").strip()]
        if unnamed:
            raise ValueError(f"states without a Korean name: {unnamed}")
        missing = [c.value for c in RefusalCode if c not in self.refusals]
        if missing:
            raise ValueError(f"refusal codes without text: {missing}")
        for code, text in self.refusals.items():
            allowed = PLACEHOLDERS.get(code, frozenset())
            for template in (text.reason, text.reason_ko):
                unknown = _fields(template) - allowed
                if unknown:
                    raise ValueError(
                        f"{code}: {template!r} names {sorted(unknown)}; "
                        f"it may use {sorted(allowed) or 'none'}"
                    )
        return self

    @classmethod
    def load(cls, path: Path = TEXTS) -> "Texts":
        return cls.model_validate_json(path.read_bytes())

    def refusal(self, code: RefusalCode, **fields: str) -> Refusal:
        """The refusal with its sentences filled in, ready to raise."""
        text = self.refusals[code]
        return Refusal(code, text.reason.format(**fields), text.reason_ko.format(**fields))


@cache
def shipped() -> Texts:
    """The texts as shipped, read once per process (the docs and tests use them)."""
    return Texts.load()
