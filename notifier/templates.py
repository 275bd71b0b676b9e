"""What people read, as registered templates filled in from an event.

The words live in ``templates/ko.json``; this module only chooses and fills them. The
format is the AlimTalk one: a ``template_code`` and ``version`` registered with the
provider, and a text with ``#{variable}`` placeholders. A provider accepts a message only
if it is a registered text with its variables filled in, so an entry whose event may
carry a note gets a second registered template (``with_note``) instead of an optional
section, and a message with a variable missing is refused rather than sent half-filled.

The catalogue has four parts, looked up in this order for a resident:

- ``triggers``: the resident's message for a move that says more than the state it lands
  in (이송, 기간 연장, 담당자 변경, 재민원, 보완 제출) — internal moves keep the state, so
  without these the resident would read the same step twice;
- ``templates``: one per lifecycle state;
- ``staff``: the handler's message, by trigger (a complaint assigned, reassigned, reopened…);
- ``alerts``: by deadline alert kind (supervisor and handler; the 30-day progress notice is
  the resident's).

A note marked ``note_optional`` may be left out where space is dear (an SMS); every other
note is part of what the reader must be told, and is shortened only as a last resort to
fit a channel's hard limit — by whole characters, ending in "…".

Texts are versioned like the provider's registry: ``templates/approved.json`` records the
SHA-256 of every (code, version) approved, and a test fails when a text changes without a
new version.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas import ComplaintDeadlineAlert, ComplaintState, ComplaintStatusChanged
from schemas.events import AlertKind
from services.errors import PermanentError

CATALOGUE_PATH = Path(__file__).with_name("templates") / "ko.json"
APPROVED_PATH = Path(__file__).with_name("templates") / "approved.json"
SEOUL = ZoneInfo("Asia/Seoul")
ELLIPSIS = "…"

PLACEHOLDER = re.compile(r"#\{([a-z_]+)\}")

VARIABLES = frozenset(
    {
        "receipt_number",
        "department_name",
        "department_josa",
        "handler_name",
        "handler_phone",
        "due_date",
        "note",
    }
)
"""Everything :func:`variables_for` can fill; a template naming anything else fails to load."""


class TemplateError(PermanentError):
    """The message cannot be made from this template and event: no channel can help."""


def placeholders(text: str) -> frozenset[str]:
    return frozenset(PLACEHOLDER.findall(text))


def cp949_length(text: str) -> int:
    """Bytes in the encoding Korean SMS counts in (KS X 1001 / CP949: a Hangul syllable is 2)."""
    return len(text.encode("cp949", errors="replace"))


class Template(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    template_code: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
    version: int = Field(ge=1)
    text: str = Field(min_length=1, max_length=1000)
    note_optional: bool = Field(
        default=False,
        description="The note may be dropped to fit an SMS; otherwise it must be sent.",
    )

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
            raise TemplateError(
                f"template {self.template_code} v{self.version} "
                f"is missing variable(s): {', '.join(missing)}"
            )
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], self.text)

    def fit(
        self, values: Mapping[str, str], *, limit: int, measure: Callable[[str], int] = len
    ) -> tuple[str, dict[str, str]]:
        """The text and values within ``limit`` (as ``measure`` counts), shortening only the
        note, by whole characters: a multibyte character is never cut in two."""
        text = self.render(values)
        if measure(text) <= limit:
            return text, dict(values)
        note = values.get("note", "")
        if "note" not in placeholders(self.text) or not note:
            raise TemplateError(
                f"template {self.template_code} v{self.version} is {measure(text)} long, "
                f"over the limit of {limit}"
            )

        def shortened(keep: int) -> dict[str, str]:
            return {**values, "note": note[:keep].rstrip() + ELLIPSIS}

        low, high = 0, len(note) - 1  # the longest prefix that fits, by bisection
        if measure(self.render(shortened(low))) > limit:
            raise TemplateError(
                f"template {self.template_code} v{self.version} does not fit {limit} "
                "even without its note"
            )
        while low < high:
            middle = (low + high + 1) // 2
            if measure(self.render(shortened(middle))) <= limit:
                low = middle
            else:
                high = middle - 1
        fitted = shortened(low)
        return self.render(fitted), fitted


class Entry(Template):
    """A registered template and, when its event may carry a note, the variant with it."""

    with_note: Template | None = None

    @model_validator(mode="after")
    def _note_only_in_variant(self) -> Self:
        if "note" in placeholders(self.text):
            raise ValueError("#{note} belongs in with_note; the base template is sent without one")
        if self.with_note is not None and "note" not in placeholders(self.with_note.text):
            raise ValueError(f"with_note of {self.template_code} does not use #{{note}}")
        return self

    def registered(self) -> list[Template]:
        return [self, *([self.with_note] if self.with_note else [])]


@dataclass(frozen=True)
class Content:
    """One message's words: the template chosen, its values, and how to shorten it."""

    template: Template
    values: Mapping[str, str]
    subject: str
    short: Template | None = None
    """The same message without its optional note, for a channel that pays by length."""

    @property
    def text(self) -> str:
        return self.template.render(self.values)

    @property
    def short_text(self) -> str | None:
        return self.short.render(self.values) if self.short is not None else None

    def check(self) -> None:
        """Raise TemplateError before anything is sent if a variable is missing."""
        self.template.render(self.values)


class Catalogue(BaseModel):
    """Every registered message: one per reachable state, and the other audiences'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    locale: str
    version: int = Field(ge=1)
    subject: str = Field(min_length=1, description="E-mail subject and LMS title.")
    templates: dict[ComplaintState, Entry]
    triggers: dict[str, Entry] = Field(default_factory=dict)
    staff: dict[str, Entry] = Field(default_factory=dict)
    alerts: dict[AlertKind, Entry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete_and_unique(self) -> Self:
        if missing := [s.value for s in ComplaintState if s not in self.templates]:
            raise ValueError(f"no template for state(s): {', '.join(missing)}")
        if missing_alerts := [k.value for k in AlertKind if k not in self.alerts]:
            raise ValueError(f"no template for alert(s): {', '.join(missing_alerts)}")
        codes = [t.template_code for t in self.registered()]
        if duplicated := sorted({c for c in codes if codes.count(c) > 1}):
            raise ValueError(f"template code(s) used twice: {', '.join(duplicated)}")
        if cp949_length(self.subject) > 40:
            raise ValueError("subject is over the 40 bytes an LMS title may have")
        return self

    @classmethod
    def load(cls, path: Path = CATALOGUE_PATH) -> Self:
        return cls.model_validate_json(path.read_bytes())

    def registered(self) -> list[Template]:
        """Every template a provider must have approved."""
        entries = [
            *self.templates.values(),
            *self.triggers.values(),
            *self.staff.values(),
            *self.alerts.values(),
        ]
        return [t for entry in entries for t in entry.registered()]

    def template_for(self, state: ComplaintState, values: Mapping[str, str]) -> Template:
        return self.resident_content(state, None, values).template

    def resident_content(
        self, state: ComplaintState, trigger: str | None, values: Mapping[str, str]
    ) -> Content:
        entry = self.triggers.get(trigger or "") or self.templates[state]
        return self._content(entry, values)

    def staff_content(self, trigger: str, values: Mapping[str, str]) -> Content | None:
        entry = self.staff.get(trigger)
        return self._content(entry, values) if entry is not None else None

    def alert_content(self, kind: AlertKind, values: Mapping[str, str]) -> Content:
        return self._content(self.alerts[kind], values)

    def _content(self, entry: Entry, values: Mapping[str, str]) -> Content:
        if entry.with_note is not None and values.get("note"):
            short = entry if entry.with_note.note_optional else None
            return Content(entry.with_note, values, self.subject, short)
        return Content(entry, values, self.subject)


def due_date(moment: datetime) -> str:
    """How a due time reads in a message: Seoul time, to the minute, no words."""
    return moment.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M")


def variables_for(event: ComplaintStatusChanged | ComplaintDeadlineAlert) -> dict[str, str]:
    """The values a template may use; absent or empty ones are left out, never blanked."""
    values = {
        "receipt_number": event.receipt_number,
        "department_name": event.department_name,
        "handler_name": event.handler.name if event.handler else None,
        "handler_phone": event.handler.office_phone if event.handler else None,
        "due_date": due_date(event.due_at) if event.due_at else None,
        "note": event.note if isinstance(event, ComplaintStatusChanged) else None,
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
