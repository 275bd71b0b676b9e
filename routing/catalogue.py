"""The department catalogue and rosters, as data (``routing/data/*.json``)."""

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from routing.deadlines import Period
from schemas.events import HandlerRef

DATA_DIR = Path(__file__).parent / "data"


class Department(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    scope: str
    office_phone: str
    supervisor: HandlerRef
    service_codes: tuple[str, ...]
    default_kind: str = "grievance"
    service_code_kinds: dict[str, str] = Field(default_factory=dict)

    def period(self, service_code: str | None) -> Period:
        """The legal processing period for a complaint of this department."""
        kind = self.service_code_kinds.get(service_code or "", self.default_kind)
        return Period.parse(kind)


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


@dataclass(frozen=True)
class Catalogue:
    departments: dict[str, Department]
    rosters: dict[str, tuple[Handler, ...]]
    general_desk: str

    @classmethod
    def load(cls, data_dir: Path = DATA_DIR) -> "Catalogue":
        raw = json.loads((data_dir / "departments.json").read_text(encoding="utf-8"))
        departments = {d["code"]: Department.model_validate(d) for d in raw["departments"]}
        rosters_raw = json.loads((data_dir / "rosters.json").read_text(encoding="utf-8"))["rosters"]
        rosters = {
            code: tuple(Handler.model_validate(h) for h in handlers)
            for code, handlers in rosters_raw.items()
        }
        unknown = set(rosters) - set(departments)
        if unknown:
            raise ValueError(f"rosters for unknown departments: {sorted(unknown)}")
        for dept in departments.values():
            for kind in (dept.default_kind, *dept.service_code_kinds.values()):
                Period.parse(kind)  # a bad period in the data fails at start-up, not later
        general = str(raw["general_desk"])
        if general not in departments:
            raise ValueError(f"general desk {general!r} is not a department")
        return cls(departments=departments, rosters=rosters, general_desk=general)

    def by_service_code(self, service_code: str) -> Department | None:
        for dept in self.departments.values():
            if service_code in dept.service_codes:
                return dept
        return None
