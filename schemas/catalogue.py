"""The department catalogue: which departments exist, what they handle, and the legal kind
of complaint each service code is (``schemas/data/departments.json``).

It is contract data: intake refuses a transfer to a department that does not exist, the
portal and Open311 list the service codes, routing routes and sets deadlines from it. Who
works in a department (rosters, supervisors) and which department is the general desk
are routing's, in ``routing/data/rosters.json``; turning a kind into a legal period is
routing's too (``routing/deadlines.py``).
"""

import json
from collections.abc import Mapping
from enum import StrEnum
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

DEPARTMENTS = Path(__file__).parent / "data" / "departments.json"
DONGS = Path(__file__).parent / "data" / "dongs.json"

CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


class ComplaintKind(StrEnum):
    """The kinds of complaint the law (민원 처리에 관한 법률 시행령) gives a processing period."""

    OTHER = "other"  # 기타민원: 즉시
    INQUIRY = "inquiry"  # 질의민원 (제도·절차)
    INQUIRY_LAW = "inquiry-law"  # 질의민원 (법령)
    PROPOSAL = "proposal"  # 건의민원
    GRIEVANCE = "grievance"  # 고충민원


PeriodText = Annotated[
    str,
    Field(
        pattern=r"^[1-9][0-9]{0,2}[hd]$",
        description="A period a statute sets for one service, in working hours or days: 3h, 20d.",
    ),
]
Kind = ComplaintKind | PeriodText
"""A legal kind by name, or the period a specific statute sets for a service."""

Code = Annotated[str, Field(pattern=CODE_PATTERN)]


class Department(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Code
    name: str = Field(min_length=1, description="The department's Korean name, e.g. 도로과.")
    scope: str = Field(description="What it handles, in Korean.")
    office_phone: str = Field(description="The department's office number.")
    service_codes: tuple[Code, ...]
    default_kind: Kind = ComplaintKind.GRIEVANCE
    service_code_kinds: dict[Code, Kind] = Field(
        default_factory=dict, description="Service codes whose kind is not the default."
    )

    @model_validator(mode="after")
    def _kinds_of_own_codes(self) -> Self:
        stray = set(self.service_code_kinds) - set(self.service_codes)
        if stray:
            raise ValueError(f"{self.code}: kinds for service codes it lacks: {sorted(stray)}")
        return self

    def kind(self, service_code: str | None) -> Kind:
        """The legal kind of a complaint filed with this service code (or none)."""
        return self.service_code_kinds.get(service_code or "", self.default_kind)


class DepartmentCatalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    departments: tuple[Department, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for what, values in (
            ("department codes", [d.code for d in self.departments]),
            ("service codes", [c for d in self.departments for c in d.service_codes]),
        ):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"repeated {what}: {repeated}")
        return self

    @cached_property
    def by_code(self) -> Mapping[str, Department]:
        return {d.code: d for d in self.departments}

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(d.code for d in self.departments)

    def by_service_code(self, service_code: str) -> Department | None:
        for dept in self.departments:
            if service_code in dept.service_codes:
                return dept
        return None

    @classmethod
    def load(cls, path: Path = DEPARTMENTS) -> "DepartmentCatalogue":
        return cls.model_validate_json(path.read_bytes())


@cache
def catalogue() -> DepartmentCatalogue:
    """The catalogue as shipped, read once per process, on first use (not at import)."""
    return DepartmentCatalogue.load()


@cache
def district_dongs() -> tuple[str, ...]:
    """The district's 행정동 (``schemas/data/dongs.json``): what a filing form offers and
    what a correction may name. Read once per process, on first use."""
    data = json.loads(DONGS.read_text(encoding="utf-8"))
    return tuple(data["dongs"])


def known_dong(value: str) -> str:
    """A validator: ``value`` is one of the district's 행정동."""
    if value not in district_dongs():
        raise ValueError("must be one of the district's 행정동 (schemas/data/dongs.json)")
    return value


def _known_department(code: str) -> str:
    if code not in catalogue().by_code:
        raise ValueError(f"unknown department {code!r}")
    return code


class _CodesAsEnum:
    """Documents a department code as an enum of the shipped codes, read when the schema
    is generated, so importing this module reads no file."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema: dict[str, Any] = handler(core_schema)
        schema.pop("pattern", None)
        schema["enum"] = list(catalogue().codes)
        return schema


DepartmentCode = Annotated[
    str,
    Field(min_length=1, max_length=64),
    AfterValidator(_known_department),
    _CodesAsEnum(),
]
"""A department code that exists in the catalogue; an enum in the generated schema."""
