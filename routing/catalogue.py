"""The contract's department catalogue (``schemas/data/departments.json``) composed with
routing's own data (``routing/data/rosters.json``): who works where, who supervises each
department, and which department is the general desk."""

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from routing.deadlines import Period
from schemas import catalogue as contract
from schemas.events import HandlerRef

DATA_DIR = Path(__file__).parent / "data"


class Department(contract.Department):
    """A catalogue department with what routing adds: the supervisor, who takes what no
    handler can and receives the deadline alerts."""

    supervisor: HandlerRef

    def period(self, service_code: str | None) -> Period:
        """The legal processing period for a complaint of this department."""
        return Period.parse(self.kind(service_code))


class Handler(BaseModel):
    model_config = ConfigDict(frozen=True)

    handler_id: str
    name: str
    office_phone: str
    areas: tuple[str, ...]
    capacity: int = Field(ge=1)
    on_duty: bool

    def ref(self) -> HandlerRef:
        return HandlerRef(
            handler_id=self.handler_id, name=self.name, office_phone=self.office_phone
        )


class _Staffing(BaseModel):
    """``routing/data/rosters.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    general_desk: str
    supervisors: dict[str, HandlerRef]
    rosters: dict[str, tuple[Handler, ...]]


@dataclass(frozen=True)
class Catalogue:
    departments: dict[str, Department]
    rosters: dict[str, tuple[Handler, ...]]
    general_desk: str

    @classmethod
    def load(
        cls, data_dir: Path = DATA_DIR, departments: Path = contract.DEPARTMENTS
    ) -> "Catalogue":
        """Both files, checked against each other: a roster or a supervisor for a department
        the catalogue lacks, a department without a supervisor, or a bad period fails at
        start-up, not later."""
        shipped = contract.DepartmentCatalogue.load(departments)
        staffing = _Staffing.model_validate(
            json.loads((data_dir / "rosters.json").read_text(encoding="utf-8"))
        )
        codes = set(shipped.codes)
        for what, named in (
            ("rosters", set(staffing.rosters)),
            ("supervisors", set(staffing.supervisors)),
        ):
            unknown = named - codes
            if unknown:
                raise ValueError(f"{what} for unknown departments: {sorted(unknown)}")
        unsupervised = codes - set(staffing.supervisors)
        if unsupervised:
            raise ValueError(f"departments without a supervisor: {sorted(unsupervised)}")
        depts = {
            d.code: Department.model_validate(
                d.model_dump() | {"supervisor": staffing.supervisors[d.code]}
            )
            for d in shipped.departments
        }
        for dept in depts.values():
            for kind in (dept.default_kind, *dept.service_code_kinds.values()):
                Period.parse(kind)
        if staffing.general_desk not in depts:
            raise ValueError(f"general desk {staffing.general_desk!r} is not a department")
        return cls(
            departments=depts, rosters=dict(staffing.rosters), general_desk=staffing.general_desk
        )

    def by_service_code(self, service_code: str) -> Department | None:
        for dept in self.departments.values():
            if service_code in dept.service_codes:
                return dept
        return None
