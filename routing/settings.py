"""routing's settings (``SOTONG_ROUTING_*``). Built only by ``routing/app.py``."""

from datetime import date
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOTONG_ROUTING_", extra="ignore")

    http_port: int = 8002
    batch_max_records: int = Field(
        default=500, ge=1, le=10_000, description="Records per consumed batch, at most."
    )
    batch_timeout_ms: int = Field(
        default=50,
        ge=1,
        description="How long a batch waits to fill: a lone filing waits this long at most.",
    )
    relay_interval_seconds: float = Field(default=2.0, gt=0)
    relay_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="The outbox relay and the load settler take, after their first pass, "
        "only what was staged longer ago than this: a batch publishes its own events, and "
        "taking them meanwhile repeats its work (0: take everything every pass).",
    )
    deadline_scan_interval_seconds: float = Field(default=60.0, gt=0)
    classifier_threshold: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="Below this confidence a complaint goes to the general desk for a person.",
    )
    extra_holidays: list[date] = Field(
        default_factory=list,
        description="Temporary public holidays (임시공휴일) as a JSON list of dates.",
    )
    model_dir: Path | None = Field(
        default=None,
        description="Where the fitted classifier is kept between starts (it is refitted "
        "only when the examples, including transfers, or the code change). Unset: fit at "
        "every start. `sotong up` sets var/classifier.",
    )
