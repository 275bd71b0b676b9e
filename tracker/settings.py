"""tracker's settings (``SOTONG_TRACKER_*``). Built only by ``tracker/app.py``."""

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class TrackerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOTONG_TRACKER_", extra="ignore")

    http_port: int = 8003
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Department code → API key, as JSON (the format intake reads). A key "
        "opens its department's queue and complaints, and searches them.",
    )
    staff_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Staff name → API key, as JSON: search over every department and "
        "look any complaint up by id (no personal data in either). Empty: only department "
        "keys search and look up, each its own complaints. `sotong up` writes one to "
        "var/staff-keys.json.",
    )
    batch_max_records: int = Field(
        default=500, ge=1, le=10_000, description="Records per consumed batch, at most."
    )
    batch_timeout_ms: int = Field(
        default=200, ge=1, description="How long a batch waits to fill before it is stored."
    )
    stats_min_cell: int = Field(
        default=5,
        ge=1,
        description="Statistics show no count below this (small-cell suppression): a cell of "
        "one or two complaints can single out the resident behind it.",
    )
    stats_default_days: int = Field(
        default=30, ge=1, description="The period statistics cover when none is given."
    )
    stats_max_days: int = Field(
        default=366, ge=1, description="The longest period one statistics request may cover."
    )
    sse_poll_seconds: float = Field(
        default=0.5, gt=0, description="How often a live timeline looks for new entries."
    )
    sse_keepalive_seconds: float = Field(
        default=15.0, gt=0, description="A comment line after this long without an entry."
    )
    sse_max_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A live timeline ends after this long (`event: end`); the browser "
        "reconnects with Last-Event-ID and misses nothing.",
    )
    sse_max_per_complaint: int = Field(
        default=8, ge=1, description="Live timelines open at once on one complaint (429 beyond)."
    )
    sse_max_streams: int = Field(
        default=2000, ge=1, description="Live timelines open at once in all (503 beyond)."
    )
    stream_ticket_key: SecretStr | None = Field(
        default=None,
        description="Signs the short-lived tickets with which a browser's EventSource opens a "
        "live timeline (`?ticket=`); every tracker replica needs the same key (at least 32 "
        "characters; `sotong keys generate` writes one). Unset: a key of the process, so only "
        "the replica that issued a ticket accepts it.",
    )
    stream_ticket_seconds: float = Field(
        default=60, ge=5, le=600, description="How long a stream ticket opens its stream."
    )

    @field_validator("stream_ticket_key")
    @classmethod
    def _strong_ticket_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 32:
            raise ValueError("at least 32 characters")
        return key

    similar_threshold: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="'이미 접수된 민원' lookups: text similarity (set cosine of content words) "
        "at or above which an open complaint at the same 행정동 is offered.",
    )
    similar_window_days: float = Field(
        default=30, gt=0, description="Only open complaints filed this recently are offered."
    )
    similar_per_minute: int = Field(
        default=600,
        ge=1,
        description="Lookups per minute per caller address (intake and the portal call it "
        "for every resident, so this is the callers' budget, not one resident's), or per end "
        "user a channel with a credential (channel_keys) names in X-End-User. In memory.",
    )
    public_per_minute: int = Field(
        default=120,
        ge=1,
        description="Requests per minute to a resident's endpoints (a complaint, its live "
        "timeline, my complaints) from one client address, or from one end user a channel "
        "with a credential (channel_keys) names in X-End-User; a credential naming no end "
        "user is not limited. Counted in each tracker process's memory. 429 beyond.",
    )
    channel_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Channel → credential, as JSON (intake's SOTONG_INTAKE_CHANNEL_KEYS): a "
        "channel presenting it in X-Api-Key may name the resident it reads for in "
        "X-End-User, so its residents are limited one by one, not all as one address.",
    )
    rate_limit_max_keys: int = Field(
        default=100_000,
        ge=100,
        description="Callers each per-client limit remembers at once (least recent forgotten).",
    )
