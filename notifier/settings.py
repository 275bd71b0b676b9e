"""notifier's settings (``SOTONG_NOTIFIER_*``). Built only by ``notifier/app.py``.

A channel is on when its settings are given and off otherwise; with none on, the local
outbox takes every person's message (one machine). Credentials are ``SecretStr``. Nothing
that carries a credential or personal data may go over plain HTTP or unencrypted SMTP,
except to this machine (the tests' fake providers): a production URL without TLS fails
at start-up instead of leaking quietly.
"""

import ipaddress
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from notifier.audience import DEFAULT_URGENT_STATES
from notifier.mail import TlsMode
from notifier.quiet import QuietHours
from notifier.templates import check_tracking_url
from schemas import ComplaintState
from services.settings import PROJECT_ROOT, ServiceSettings


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _secure_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError("must use https (plain http is allowed only to this machine)")
    return url


class WebhookSubscription(BaseModel):
    """One department system's endpoint and the secret its requests are signed with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    secret: SecretStr

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        return _secure_url(url)

    @field_validator("secret")
    @classmethod
    def _strong(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return secret


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOTONG_NOTIFIER_", extra="ignore")

    http_port: int = 8004

    sender_name: str = Field(
        default="인천광역시 서구",
        min_length=1,
        max_length=20,
        description="The district office every message is from, as residents know it.",
    )
    tracking_url: str = Field(
        default="http://127.0.0.1:8005/complaints/{complaint_id}",
        description="The resident's timeline page, with {complaint_id} or {receipt_number}; "
        "never the tracking token (the page asks for it).",
    )

    outbox_enabled: bool = Field(
        default=True, description="The local outbox takes messages no other channel can."
    )
    outbox_path: Path = PROJECT_ROOT / "var" / "outbox.jsonl"
    staff_outbox_path: Path | None = Field(
        default=None, description="Staff messages on one machine; default: beside outbox_path."
    )

    staff_directory_path: Path | None = Field(
        default=None,
        description="A JSON file (or mounted secret) with each handler's work mobile and "
        "e-mail by handler_id (notifier.staff); unset, staff notices are skipped.",
    )

    alimtalk_url: str | None = None
    alimtalk_api_key: SecretStr | None = None
    alimtalk_sender_key: SecretStr | None = Field(
        default=None, description="The KakaoTalk channel's sender profile key (발신 프로필 키)."
    )

    sms_url: str | None = None
    sms_api_key: SecretStr | None = None
    sms_sender: str | None = Field(
        default=None, description="The pre-registered sender number (발신번호 사전등록)."
    )

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: TlsMode = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str | None = Field(default=None, description='e.g. "인천광역시 서구 <no-reply@…>"')

    webhooks: dict[str, WebhookSubscription] = Field(
        default_factory=dict, description="Department code → {url, secret}, as JSON."
    )
    intake_public_url: str | None = Field(
        default=None,
        description="intake's address as department systems reach it: their webhooks list "
        "the complaint's photos as {url}/v1/photos/{id} (fetched with the department's "
        "X-Api-Key). Unset: webhooks list no photos.",
    )
    open311_webhooks: dict[str, WebhookSubscription] = Field(
        default_factory=dict,
        description="Open311 client app → {url, secret}, as JSON: the app (named as in "
        "SOTONG_INTAKE_OPEN311_KEYS) is pushed every public step of the requests it filed, "
        "signed as department webhooks are.",
    )

    http_timeout_seconds: float = Field(default=5.0, gt=0)
    delivery_max_attempts: int = Field(default=4, ge=1)
    delivery_initial_backoff_seconds: float = Field(default=0.5, gt=0)
    delivery_max_backoff_seconds: float = Field(default=30.0, gt=0)

    quiet_hours: str | None = Field(
        default=None, description='e.g. "21:00-08:00"; unset, nothing is held back.'
    )
    timezone: str = "Asia/Seoul"
    urgent_states: frozenset[ComplaintState] = DEFAULT_URGENT_STATES
    release_interval_seconds: float = Field(default=30.0, gt=0)
    batch_max_records: int = Field(
        default=200, ge=1, le=10_000, description="Records per consumed batch, at most."
    )
    batch_timeout_ms: int = Field(
        default=50, ge=1, description="How long a batch waits to fill before it is handled."
    )

    daily_cap_per_recipient: int | None = Field(
        default=20,
        ge=1,
        description="At most this many messages to one resident's phone (or e-mail) per day, "
        "however many complaints name it; unset, no cap.",
    )
    contact_hold_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long a resident's messages wait for the phone an anonymous web "
        "filing gave to be confirmed with its code; after that they are dropped and counted "
        "(sotong_notifications_held_expired_total), not sent.",
    )
    recipient_hash_key: SecretStr | None = Field(
        default=None,
        description="The secret the daily cap's counts are keyed with (HMAC-SHA256 of the "
        "contact); the same for every notifier process. Unset, each process makes its own "
        "and the cap is counted per process (a warning says so).",
    )

    max_poll_interval_ms: int = Field(
        default=300_000,
        ge=10_000,
        description="The consumers' poll limit (Kafka max.poll.interval.ms): a consumer "
        "that takes longer with one batch loses its partitions and the batch is handled again.",
    )
    finish_interval_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="How long a finished delivery waits to share its ledger write with "
        "others that finish meanwhile. A notifier killed mid-batch sends again only the "
        "calls in flight and those that finished within this interval; shorter costs more "
        "database writes per batch.",
    )
    batch_budget_seconds: float = Field(
        default=25.0,
        gt=0,
        description="How long one batch may spend sending; what the budget leaves untried, "
        "and a last channel still failing, goes to the retry topic (notification.retry).",
    )
    retry_topic_max_retries: int = Field(
        default=5, ge=0, description="Rounds of the retry topic before the event is dead-lettered."
    )
    retry_topic_initial_backoff_seconds: float = Field(default=30.0, gt=0)
    retry_topic_max_backoff_seconds: float = Field(default=900.0, gt=0)
    retry_topic_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a batch of the retry topic waits for records not due yet.",
    )
    sweep_lease_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A delivery claimed (sending) or retrying this long past its time is "
        "re-queued: no live attempt holds it. Longer than the poll limit.",
    )
    sweep_interval_seconds: float = Field(default=60.0, gt=0)

    @field_validator("sender_name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if name != name.strip() or any(c in name for c in "[]\n\r"):
            raise ValueError("must be a plain name, without brackets or line breaks")
        return name

    @field_validator("tracking_url")
    @classmethod
    def _tracking_link(cls, url: str) -> str:
        return _secure_url(check_tracking_url(url))

    @field_validator("alimtalk_url", "sms_url")
    @classmethod
    def _provider_url(cls, url: str | None) -> str | None:
        return None if url is None else _secure_url(url)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        groups: dict[str, dict[str, object]] = {
            "ALIMTALK": {
                "URL": self.alimtalk_url,
                "API_KEY": self.alimtalk_api_key,
                "SENDER_KEY": self.alimtalk_sender_key,
            },
            "SMS": {"URL": self.sms_url, "API_KEY": self.sms_api_key, "SENDER": self.sms_sender},
            "SMTP": {"HOST": self.smtp_host, "SENDER": self.smtp_sender},
        }
        for channel, fields in groups.items():
            given = [name for name, value in fields.items() if value]
            if given and len(given) != len(fields):
                missing = [f"SOTONG_NOTIFIER_{channel}_{n}" for n in fields if n not in given]
                raise ValueError(f"{channel} is half configured: set {', '.join(missing)}")
        if self.smtp_host and self.smtp_tls == "none" and not _loopback(self.smtp_host):
            raise ValueError("SMTP without TLS is allowed only to this machine")
        if self.quiet_hours:
            QuietHours.parse(self.quiet_hours, self.timezone)
        poll = self.max_poll_interval_ms / 1000
        if self.worst_batch_seconds > 0.8 * poll:
            raise ValueError(
                f"a batch could take {self.worst_batch_seconds:.0f} s (the kit's "
                f"{self.retry.max_attempts} tries × (batch_budget_seconds + one attempt + "
                "backoff) + retry_topic_wait_seconds), more than 80% of "
                f"max_poll_interval_ms ({poll:.0f} s): lower the budget or raise the limit"
            )
        if self.sweep_lease_seconds <= poll:
            raise ValueError("sweep_lease_seconds must be longer than max_poll_interval_ms")
        return self

    @property
    def worst_batch_seconds(self) -> float:
        """The longest one consumed batch can hold its partition: the kit retries a failing
        batch in place, each try with a fresh budget."""
        per_try = (
            self.batch_budget_seconds + self.http_timeout_seconds + self.retry.max_backoff_seconds
        )
        return self.retry.max_attempts * per_try + self.retry_topic_wait_seconds

    @property
    def alimtalk_on(self) -> bool:
        return bool(self.alimtalk_url)

    @property
    def sms_on(self) -> bool:
        return bool(self.sms_url)

    @property
    def email_on(self) -> bool:
        return bool(self.smtp_host)
