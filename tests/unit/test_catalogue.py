"""The department catalogue is contract data (``schemas/``); routing adds who works where.

A catalogue that contradicts itself, or routing data that names a department the
catalogue lacks, fails when it is loaded, not when a complaint needs it.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from routing.catalogue import DATA_DIR, Catalogue
from routing.deadlines import KINDS, Period
from schemas.catalogue import (
    DEPARTMENTS,
    ComplaintKind,
    DepartmentCatalogue,
    DepartmentCode,
    catalogue,
)


def raw_departments() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEPARTMENTS.read_text(encoding="utf-8"))
    return data


def test_the_shipped_catalogue_names_sixteen_departments_with_their_kinds() -> None:
    shipped = catalogue()

    assert len(shipped.codes) == 16
    assert shipped.by_code["roads"].name == "도로과"
    tax = shipped.by_code["tax"]
    assert tax.kind("local-tax") == ComplaintKind.INQUIRY
    assert tax.kind(None) == tax.kind("no-such-code") == ComplaintKind.GRIEVANCE
    assert shipped.by_service_code("certificate") == shipped.by_code["civil-passport"]
    assert shipped.by_service_code("no-such-code") is None


def test_the_contract_carries_no_roster_data() -> None:
    for department in raw_departments()["departments"]:
        assert "supervisor" not in department
    assert "general_desk" not in raw_departments()


def test_every_kind_the_contract_names_has_a_legal_period_in_routing() -> None:
    assert set(KINDS) == set(ComplaintKind)
    for kind in ComplaintKind:
        Period.parse(kind)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d["departments"].append(d["departments"][0]), "repeated department codes"),
        (
            lambda d: (
                d["departments"][1]["service_codes"].append("noise-twin")
                or d["departments"][2]["service_codes"].append("noise-twin")
            ),
            "repeated service codes",
        ),
        (lambda d: d["departments"][0].update(default_kind="soon"), "default_kind"),
        (
            lambda d: d["departments"][0]["service_code_kinds"].update({"not-its-own": "other"}),
            "kinds for service codes it lacks",
        ),
        (lambda d: d["departments"][0].update(supervisor={}), "supervisor"),
    ],
)
def test_a_catalogue_that_contradicts_itself_is_refused(
    change: Any, complaint: str, tmp_path: Path
) -> None:
    data = raw_departments()
    change(data)
    path = tmp_path / "departments.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    with pytest.raises(ValidationError, match=complaint):
        DepartmentCatalogue.load(path)


def test_routing_composes_the_catalogue_with_its_supervisors_and_rosters() -> None:
    composed = Catalogue.load()

    assert list(composed.departments) == list(catalogue().codes)
    roads = composed.departments["roads"]
    assert roads.name == catalogue().by_code["roads"].name
    assert roads.supervisor.handler_id == "roads-sup"
    assert roads.period(None) == Period(7, "d")
    assert composed.departments["civil-passport"].period("certificate") == Period(3, "h")
    assert composed.general_desk in composed.departments


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d["supervisors"].pop("roads"), "without a supervisor: \\['roads'\\]"),
        (
            lambda d: d["supervisors"].update(bakery=d["supervisors"]["roads"]),
            "supervisors for unknown departments",
        ),
        (lambda d: d["rosters"].update(bakery=[]), "rosters for unknown departments"),
        (lambda d: d.update(general_desk="bakery"), "general desk 'bakery'"),
    ],
)
def test_routing_data_that_names_departments_the_catalogue_lacks_is_refused(
    change: Any, complaint: str, tmp_path: Path
) -> None:
    shutil.copy(DATA_DIR / "rosters.json", tmp_path / "rosters.json")
    data = json.loads((tmp_path / "rosters.json").read_text(encoding="utf-8"))
    change(data)
    (tmp_path / "rosters.json").write_text(json.dumps(data, ensure_ascii=False), "utf-8")

    with pytest.raises(ValueError, match=complaint):
        Catalogue.load(tmp_path)


class Transfer(BaseModel):
    to_department: DepartmentCode


def test_a_department_code_must_exist_and_is_documented_as_an_enum() -> None:
    assert Transfer(to_department="parks").to_department == "parks"
    with pytest.raises(ValidationError, match="unknown department 'bakery'"):
        Transfer(to_department="bakery")

    schema = Transfer.model_json_schema()["properties"]["to_department"]
    assert schema["enum"] == list(catalogue().codes)
