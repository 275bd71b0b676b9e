"""Typed settings. Only each service's ``app.py`` (and the CLI) builds these."""

import os
from pathlib import Path
from typing import Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SECRETS_DIR_VARIABLE = "SOTONG_SECRETS_DIR"
"""A directory of secret files, one per setting, named as its variable (compose secrets at
/run/secrets): a file is read where the variable is unset. No directory there, no files."""


class Settings(BaseSettings):
    """Every Sotong settings class: the environment first, then ``SOTONG_SECRETS_DIR``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        directory = os.environ.get(SECRETS_DIR_VARIABLE)
        # absent where a service is given no secrets (compose mounts /run/secrets only then)
        if not directory or not Path(directory).is_dir():
            return init_settings, env_settings, dotenv_settings, file_secret_settings
        secrets = SecretsSettingsSource(settings_cls, secrets_dir=directory)
        return init_settings, env_settings, dotenv_settings, secrets


class KafkaSettings(Settings):
    """Where the broker is. Nothing here says which implementation answers."""

    model_config = SettingsConfigDict(env_prefix="SOTONG_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:19092"
    # On for Apache Kafka. The embedded broker (Tansu) rejects InitProducerId, so the
    # local stack and the test fixtures turn it off explicitly.
    idempotent_producer: bool = True
    create_topics: bool = True
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    topic_prefix: str = Field(default="", description="Prepended to every topic name.")
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="A consumer silent this long leaves its group and its partitions move. "
        "The embedded broker also holds a new member's join for half of it, so the local "
        "stack and the tests set it shorter.",
    )
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    replay_after_broker_loss: bool = Field(
        default=False,
        description="Publish retained events again when the broker is not the one last "
        "published to (services.replay). On for the memory-only embedded broker (the local "
        "stack sets it); off for Apache Kafka, whose log is durable.",
    )
    replay_window_seconds: float = Field(
        default=86_400,
        gt=0,
        description="How long producers keep what they published (a TTL index) and how far "
        "back a replay reaches.",
    )
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Self:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        return self


class MongoSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="SOTONG_MONGO_", extra="ignore")

    uri: SecretStr = SecretStr("mongodb://127.0.0.1:27117/?directConnection=true")
    database: str = "sotong"


class RetrySettings(Settings):
    """How a consumer retries a message whose dependency is unavailable: ``max_attempts``
    in place with capped backoff, then the offset is left uncommitted and the message is
    consumed again; a retryable failure is never dead-lettered."""

    model_config = SettingsConfigDict(env_prefix="SOTONG_RETRY_", extra="ignore")

    max_attempts: int = Field(default=6, ge=1)
    initial_backoff_seconds: float = Field(default=0.2, gt=0)
    max_backoff_seconds: float = Field(default=5.0, gt=0)


class SigningSettings(Settings):
    """``SOTONG_COMMAND_SIGNING_KEYS``: key id → secret, as JSON; the first signs."""

    model_config = SettingsConfigDict(env_prefix="SOTONG_COMMAND_SIGNING_", extra="ignore")

    keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Key id → secret (at least 32 characters), as JSON. intake signs with "
        "the first; routing accepts any. Without keys nothing is signed or checked.",
    )

    @field_validator("keys")
    @classmethod
    def _strong(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, secret in keys.items():
            if not key_id or ":" in key_id:
                raise ValueError(f"key id {key_id!r}: must be non-empty and without ':'")
            if len(secret.get_secret_value()) < 32:
                raise ValueError(f"key {key_id!r}: at least 32 characters")
        return keys


class TelemetrySettings(Settings):
    """Where traces go. Off unless an endpoint is set, by our variable or the standard one."""

    model_config = SettingsConfigDict(
        env_prefix="SOTONG_OTEL_", extra="ignore", populate_by_name=True
    )

    exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SOTONG_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
        description="OTLP/HTTP base address (e.g. http://jaeger:4318); spans go to its "
        "/v1/traces. Unset: no tracing at all.",
    )
    sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces kept; a trace started upstream keeps its decision.",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.exporter_otlp_endpoint)


class HttpServerSettings(Settings):
    """The HTTP server's own bounds (``SOTONG_HTTP_*``), the same for every service and
    the portal: what is refused before any application runs."""

    model_config = SettingsConfigDict(env_prefix="SOTONG_HTTP_", extra="ignore")

    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest request line and headers together; beyond it the answer is 431.",
    )
    linger_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="After refusing a request the client is still sending (413, 431), how "
        "much more of it is read and discarded so that the client reads the answer instead "
        "of a connection reset; beyond it the connection is closed. Above the largest body "
        "any route takes (intake's photos, 10 MiB), so a photo just over it is answered too.",
    )
    linger_seconds: float = Field(
        default=10.0, gt=0, description="How long such a refused request is read at most."
    )


class ServiceSettings(Settings):
    """Common to every service; each service subclasses it with its own env prefix."""

    model_config = SettingsConfigDict(extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body accepted; beyond it the answer is 413.",
    )
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
