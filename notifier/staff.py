"""The staff contact directory: each handler's and supervisor's work mobile and e-mail,
by ``handler_id``.

Events name staff by ``HandlerRef``, whose ``office_phone`` is a landline: no AlimTalk or
SMS provider delivers to it. The notifier reaches staff through this directory instead
— an SMS to the work mobile, e-mail after it — for assignment, deadline warning and
breach notices. The contacts are personal data, kept like residents': loaded from a
file or a mounted secret (``SOTONG_NOTIFIER_STAFF_DIRECTORY_PATH``), never put in
events, logs, metric labels or views, and left out of ``repr``. A handler the directory
does not know is not told at a landline: the notice is skipped with the reason.

The file (JSON, UTF-8)::

    {"staff": {"roads-1": {"mobile": "010-1234-5678", "email": "kim@district.go.kr"}}}

Each entry needs a mobile or an e-mail (or both). Anything else is refused at start-up
with the entry and field named.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.errors import describe

MOBILE = re.compile(r"^01[016789]-?\d{3,4}-?\d{4}$")
"""A Korean mobile number (010, 011, 016–019): the only kind a text message reaches."""
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class StaffContact:
    """One person's work contacts. Out of ``repr``: personal data."""

    handler_id: str
    mobile: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mobile: Annotated[str, Field(pattern=MOBILE.pattern)] | None = None
    email: Annotated[str, Field(pattern=EMAIL.pattern, max_length=254)] | None = None

    @model_validator(mode="after")
    def _reachable(self) -> "_Entry":
        if not self.mobile and not self.email:
            raise ValueError("needs a mobile or an email")
        return self


class _File(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    staff: dict[Annotated[str, Field(min_length=1, max_length=100)], _Entry]


class StaffDirectoryError(ValueError):
    """The directory file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class StaffDirectory:
    contacts: Mapping[str, StaffContact] = field(default_factory=dict, repr=False)

    def get(self, handler_id: str) -> StaffContact | None:
        return self.contacts.get(handler_id)

    def __len__(self) -> int:
        return len(self.contacts)

    @classmethod
    def parse(cls, text: str, *, origin: str = "staff directory") -> "StaffDirectory":
        """The directory from the file's text; errors name the entry and field, never a
        value (the values are personal data)."""
        try:
            data = _File.model_validate(json.loads(text))
        except json.JSONDecodeError as exc:
            raise StaffDirectoryError(
                f"{origin}: not JSON (line {exc.lineno}, column {exc.colno})"
            ) from None
        except ValidationError as exc:
            raise StaffDirectoryError(f"{origin}: {describe(exc)}") from None
        return cls(
            {
                handler_id: StaffContact(handler_id, entry.mobile, entry.email)
                for handler_id, entry in data.staff.items()
            }
        )

    @classmethod
    def load(cls, path: Path | None) -> "StaffDirectory":
        """The directory at ``path``; empty without one. A path given but unreadable fails
        (start-up), rather than quietly telling no one."""
        if path is None:
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StaffDirectoryError(
                f"staff directory {path}: cannot be read ({type(exc).__name__})"
            ) from None
        return cls.parse(text, origin=f"staff directory {path}")
