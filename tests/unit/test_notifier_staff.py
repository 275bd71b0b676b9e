"""The staff contact directory: work mobiles and e-mails by handler id, read from a file,
refused with the entry and field named (never the value), kept out of repr."""

import json
import stat
from pathlib import Path

import pytest

from notifier.settings import NotifierSettings
from notifier.staff import StaffDirectory, StaffDirectoryError
from services.settings import PROJECT_ROOT
from sotong import localstack


def test_a_directory_file_gives_each_handler_their_work_contacts(tmp_path: Path) -> None:
    path = tmp_path / "staff.json"
    path.write_text(
        json.dumps(
            {
                "staff": {
                    "roads-1": {"mobile": "010-0000-0001", "email": "roads-1@staff.invalid"},
                    "roads-chief": {"email": "chief@staff.invalid"},
                }
            }
        ),
        encoding="utf-8",
    )
    directory = StaffDirectory.load(path)
    roads = directory.get("roads-1")
    assert roads is not None
    assert (roads.mobile, roads.email) == ("010-0000-0001", "roads-1@staff.invalid")
    chief = directory.get("roads-chief")
    assert chief is not None
    assert (chief.mobile, chief.email) == (None, "chief@staff.invalid")
    assert directory.get("nobody") is None
    assert "010" not in repr(roads), "work contacts are personal data: not in repr"
    assert "staff.invalid" not in repr(directory)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"mobile": "032-560-5100"}, "staff.roads-1.mobile"),
        ({"email": "not-an-address"}, "staff.roads-1.email"),
        ({}, "staff.roads-1"),
        ({"mobile": "010-0000-0001", "office": "032-560-5100"}, "staff.roads-1.office"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_field_but_not_the_value(
    entry: dict[str, str], field: str
) -> None:
    with pytest.raises(StaffDirectoryError) as raised:
        StaffDirectory.parse(json.dumps({"staff": {"roads-1": entry}}))
    message = str(raised.value)
    assert field in message
    for value in entry.values():
        assert value not in message


def test_a_directory_set_but_missing_or_broken_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(StaffDirectoryError, match="cannot be read"):
        StaffDirectory.load(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(StaffDirectoryError, match="not JSON"):
        StaffDirectory.load(broken)
    assert len(StaffDirectory.load(None)) == 0


def test_the_local_stack_writes_clearly_fake_contacts_for_every_rostered_person(
    tmp_path: Path,
) -> None:
    path = localstack.local_staff_directory(tmp_path / "staff-contacts.json")
    directory = StaffDirectory.load(path)
    rosters = json.loads((PROJECT_ROOT / "routing" / "data" / "rosters.json").read_text())
    for department, supervisor in rosters["supervisors"].items():
        contact = directory.get(supervisor["handler_id"])
        assert contact is not None, department
        assert contact.mobile is not None
        assert contact.mobile.startswith("010-0000-")
        assert contact.email is not None
        assert contact.email.endswith("@staff.invalid")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    env = localstack.local_service_env(tmp_path, tmp_path / "a.json", tmp_path / "b.json")
    settings_path = env["SOTONG_NOTIFIER_STAFF_DIRECTORY_PATH"]
    assert NotifierSettings(staff_directory_path=Path(settings_path)).staff_directory_path
    assert len(StaffDirectory.load(Path(settings_path))) == len(directory)
