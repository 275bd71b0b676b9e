"""portal's settings (``SOTONG_PORTAL_*``). Built only by ``portal/app.py``."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.settings import MongoSettings, Settings, TelemetrySettings


class PortalSettings(Settings):
    """The portal has no Kafka: it is a channel, and talks to intake and tracker over HTTP
    as any channel would. Its own MongoDB collections hold what only it needs (which
    complaints a resident follows, favourites, behaviour signals)."""

    model_config = SettingsConfigDict(env_prefix="SOTONG_PORTAL_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8005
    log_level: str = "INFO"
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """Traces (``SOTONG_OTEL_*``): a filing's trace starts at the portal's request and goes
    on through intake, routing, tracker and notifier."""
    intake_url: str = Field(
        default="http://127.0.0.1:8001", description="intake's public HTTP API (filing)."
    )
    tracker_url: str = Field(
        default="http://127.0.0.1:8003", description="tracker's public HTTP API (reading)."
    )
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    cookie_secure: bool | None = Field(
        default=None,
        description="Mark the resident cookie Secure. Unset: Secure exactly when the request "
        "came over HTTPS (as a proxy reports with X-Forwarded-Proto).",
    )
    cookie_max_age_days: int = Field(default=400, ge=1, le=400)
    intake_accepts_transcript: bool = Field(
        default=True,
        description="Send the chat `transcript` with a chatbot handoff (intake keeps it "
        "for the handler); off for an intake older than the field.",
    )
    chatbot_enabled: bool = Field(
        default=True,
        description="Load the 24/7 chatbot (`SOTONG_CHATBOT_*`: about 300 MB for the Korean "
        "tokenizer, a few seconds at start) and serve its Kakao skill at /kakao/skill.",
    )
    intake_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="The portal's credential at intake for each channel it files as, as JSON "
        '(`{"web": ..., "chatbot": ...}`; intake\'s SOTONG_INTAKE_CHANNEL_KEYS holds the same). '
        "With one, the portal names the resident (their client address) in X-End-User and "
        "intake limits each resident, not the portal as one client; without, it files "
        "anonymously and all its residents share one address's limits.",
    )
    tracker_key: SecretStr | None = Field(
        default=None,
        description="The portal's credential at the tracker (one of SOTONG_TRACKER_CHANNEL_KEYS): "
        "with it the tracker limits the portal's residents one by one (X-End-User).",
    )
    filings_per_minute: int = Field(
        default=5,
        ge=1,
        description="Form posts that file (the filing form, the chat handoff) per minute from "
        "one client address; beyond it a page asks to wait (429). In memory.",
    )
    actions_per_minute: int = Field(
        default=20,
        ge=1,
        description="Form posts that act on a complaint (answer, withdraw, reopen, correct, "
        "rate, the 인증번호 and a new code) and stars (favourites) per minute from one client "
        "address; beyond it a "
        "page asks to wait (429). In memory; intake limits each resident too.",
    )
    chat_per_minute: int = Field(
        default=30,
        ge=1,
        description="Chat messages per minute from one client address (429 beyond). In memory.",
    )
    pages_per_minute: int = Field(
        default=300,
        ge=1,
        description="Page views (every GET but static files and the probes) per minute from "
        "one client address: five a second, which a person clicking never keeps up, while "
        "residents behind one shared address (a mobile carrier's NAT, an office) still fit. "
        "Beyond it a page in Korean asks to wait (429, Retry-After). In memory.",
    )
    static_per_minute: int = Field(
        default=1200,
        ge=1,
        description="Static files (/static/…) per minute from one client address (a page "
        "brings a few; the browser keeps them). In memory.",
    )
