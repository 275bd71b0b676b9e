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
    relay_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="The outbox relay and the load settler take, after their first pass, "
        "only what was staged longer ago than this (by another replica's batch, which may "
        "have died; their own process's batches are left their complaints however slow): a "
        "batch publishes its own events, and taking them meanwhile repeats its work (0: "
        "take everything else every pass).",
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
    learning_enabled: bool = Field(
        default=True,
        description="Retrain the classifier on transfers (이송) while routing runs, and switch "
        "to the new model when it is not worse (routing/learning.py).",
    )
    learning_min_new_labels: int = Field(
        default=50,
        ge=1,
        description="Transfers that must arrive since the last retrain (or since the model in "
        "use was fitted) before another is tried.",
    )
    learning_min_interval_seconds: float = Field(
        default=1800.0,
        ge=0,
        description="At most one retrain per this many seconds: a fit takes a core for tens "
        "of seconds.",
    )
    learning_check_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often the number of transfers is looked at."
    )
    learning_epsilon: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Accuracy on the shipped held-out split a new model may lose and still "
        "replace the model in use; on recent transfers it may lose none.",
    )
    learning_recent_share: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Share of the new transfers (the newest) held out of the new model's "
        "training to score both models on.",
    )
    learning_lease_seconds: float = Field(
        default=900.0,
        gt=0,
        description="How long one routing process may hold the learning lease while it fits "
        "(the others skip their turn); longer than any fit takes. Released when it ends.",
    )
    learning_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Scheduling niceness of the process that fits a new model.",
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
        default=0.5,
        ge=0,
        le=1,
        description="Text similarity at or above which a complaint at the same place joins "
        "an open case. Measured with `sotong repeat-eval --kind duplicate`: none of the 67 "
        "labelled different problems at the same place linked (a false link gives two "
        "residents' problems one handler and one result; the highest scored 0.47), 9 of "
        "the 62 duplicates found; the others are offered to the resident at filing.",
    )
    duplicate_same_service_threshold: float = Field(
        default=0.48,
        ge=0,
        le=1,
        description="The text similarity instead of duplicate_threshold when the complaint "
        "and the open case were filed with the same service code. Two different service "
        "codes are never linked; a complaint without one is held to duplicate_threshold. "
        "Measured with `sotong repeat-eval --kind duplicate`: 11 of the 62 duplicates "
        "linked (9 by text alone) and still none of the 67 different problems (the highest "
        "with one code scored 0.47).",
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
