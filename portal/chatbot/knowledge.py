"""The chatbot's knowledge base: question–answer entries kept as data a district edits
(``data/knowledge.ko.json``), each owned by a department of the catalogue and dated.

An entry whose district-specific facts (fees, places, hours) nobody has confirmed yet is
marked ``to_confirm``: its answer says whom to ask instead of a figure, and a reviewer
finds every such entry with one query on the file.
"""

from collections.abc import Mapping
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from schemas.catalogue import DepartmentCatalogue, catalogue

KNOWLEDGE = Path(__file__).parent / "data" / "knowledge.ko.json"

MAX_ANSWER = 800
"""An answer with its footer must fit KakaoTalk's 1,000 characters per text."""

Phrase = Annotated[str, Field(min_length=2, max_length=200)]


class Link(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(min_length=1, max_length=40)
    url: HttpUrl


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    department: str = Field(description="The owning department's catalogue code.")
    service_code: str | None = Field(
        default=None, description="The catalogue service code a complaint about it files under."
    )
    question: Phrase
    phrasings: tuple[Phrase, ...] = Field(
        default=(), description="Other ways residents ask the same thing."
    )
    answer: str = Field(min_length=10, max_length=MAX_ANSWER)
    links: tuple[Link, ...] = ()
    related: tuple[str, ...] = Field(default=(), description="Ids of follow-up entries.")
    checked_on: date = Field(description="When someone last checked the answer.")
    to_confirm: bool = Field(
        description="District-specific facts are not confirmed yet: the answer says whom to ask."
    )

    @property
    def texts(self) -> tuple[str, ...]:
        """What retrieval matches a resident's words against."""
        return (self.question, *self.phrasings)


class KnowledgeBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1)
    entries: tuple[Entry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [e.id for e in self.entries]
        if repeated := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"repeated entry ids: {repeated}")
        known = set(ids)
        for e in self.entries:
            if stray := sorted(set(e.related) - known):
                raise ValueError(f"{e.id}: related entries that do not exist: {stray}")
        return self

    def check_departments(self, departments: DepartmentCatalogue) -> Self:
        """Every owner is a catalogue department and every service code is that owner's."""
        for e in self.entries:
            dept = departments.by_code.get(e.department)
            if dept is None:
                raise ValueError(f"{e.id}: unknown department {e.department!r}")
            if e.service_code is not None and e.service_code not in dept.service_codes:
                raise ValueError(f"{e.id}: {e.service_code!r} is not a service of {dept.code}")
        return self

    @cached_property
    def by_id(self) -> Mapping[str, Entry]:
        return {e.id: e for e in self.entries}

    @classmethod
    def load(cls, path: Path = KNOWLEDGE, departments: DepartmentCatalogue | None = None) -> Self:
        kb = cls.model_validate_json(path.read_bytes())
        return kb.check_departments(departments or catalogue())
