"""tracker's settings: keys as JSON in the environment, the same format intake reads."""

import json

import pytest

from services.keys import ApiKeys
from tracker.settings import TrackerSettings


def test_department_and_staff_keys_come_from_json_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOTONG_TRACKER_API_KEYS", json.dumps({"roads": "k-roads"}))
    monkeypatch.setenv("SOTONG_TRACKER_STAFF_API_KEYS", json.dumps({"call-centre": "k-staff"}))
    monkeypatch.setenv("SOTONG_TRACKER_BATCH_MAX_RECORDS", "250")

    settings = TrackerSettings()

    assert ApiKeys(settings.api_keys).department("k-roads") == "roads"
    assert ApiKeys(settings.staff_api_keys).department("k-staff") == "call-centre"
    assert settings.batch_max_records == 250
    assert "k-roads" not in repr(settings)


def test_without_keys_nobody_gets_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOTONG_TRACKER_API_KEYS", raising=False)
    monkeypatch.delenv("SOTONG_TRACKER_STAFF_API_KEYS", raising=False)

    settings = TrackerSettings()

    assert settings.api_keys == settings.staff_api_keys == {}
    assert ApiKeys(settings.api_keys).department("") is None
