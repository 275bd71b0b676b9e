"""The district's Open311 services: the department catalogue's service codes with the
Korean names, descriptions and attribute definitions in ``data/services.ko.json``.

The catalogue (``schemas/data/departments.json``) says which service codes exist and
which department handles each; the data file says what a resident reads about them and
what an app must ask for. Every catalogue code has an entry and no entry lacks a code,
so the two never drift apart unnoticed (checked when loaded).
"""

from collections.abc import Mapping
from enum import StrEnum
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.catalogue import DepartmentCatalogue, catalogue

SERVICES = Path(__file__).parent / "data" / "services.ko.json"


class Datatype(StrEnum):
    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"
    TEXT = "text"
    SINGLEVALUELIST = "singlevaluelist"
    MULTIVALUELIST = "multivaluelist"


class AttributeValue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1)
    name: str = Field(min_length=1)


class Attribute(BaseModel):
    """One question an app asks for a service (the spec's attribute definition)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    datatype: Datatype
    required: bool
    order: int = Field(ge=1)
    description: str = Field(min_length=1)
    datatype_description: str = ""
    values: tuple[AttributeValue, ...] = ()
    variable: Literal[True] = True

    @model_validator(mode="after")
    def _lists_have_values(self) -> Self:
        listed = self.datatype in (Datatype.SINGLEVALUELIST, Datatype.MULTIVALUELIST)
        if listed != bool(self.values):
            raise ValueError(f"{self.code}: values go with (and only with) a list datatype")
        return self

    def value_name(self, key: str) -> str | None:
        return next((v.name for v in self.values if v.key == key), None)


class ServiceText(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service_code: str
    service_name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    listed: bool = Field(
        default=True,
        description="Listed in GET requests: false for services about a resident's own "
        "circumstances (welfare, health, tax, certificates), readable by id only.",
    )
    attributes: tuple[Attribute, ...] = ()


class Discovery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    changeset: str
    contact: str
    key_service: str


class ServiceData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    discovery: Discovery
    services: tuple[ServiceText, ...]


class Service(BaseModel):
    """A service as Open311 lists it: the text joined with its department."""

    model_config = ConfigDict(frozen=True)

    text: ServiceText
    department_code: str
    department_name: str

    @property
    def code(self) -> str:
        return self.text.service_code

    @property
    def metadata(self) -> bool:
        return bool(self.text.attributes)

    def attribute(self, code: str) -> Attribute | None:
        return next((a for a in self.text.attributes if a.code == code), None)


class Open311Services(BaseModel):
    model_config = ConfigDict(frozen=True)

    data: ServiceData
    services: tuple[Service, ...]

    @cached_property
    def by_code(self) -> Mapping[str, Service]:
        return {s.code: s for s in self.services}

    @classmethod
    def join(cls, data: ServiceData, departments: DepartmentCatalogue) -> "Open311Services":
        texts = {t.service_code: t for t in data.services}
        codes = [c for d in departments.departments for c in d.service_codes]
        missing, stray = set(codes) - set(texts), set(texts) - set(codes)
        if missing or stray:
            raise ValueError(
                f"services.ko.json and the catalogue differ: no text for {sorted(missing)}, "
                f"text for unknown codes {sorted(stray)}"
            )
        services = tuple(
            Service(text=texts[code], department_code=d.code, department_name=d.name)
            for d in departments.departments
            for code in d.service_codes
        )
        return cls(data=data, services=services)


@cache
def open311_services() -> Open311Services:
    """The shipped services, read once per process on first use."""
    return Open311Services.join(ServiceData.model_validate_json(SERVICES.read_bytes()), catalogue())
