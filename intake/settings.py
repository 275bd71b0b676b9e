"""intake's settings (``SOTONG_INTAKE_*``). Built only by ``intake/app.py``."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from schemas.common import Channel
from services.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOTONG_INTAKE_", extra="ignore")

    http_port: int = 8001
    relay_interval_seconds: float = Field(default=2.0, gt=0)
    batch_max_records: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="complaint.submissions records per consumed batch, at most: filed "
        "together by one group commit.",
    )
    batch_timeout_ms: int = Field(
        default=20,
        ge=1,
        description="How long a batch of complaint.submissions waits to fill: a lone "
        "submission waits this long at most.",
    )
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
    photo_unattached_hours: float = Field(
        default=24,
        gt=0,
        description="An uploaded photo no filing attached within this long is deleted.",
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
        description="The tracker's HTTP API, which Open311's GETs and the similar-complaints "
        "lookup read.",
    )
    routing_url: str | None = Field(
        default="http://127.0.0.1:8002",
        description="routing's HTTP API: the similar-complaints lookup asks its classifier "
        "(POST /v1/classify) for the department of a filing without a service code, and "
        "uses it only when routing would route there without a person's review. Empty: "
        "no classification, such a filing is answered `no_department`.",
    )
    tracker_api_key: SecretStr | None = Field(
        default=None,
        description="A tracker staff key (one of SOTONG_TRACKER_STAFF_API_KEYS) for Open311's "
        "GETs. Without it they answer 503, and similar complaints are offered without "
        "their receipt numbers, times and excerpts.",
    )

    # -- abuse limits (issue 11 §11, §12; intake/limits.py) ------------------------------
    filings_per_minute: int = Field(
        default=5,
        ge=1,
        description="Filings one end user may make per minute over HTTP: a client address, "
        "or the end user a channel with a valid credential names in X-End-User (from any "
        "other caller the header is ignored). Counted in each intake process's memory, so "
        "N replicas admit up to N times as many. Beyond it: 429 with Retry-After.",
    )
    filings_per_hour: int = Field(
        default=20,
        ge=1,
        description="Filings one end user may make per hour (as filings_per_minute: in "
        "memory, per process). A resident rarely files more than a few a day.",
    )
    filings_per_day_per_phone: int = Field(
        default=10,
        ge=1,
        description="Filings over HTTP (the API and Open311) naming one phone number in one "
        "day (Korean time): what stops a script from making the district message a "
        "stranger's phone. Counted in MongoDB under a keyed hash of the number "
        "(intake_phone_days, removed the next day), so it holds across restarts and "
        "replicas. Filings over Kafka are from the district's own channels and not counted.",
    )
    phone_hash_key: SecretStr | None = Field(
        default=None,
        description="Key of the keyed hash (HMAC-SHA256) the per-phone counts are kept under; "
        "the same for every intake process. Unset, each process makes its own and the count "
        "starts again when it restarts (a warning says so).",
    )
    channel_filings_per_minute: int = Field(
        default=600,
        ge=1,
        description="Filings per minute from a channel credential that names no end user "
        "(X-End-User): a call centre's bridge files for many residents. In memory.",
    )
    commands_per_minute_per_key: int = Field(
        default=600,
        ge=1,
        description="Commands per minute one department key may send (issue 11 §12): generous "
        "for a department system's batch, a wall for a runaway loop. In memory.",
    )
    photos_per_minute: int = Field(
        default=10,
        ge=1,
        description="Photo uploads (POST /v1/photos) per minute from one end user, as "
        "filings_per_minute counts them (a channel's credential: channel_filings_per_minute). "
        "In memory.",
    )
    similar_per_minute: int = Field(
        default=10,
        ge=1,
        description="'이미 접수된 민원' lookups (POST /v1/complaints/similar) per minute from "
        "one end user, as filings_per_minute counts them, on a budget of their own (a "
        "channel's credential naming no end user: channel_filings_per_minute). Each is a "
        "tracker call or up to six. In memory.",
    )
    resident_actions_per_minute: int = Field(
        default=10,
        ge=1,
        description="A resident's actions on their complaints (answer, withdraw, reopen, "
        "correct, rate; enter or re-send the contact code) per minute from one end user, as "
        "filings_per_minute counts them (a channel's credential naming none: "
        "channel_filings_per_minute). In memory. 429 beyond.",
    )
    resident_actions_per_hour: int = Field(
        default=60, ge=1, description="The same per hour (in memory, per process)."
    )
    complaint_actions_per_minute: int = Field(
        default=20,
        ge=1,
        description="Resident actions and contact-code requests on one complaint per minute, "
        "whoever sends them: many addresses cannot hammer one complaint (try tokens, repeat "
        "a command). In memory. 429 beyond.",
    )
    complaint_actions_per_hour: int = Field(
        default=100, ge=1, description="The same per hour (in memory, per process)."
    )
    open311_reads_per_minute: int = Field(
        default=60,
        ge=1,
        description="Open311 GETs that read the tracker (requests, tokens, updates) per minute "
        "from one client address: each is a tracker call. In memory. 429 beyond.",
    )
    rate_limit_max_keys: int = Field(
        default=100_000,
        ge=100,
        description="End users each per-client limit remembers at once (the least recently "
        "seen are forgotten first): bounds the memory a flood of addresses can take.",
    )
    contact_code_channels: frozenset[Channel] = Field(
        default=frozenset({Channel.WEB, Channel.CHATBOT, Channel.KAKAO}),
        description="Channels whose filings must confirm the resident's phone with a one-time "
        "code before anything is sent to it, as JSON — with the channel's credential or "
        "without: the portal holds the web and chatbot credentials but relays what anyone "
        "typed, and the Kakao skill relays a phone typed in the conversation (Kakao's skill "
        "payload carries no verified number). A channel with no credential in channel_keys "
        "is open to anyone and needs codes too (or naming it would get round them). Other "
        "credentialed channels (a call centre that took the call), Kafka submissions and "
        "Open311 apps vouch for their contacts.",
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
    confirmed_phone_days: int = Field(
        default=90,
        ge=0,
        le=400,
        description="A phone a resident confirmed with a code (their resident token and the "
        "phone together, kept only as a keyed hash in intake_confirmed_phones, under "
        "phone_hash_key) is not asked for a code again at their filings for this many days. "
        "Someone else typing the same phone, with another resident token, still is. 0: ask "
        "every time.",
    )

    # -- recovery on another device (issue 12; intake/recovery.py) ------------------------
    recovery_per_minute: int = Field(
        default=5,
        ge=1,
        description="Recovery requests (codes asked for and codes entered) per minute from one "
        "end user, as filings_per_minute counts them. In memory. 429 beyond.",
    )
    recovery_per_hour: int = Field(default=20, ge=1, description="The same, per hour. In memory.")
    recovery_codes_per_hour_per_receipt: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Recovery codes asked for one receipt number per hour, whoever asks "
        "(in memory; the per-complaint count of contact_code_resends_per_hour holds too, in "
        "MongoDB). The same 429 whether or not the receipt number exists.",
    )
