"""Channels are on when configured, never half; nothing secret travels without TLS."""

import json

import pytest
from pydantic import ValidationError

from notifier.settings import NotifierSettings
from schemas import ComplaintState

ALIMTALK = {
    "SOTONG_NOTIFIER_ALIMTALK_URL": "https://bizmsg.example.kr/v1/alimtalk",
    "SOTONG_NOTIFIER_ALIMTALK_API_KEY": "alim-key-123",
    "SOTONG_NOTIFIER_ALIMTALK_SENDER_KEY": "sender-profile-9",
}


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> NotifierSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return NotifierSettings()


def test_nothing_configured_means_only_the_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch)
    assert (s.alimtalk_on, s.sms_on, s.email_on, s.webhooks) == (False, False, False, {})
    assert s.outbox_enabled
    assert s.quiet_hours is None


def test_a_configured_provider_is_on_and_its_secrets_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(monkeypatch, **ALIMTALK)
    assert s.alimtalk_on
    assert "alim-key-123" not in repr(s)
    assert "sender-profile-9" not in repr(s)
    assert s.alimtalk_api_key is not None
    assert s.alimtalk_api_key.get_secret_value() == "alim-key-123"


def test_a_half_configured_provider_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="SOTONG_NOTIFIER_SMS_API_KEY"):
        settings(
            monkeypatch,
            SOTONG_NOTIFIER_SMS_URL="https://sms.example.kr/send",
            SOTONG_NOTIFIER_SMS_SENDER="02-120",
        )


@pytest.mark.parametrize(
    "url",
    ["http://bizmsg.example.kr/v1/alimtalk", "http://10.0.0.5/alimtalk", "ftp://x.kr/"],
)
def test_a_provider_url_without_tls_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    with pytest.raises(ValidationError, match=r"https|http"):
        settings(monkeypatch, **(ALIMTALK | {"SOTONG_NOTIFIER_ALIMTALK_URL": url}))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_http_to_this_machine_is_allowed(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    url = f"http://{host}:8080/alimtalk"
    assert settings(monkeypatch, **(ALIMTALK | {"SOTONG_NOTIFIER_ALIMTALK_URL": url})).alimtalk_on


def test_webhooks_are_json_with_a_strong_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = {"roads": {"url": "https://roads.example.kr/hook", "secret": "0123456789abcdef"}}
    s = settings(monkeypatch, SOTONG_NOTIFIER_WEBHOOKS=json.dumps(hooks))
    assert s.webhooks["roads"].url == "https://roads.example.kr/hook"
    assert "0123456789abcdef" not in repr(s)
    weak = {"roads": {"url": "https://roads.example.kr/hook", "secret": "short"}}
    with pytest.raises(ValidationError, match="16 characters"):
        settings(monkeypatch, SOTONG_NOTIFIER_WEBHOOKS=json.dumps(weak))


def test_smtp_without_tls_only_to_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SOTONG_NOTIFIER_SMTP_HOST": "smtp.example.kr",
        "SOTONG_NOTIFIER_SMTP_SENDER": "no-reply@example.kr",
        "SOTONG_NOTIFIER_SMTP_TLS": "none",
    }
    with pytest.raises(ValidationError, match="SMTP without TLS"):
        settings(monkeypatch, **env)
    local = settings(monkeypatch, **(env | {"SOTONG_NOTIFIER_SMTP_HOST": "127.0.0.1"}))
    assert local.email_on


def test_quiet_hours_and_urgent_states_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(
        monkeypatch,
        SOTONG_NOTIFIER_QUIET_HOURS="21:00-08:00",
        SOTONG_NOTIFIER_URGENT_STATES='["resolved"]',
    )
    assert s.quiet_hours == "21:00-08:00"
    assert s.urgent_states == frozenset({ComplaintState.RESOLVED})
    with pytest.raises(ValidationError, match="quiet hours"):
        settings(monkeypatch, SOTONG_NOTIFIER_QUIET_HOURS="late")


def test_the_sender_and_tracking_link_default_to_one_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(monkeypatch)
    assert s.sender_name == "인천광역시 서구"
    assert s.tracking_url == "http://127.0.0.1:8005/complaints/{complaint_id}"
    district = settings(
        monkeypatch,
        SOTONG_NOTIFIER_SENDER_NAME="인천광역시 서구청",
        SOTONG_NOTIFIER_TRACKING_URL="https://sotong.seo.incheon.kr/r/{receipt_number}",
    )
    assert district.sender_name == "인천광역시 서구청"
    assert district.tracking_url.endswith("/r/{receipt_number}")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "https://sotong.example.kr/complaints/{complaint_id}?t={tracking_token}",
            "tracking_token",
        ),
        ("https://sotong.example.kr/complaints", "must name the complaint"),
        ("http://sotong.example.kr/complaints/{complaint_id}", "https"),
    ],
)
def test_a_tracking_link_carries_no_token_and_uses_tls(
    monkeypatch: pytest.MonkeyPatch, url: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        settings(monkeypatch, SOTONG_NOTIFIER_TRACKING_URL=url)


@pytest.mark.parametrize("name", ["[서구]", " 서구", "서구\n청", ""])
def test_a_sender_name_is_a_plain_name(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    with pytest.raises(ValidationError, match="sender_name"):
        settings(monkeypatch, SOTONG_NOTIFIER_SENDER_NAME=name)
