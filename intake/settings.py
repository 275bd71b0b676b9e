"""intake's settings (``SOTONG_INTAKE_*``). Built only by ``intake/app.py``."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

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
    tracker_url: str = Field(
        default="http://127.0.0.1:8003",
        description="The tracker's HTTP API, which Open311's GETs read.",
    )
    tracker_api_key: SecretStr | None = Field(
        default=None,
        description="A tracker staff key (one of SOTONG_TRACKER_STAFF_API_KEYS) for Open311's "
        "GETs. Without it they answer 503.",
    )
