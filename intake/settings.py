"""intake's settings (``SOTONG_INTAKE_*``). Built only by ``intake/app.py``."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from schemas.common import Channel
from services.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOTONG_INTAKE_", extra="ignore")

    http_port: int = 8001
    relay_interval_seconds: float = Field(default=2.0, gt=0)
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Department code → API key, as JSON. Without keys no command is accepted.",
    )
    open311_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Open311 client app → its api_key, as JSON: one key per app. Without "
        "keys every Open311 POST is refused (403); the GETs are public.",
    )
    channel_keys: dict[Channel, SecretStr] = Field(
        default_factory=dict,
        description="Upstream channel → its client credential, as JSON, presented in "
        "X-Api-Key when filing. A channel with a credential can only be filed as by its "
        "holder (and over Kafka), so only its own (channel, channel_ref) duplicates are "
        "recognised; anonymous web filers may still file as `web`, without channel_ref. "
        "A channel left out is open to anyone, as on one machine.",
    )
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="How long an Idempotency-Key is remembered (a MongoDB TTL index).",
    )
    idempotency_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A request still in flight after this long is taken to have died with "
        "its process: a retry with the same key and body may take it over.",
    )
    photo_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest photo upload (413 beyond)."
    )
    photo_max_pixels: int = Field(
        default=40_000_000,
        ge=10_000,
        description="Largest photo in pixels (422 beyond): a small file can decode huge.",
    )
    photos_per_complaint: int = Field(
        default=3, ge=0, le=10, description="Photos one filing may reference."
    )
    photo_thumbnail_pixels: int = Field(
        default=320, ge=32, le=1024, description="Longest side of a photo's thumbnail."
    )
    open311_media_urls: bool = Field(
        default=False,
        description="Open311 GETs give each request's first photo as `media_url` "
        "(the district allows photos to be public).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8001",
        description="intake's address as clients reach it: photo links are built on it.",
    )
    tracker_url: str = Field(
        default="http://127.0.0.1:8003",
        description="The tracker's HTTP API, which Open311's GETs read.",
    )
    tracker_api_key: SecretStr | None = Field(
        default=None,
        description="A tracker staff key (one of SOTONG_TRACKER_STAFF_API_KEYS) for Open311's "
        "GETs. Without it they answer 503.",
    )
    contact_code_channels: frozenset[Channel] = Field(
        default=frozenset({Channel.WEB}),
        description="Channels whose filings without a channel credential must confirm the "
        "resident's phone with a one-time code before anything is sent to it, as JSON. "
        "A channel with no credential in channel_keys is open to anyone and needs codes "
        "too (or naming it would get round them). A filing with a credential (the holder "
        "vouches for its contacts), over Kafka or through Open311 never needs one.",
    )
    contact_code_ttl_seconds: int = Field(
        default=600, ge=60, le=3600, description="How long a one-time code may be entered."
    )
    contact_code_max_attempts: int = Field(
        default=5, ge=1, le=10, description="Wrong entries before a code stops working."
    )
    contact_code_resends_per_hour: int = Field(
        default=3, ge=1, le=10, description="New codes one complaint may ask for per hour."
    )
    contact_code_keep_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=3600,
        description="How long a complaint's code record is kept (a MongoDB TTL index): as "
        "long as the notifier holds messages for an unconfirmed phone.",
    )
