"""What a resident reads, as registered templates filled in from a lifecycle event.

The words live in ``templates/ko.json``; this module only chooses and fills them. The
format is the AlimTalk one: a ``template_code`` and ``version`` registered with the
provider, and a text with ``#{variable}`` placeholders. A provider accepts a message only
if it is a registered text with its variables filled in, so a state whose event may
carry a note gets a second registered template (``with_note``) instead of an optional
section, and a message with a variable missing is refused rather than sent half-filled.
"""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas import ComplaintState, ComplaintStatusChanged
from services.errors import PermanentError

CATALOGUE_PATH = Path(__file__).with_name("templates") / "ko.json"

PLACEHOLDER = re.compile(r"#\{([a-z_]+)\}")

VARIABLES = frozenset(
    {
        "receipt_number",
        "department_name",
        "department_josa",
        "handler_name",
        "handler_phone",
        "note",
    }
)
"""Everything :func:`variables_for` can fill; a template naming anything else fails to load."""


def placeholders(text: str) -> frozenset[str]:
    return frozenset(PLACEHOLDER.findall(text))


class Template(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    template_code: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
    version: int = Field(ge=1)
    text: str = Field(min_length=1)

    @field_validator("text")
    @classmethod
    def _fillable(cls, text: str) -> str:
        """A typo in a placeholder fails at start-up, not on every message."""
        names = placeholders(text)
        if unknown := names - VARIABLES:
            raise ValueError(f"unknown variable(s): {', '.join(sorted(unknown))}")
        if "receipt_number" not in names:
            raise ValueError("every message names its receipt number: #{receipt_number} is missing")
        return text

    def render(self, values: Mapping[str, str]) -> str:
        """Fill every placeholder in one pass, so a value that looks like one stays text."""
        if missing := sorted(n for n in placeholders(self.text) if not values.get(n)):
            raise PermanentError(
                f"template {self.template_code} v{self.version} "
                f"is missing variable(s): {', '.join(missing)}"
            )
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], self.text)


class StateTemplates(Template):
    with_note: Template | None = None

    @model_validator(mode="after")
    def _note_only_in_variant(self) -> Self:
        if "note" in placeholders(self.text):
            raise ValueError("#{note} belongs in with_note; the base template is sent without one")
        if self.with_note is not None and "note" not in placeholders(self.with_note.text):
            raise ValueError(f"with_note of {self.template_code} does not use #{{note}}")
        return self


class Catalogue(BaseModel):
    """One template (and perhaps its note variant) for every state a complaint can reach."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    locale: str
    templates: dict[ComplaintState, StateTemplates]

    @model_validator(mode="after")
    def _every_state(self) -> Self:
        if missing := [s.value for s in ComplaintState if s not in self.templates]:
            raise ValueError(f"no template for state(s): {', '.join(missing)}")
        return self

    @classmethod
    def load(cls, path: Path = CATALOGUE_PATH) -> Self:
        return cls.model_validate_json(path.read_bytes())

    def template_for(self, state: ComplaintState, values: Mapping[str, str]) -> Template:
        entry = self.templates[state]
        if entry.with_note is not None and values.get("note"):
            return entry.with_note
        return entry


def variables_for(event: ComplaintStatusChanged) -> dict[str, str]:
    """The values a template may use; absent or empty ones are left out, never blanked."""
    values = {
        "receipt_number": event.receipt_number,
        "department_name": event.department_name,
        "handler_name": event.handler.name if event.handler else None,
        "handler_phone": event.handler.office_phone if event.handler else None,
        "note": event.note,
    }
    if event.department_name:
        values["department_josa"] = josa_ro(event.department_name)
    return {name: value.strip() for name, value in values.items() if value and value.strip()}


_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_RIEUL = 8  # index of ㄹ among the final consonants
# How digits and Latin letters end when read aloud: True if with a final consonant
# that takes 으로 (영, 삼, 육; 엠, 엔). 일/칠/팔 and 엘/알 end in ㄹ and take 로.
_READ_ALOUD_FINAL = {"0": True, "3": True, "6": True, "m": True, "n": True}
_TRAILING = " \t\r\n)]}>\"'」』〉》.,·"


def josa_ro(word: str) -> str:
    """로 or 으로 after ``word``: 으로 after a final consonant other than ㄹ, 로 otherwise.

    The particle agrees with how the word ends when read aloud, so closing brackets and
    quotes are looked through: 자원순환과(청소)로.
    """
    stripped = word.rstrip(_TRAILING)
    if not stripped:
        return "로"
    last = stripped[-1]
    code = ord(last)
    if _HANGUL_FIRST <= code <= _HANGUL_LAST:
        final = (code - _HANGUL_FIRST) % 28
        return "으로" if final not in (0, _RIEUL) else "로"
    return "으로" if _READ_ALOUD_FINAL.get(last.lower(), False) else "로"
