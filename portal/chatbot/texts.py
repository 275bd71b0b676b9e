"""What the bot says besides the knowledge base's answers, and the words it reads intent
from, as data a district edits (``data/texts.ko.json``)."""

import string
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

TEXTS = Path(__file__).parent / "data" / "texts.ko.json"


def fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class KakaoTexts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    confirm: str = Field(min_length=1, max_length=14, description="Quick reply that files.")
    cancel: str = Field(min_length=1, max_length=14)
    offer: str = Field(min_length=1, max_length=14, description="Quick reply to offer filing.")
    offer_message: str = Field(min_length=1, max_length=100)
    confirm_prompt: str
    filed: str
    filing_failed: str
    cancelled: str
    nothing_pending: str
    too_slow: str
    too_many: str
    phone_prompt: str
    phone_noted: str
    code_prompt: str
    resend_code: str = Field(min_length=1, max_length=14, description="Quick reply: a new code.")
    code_confirmed: str
    code_sent: str
    code_wrong: str
    code_expired: str
    code_locked: str
    code_too_many: str
    code_failed: str


class Texts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    empty: str
    unknown: str
    unknown_with_phone: str
    handoff_complaint: str
    handoff_person: str
    handoff_person_general: str
    answer_owner: str
    person_markers: tuple[str, ...] = Field(min_length=1)
    question_markers: tuple[str, ...] = Field(min_length=1)
    request_markers: tuple[str, ...] = Field(min_length=1)
    kakao: KakaoTexts

    @model_validator(mode="after")
    def _placeholders(self) -> Self:
        allowed = {"department_name", "office_phone", "receipt_number", "phone"}
        for name, value in [*self, *self.kakao]:
            if isinstance(value, str) and (stray := fields_of(value) - allowed):
                raise ValueError(f"{name}: unknown placeholders {sorted(stray)}")
        return self

    @classmethod
    def load(cls, path: Path = TEXTS) -> Self:
        return cls.model_validate_json(path.read_bytes())
