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
