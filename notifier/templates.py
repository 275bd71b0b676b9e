"""What people read, as registered templates filled in from an event.

The words live in ``templates/ko.json``; this module only chooses and fills them. The
format is the AlimTalk one: a ``template_code`` and ``version`` registered with the
provider, and a text with ``#{variable}`` placeholders. A provider accepts a message only
if it is a registered text with its variables filled in, so an entry whose event may
carry a note gets a second registered template (``with_note``) instead of an optional
section, and a message with a variable missing is refused rather than sent half-filled.

The catalogue has five parts, looked up in this order for a resident:

- ``general_desk``: by trigger, for a complaint the classifier could not place and sent
  to the general desk (the event's ``auto_routed`` is false): the resident is told the
  complaint is being reviewed to find its department, not the desk's own name (민원여권과
  reads as the passport section); the transfer that follows says where it went;
- ``triggers``: the resident's message for a move that says more than the state it lands
  in (이송, 기간 연장, 담당자 변경, 재민원, 보완 제출) — internal moves keep the state, so
  without these the resident would read the same step twice;
- ``templates``: one per lifecycle state;
- ``staff``: the handler's message, by trigger (a complaint assigned, reassigned, reopened…);
- ``alerts``: by deadline alert kind (supervisor and handler; the 30-day progress notice is
  the resident's).

Every message names its receipt number; every one a resident reads also carries the
tracking link (``#{tracking_url}``). Who the messages are from and where the link points
are settings (:class:`Letterhead`), so the words stay the district's to edit.

A rejection may carry a remedy (what the resident can do about it); an entry with a
``with_remedy`` variant says it when the event has one.

A note marked ``note_optional`` may be left out where space is dear (an SMS); every other
note is part of what the reader must be told, and is shortened only as a last resort to
fit a channel's hard limit — by whole characters, ending in "…".

Texts are versioned like the provider's registry: ``templates/approved.json`` records the
SHA-256 of every (code, version) approved, and a test fails when a text changes without a
new version.
"""

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self
from urllib.parse import quote
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas import ComplaintDeadlineAlert, ComplaintState, ComplaintStatusChanged
from schemas.commands import CORRECTABLE_FIELDS
from schemas.events import AlertKind
from services.errors import PermanentError

CATALOGUE_PATH = Path(__file__).with_name("templates") / "ko.json"
APPROVED_PATH = Path(__file__).with_name("templates") / "approved.json"
SEOUL = ZoneInfo("Asia/Seoul")
ELLIPSIS = "…"
SUBJECT_BYTES = 40

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
        "remedy",
        "sender_name",
        "tracking_url",
        "repeated_receipt_number",
        "corrected_fields",
        "code",
        "minutes",
    }
)
"""Everything :func:`variables_for` can fill; a template naming anything else fails to load."""


class TemplateError(PermanentError):
    """The message cannot be made from this template and event: no channel can help."""


def placeholders(text: str) -> frozenset[str]:
    return frozenset(PLACEHOLDER.findall(text))


TRACKING_FIELDS = frozenset({"complaint_id", "receipt_number"})
"""What a tracking link may name: never the tracking token."""


def check_tracking_url(url: str) -> str:
    """A tracking link pattern names the complaint by ``{complaint_id}`` or
    ``{receipt_number}`` and nothing else, so a typo fails at start-up."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(url) if name is not None}
    except ValueError as exc:
        raise ValueError(f"is not a link pattern: {exc}") from None
    if unknown := fields - TRACKING_FIELDS:
        names = ", ".join(sorted(unknown))
        raise ValueError(f"may name only {{complaint_id}} or {{receipt_number}}, not {names}")
    if not fields:
        raise ValueError("must name the complaint: {complaint_id} or {receipt_number}")
    return url


@dataclass(frozen=True)
class Letterhead:
    """The part of every message that comes from the settings: who sends it (the district
    office) and where a resident follows the complaint.

    The link names the complaint, never its tracking token: a message is kept by
    providers, shown on a locked phone's screen and forwarded, and a token in a URL stays
    in browser history and proxy logs. The page it opens asks for the token (or finds
    the resident's own cookie) before it shows anything.
    """

    sender_name: str
    tracking_url: str
    """A pattern with ``{complaint_id}`` and/or ``{receipt_number}``."""

    def link(self, complaint_id: str, receipt_number: str) -> str:
        return self.tracking_url.format(
            complaint_id=quote(complaint_id, safe=""),
            receipt_number=quote(receipt_number, safe=""),
        )


class DateWords(BaseModel):
    """How a due time reads in a message, as the catalogue words it: Seoul time, the
    year only when it is not the year of the event, minutes only when not on the hour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: str = Field(description="{month}, {day} and {weekday}, e.g. 12월 10일(목)")
    day_with_year: str = Field(description="the same with {year}")
    hour: str = Field(description="{hour} (0-23), e.g. 18시")
    hour_and_minute: str = Field(description="{hour} and {minute}, e.g. 18시 30분")
    weekdays: tuple[str, str, str, str, str, str, str] = Field(description="Monday first")
    joined: str = Field(description="{day} and {time}")

    @model_validator(mode="after")
    def _fillable(self) -> Self:
        """A wrong name in a pattern fails at start-up, not on every message."""
        try:
            self.render(
                datetime(2026, 12, 10, 9, 30, tzinfo=UTC), since=datetime(2025, 1, 1, tzinfo=UTC)
            )
            self.render(datetime(2026, 12, 10, 9, 0, tzinfo=UTC))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"a due date pattern names an unknown field: {exc}") from None
        return self

    def render(self, moment: datetime, *, since: datetime | None = None) -> str:
        local = moment.astimezone(SEOUL)
        same_year = since is None or since.astimezone(SEOUL).year == local.year
        day = (self.day if same_year else self.day_with_year).format(
            year=local.year,
            month=local.month,
            day=local.day,
            weekday=self.weekdays[local.weekday()],
        )
        time = (self.hour_and_minute if local.minute else self.hour).format(
            hour=local.hour, minute=local.minute
        )
        return self.joined.format(day=day, time=time)


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
    """A registered template and, when its event may carry a note, the variant with it
    (and, for a rejection, the variant with the note and the remedy)."""

    with_note: Template | None = None
    with_remedy: Template | None = None

    @model_validator(mode="after")
    def _note_only_in_variant(self) -> Self:
        if placeholders(self.text) & {"note", "remedy"}:
            raise ValueError(
                "#{note} and #{remedy} belong in with_note and with_remedy; "
                "the base template is sent without them"
            )
        if self.with_note is not None:
            used = placeholders(self.with_note.text)
            if "note" not in used or "remedy" in used:
                raise ValueError(
                    f"with_note of {self.template_code} uses #{{note}}, not #{{remedy}}"
                )
        if self.with_remedy is not None:
            if self.with_note is None:
                raise ValueError(f"with_remedy of {self.template_code} needs a with_note beside it")
            if not {"note", "remedy"} <= placeholders(self.with_remedy.text):
                raise ValueError(
                    f"with_remedy of {self.template_code} uses #{{note}} and #{{remedy}}"
                )
        return self

    def registered(self) -> list[Template]:
        return [self, *(t for t in (self.with_note, self.with_remedy) if t is not None)]


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
    subject: str = Field(
        min_length=1, description="E-mail subject and LMS title; may use #{sender_name}."
    )
    due_date: DateWords
    templates: dict[ComplaintState, Entry]
    general_desk: dict[str, Entry] = Field(default_factory=dict)
    triggers: dict[str, Entry] = Field(default_factory=dict)
    staff: dict[str, Entry] = Field(default_factory=dict)
    alerts: dict[AlertKind, Entry] = Field(default_factory=dict)
    field_names: dict[str, str] = Field(
        default_factory=dict,
        description="How a resident's correction names each field it changed (정정 항목).",
    )
    contact_code: Entry | None = Field(
        default=None,
        description="The one-time code that confirms a web filing's phone "
        "(#{code}, #{minutes}): sent at once, never with a link.",
    )
    recovery_code: Entry | None = Field(
        default=None,
        description="The one-time code with which a resident finds their complaints on "
        "another device (#{code}, #{minutes}): sent at once, never with a link.",
    )

    @model_validator(mode="after")
    def _complete_and_unique(self) -> Self:
        if unnamed := [f for f in CORRECTABLE_FIELDS if not self.field_names.get(f)]:
            raise ValueError(f"no field name for correctable field(s): {', '.join(unnamed)}")
        if missing := [s.value for s in ComplaintState if s not in self.templates]:
            raise ValueError(f"no template for state(s): {', '.join(missing)}")
        if missing_alerts := [k.value for k in AlertKind if k not in self.alerts]:
            raise ValueError(f"no template for alert(s): {', '.join(missing_alerts)}")
        codes = [t.template_code for t in self.registered()]
        if duplicated := sorted({c for c in codes if codes.count(c) > 1}):
            raise ValueError(f"template code(s) used twice: {', '.join(duplicated)}")
        if unknown := placeholders(self.subject) - {"sender_name"}:
            raise ValueError(f"the subject may use only #{{sender_name}}, not {sorted(unknown)}")
        if cp949_length(self.subject) > SUBJECT_BYTES:
            raise ValueError("subject is over the 40 bytes an LMS title may have")
        if untracked := sorted(
            t.template_code
            for entry in self.residents()
            for t in entry.registered()
            if "tracking_url" not in placeholders(t.text)
        ):
            raise ValueError(
                "a resident's message carries the tracking link: #{tracking_url} is missing "
                f"from {', '.join(untracked)}"
            )
        return self

    @classmethod
    def load(cls, path: Path = CATALOGUE_PATH) -> Self:
        return cls.model_validate_json(path.read_bytes())

    def registered(self) -> list[Template]:
        """Every template a provider must have approved."""
        entries = [
            *self.templates.values(),
            *self.general_desk.values(),
            *self.triggers.values(),
            *self.staff.values(),
            *self.alerts.values(),
            *((self.contact_code,) if self.contact_code is not None else ()),
            *((self.recovery_code,) if self.recovery_code is not None else ()),
        ]
        return [t for entry in entries for t in entry.registered()]

    def residents(self) -> list[Entry]:
        """The entries a resident reads."""
        return [
            *self.templates.values(),
            *self.general_desk.values(),
            *self.triggers.values(),
            self.alerts[AlertKind.PROGRESS_NOTICE],
        ]

    def values(
        self, event: ComplaintStatusChanged | ComplaintDeadlineAlert, letterhead: Letterhead
    ) -> dict[str, str]:
        values = variables_for(event, letterhead, self.due_date)
        if isinstance(event, ComplaintStatusChanged) and event.correction is not None:
            names = (self.field_names[f] for f in event.correction.fields)
            values["corrected_fields"] = ", ".join(names)
        return values

    def subject_for(self, values: Mapping[str, str]) -> str:
        """The subject with the sender's name, within what an LMS title may hold."""
        if "sender_name" in placeholders(self.subject) and not values.get("sender_name"):
            raise TemplateError("the subject is missing variable(s): sender_name")
        subject = PLACEHOLDER.sub(lambda m: values[m.group(1)], self.subject)
        if cp949_length(subject) > SUBJECT_BYTES:
            raise TemplateError(f"the subject is over the {SUBJECT_BYTES} bytes of an LMS title")
        return subject

    def template_for(self, state: ComplaintState, values: Mapping[str, str]) -> Template:
        return self.resident_content(state, None, values).template

    def resident_content(
        self,
        state: ComplaintState,
        trigger: str | None,
        values: Mapping[str, str],
        *,
        general_desk: bool = False,
    ) -> Content:
        """The resident's words for a move: the general desk's when the complaint went
        there for want of a confident department, else the trigger's, else the state's."""
        entry = (
            (self.general_desk.get(trigger or "") if general_desk else None)
            or self.triggers.get(trigger or "")
            or self.templates[state]
        )
        return self._content(entry, values)

    def staff_content(self, trigger: str, values: Mapping[str, str]) -> Content | None:
        entry = self.staff.get(trigger)
        return self._content(entry, values) if entry is not None else None

    def alert_content(self, kind: AlertKind, values: Mapping[str, str]) -> Content:
        return self._content(self.alerts[kind], values)

    def code_content(self, values: Mapping[str, str], *, recovery: bool = False) -> Content:
        """The contact code's words (or the recovery code's); a catalogue without them
        cannot send such codes."""
        entry = self.recovery_code if recovery else self.contact_code
        if entry is None:
            name = "recovery_code" if recovery else "contact_code"
            raise TemplateError(f"the catalogue has no {name} template")
        return self._content(entry, values)

    def _content(self, entry: Entry, values: Mapping[str, str]) -> Content:
        subject = self.subject_for(values)
        if entry.with_note is not None and values.get("note"):
            if entry.with_remedy is not None and values.get("remedy"):
                return Content(entry.with_remedy, values, subject)
            short = entry if entry.with_note.note_optional else None
            return Content(entry.with_note, values, subject, short)
        return Content(entry, values, subject)


def variables_for(
    event: ComplaintStatusChanged | ComplaintDeadlineAlert,
    letterhead: Letterhead,
    dates: DateWords,
) -> dict[str, str]:
    """The values a template may use; absent or empty ones are left out, never blanked."""
    changed = event if isinstance(event, ComplaintStatusChanged) else None
    values = {
        "receipt_number": event.receipt_number,
        "department_name": event.department_name,
        "handler_name": event.handler.name if event.handler else None,
        "handler_phone": event.handler.office_phone if event.handler else None,
        "due_date": dates.render(event.due_at, since=event.occurred_at) if event.due_at else None,
        "note": changed.note if changed else None,
        "remedy": changed.remedy if changed else None,
        "sender_name": letterhead.sender_name,
        "tracking_url": letterhead.link(event.complaint_id, event.receipt_number),
        "repeated_receipt_number": (
            changed.repeated_of.receipt_number if changed and changed.repeated_of else None
        ),
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
