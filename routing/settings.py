"""routing's settings (``SOTONG_ROUTING_*``). Built only by ``routing/app.py``."""

from datetime import date
from pathlib import Path

from pydantic import Field, SecretStr
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
    cases_enabled: bool = Field(
        default=True,
        description="Detect 반복민원 and 중복민원 at filing (routing.cases).",
    )
    repeat_threshold: float = Field(
        default=0.55,
        ge=0,
        le=1,
        description="Text similarity at or above which a complaint repeats the same "
        "resident's concluded one. Measured with `sotong repeat-eval`: 0.89 of the labelled "
        "repeats found, none of the new complaints caught.",
    )
    repeat_window_days: float = Field(
        default=365, gt=0, description="How long after its conclusion a complaint is repeated."
    )
    resident_phone_key: SecretStr | None = Field(
        default=None,
        description="Key of the keyed hash (HMAC-SHA256) that recognises a resident by phone "
        "across filings; the phone itself is never kept. Unset: a resident is recognised by "
        "the resident token they file with only.",
    )
    duplicate_threshold: float = Field(
        default=0.35,
        ge=0,
        le=1,
        description="Text similarity at or above which a complaint at the same place joins "
        "an open case (the place is the stricter test).",
    )
    duplicate_window_days: float = Field(
        default=30, gt=0, description="How recently an open case was received to be joined."
    )
    duplicate_distance_m: float = Field(
        default=30.0,
        gt=0,
        le=1000,
        description="Coordinates at most this far apart are the same place.",
    )
