"""tracker's composition root: settings → runtime → store → batch subscriber and HTTP API."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Gauge
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from intake.keys import ApiKeys
from schemas import topics
from services.http import service_app
from services.runtime import Runtime
from services.settings import ServiceSettings
from tracker import search
from tracker.ingest import Ingest, IngestMetrics, raw_values, records_of
from tracker.routes import build_router
from tracker.sse import StreamTiming
from tracker.store import TrackerStore

TOPIC_OF = {
    "complaint.filed": topics.FILED,
    "complaint.status_changed": topics.LIFECYCLE,
    "complaint.command_rejected": topics.REJECTIONS,
    "notification.outcome": topics.NOTIFICATIONS,
    "complaint.deadline_alert": topics.SLA,
}


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
        description="Staff name → API key, as JSON: search over every department. "
        "Empty: only department keys search, each its own complaints.",
    )
    batch_max_records: int = Field(
        default=500, ge=1, le=10_000, description="Records per consumed batch, at most."
    )
    batch_timeout_ms: int = Field(
        default=200, ge=1, description="How long a batch waits to fill before it is stored."
    )
    sse_poll_seconds: float = Field(
        default=0.5, gt=0, description="How often a live timeline looks for new entries."
    )
    sse_keepalive_seconds: float = Field(
        default=15.0, gt=0, description="A comment line after this long without an entry."
    )


def create_app(settings: TrackerSettings | None = None) -> FastAPI:
    settings = settings or TrackerSettings()
    runtime = Runtime.build("tracker", settings)
    store = TrackerStore(runtime.db)
    ingest = Ingest(
        service=runtime.service,
        store=store,
        dead_letter=runtime.dead_letters.dead_letter,
        duplicates=runtime.metrics.duplicates,
        metrics=IngestMetrics(runtime.registry),
    )

    async def on_batch(message: KafkaMessage) -> None:
        await ingest.handle(records_of(message))

    # Registered by call: runtime.subscriber is untyped, and a decorator would erase the
    # handler's type under mypy --strict.
    runtime.subscriber(
        *TOPIC_OF.values(),
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        decoder=raw_values,
    )(on_batch)

    async def before_start() -> None:
        await store.ensure_indexes()
        await asyncio.to_thread(search.warm_up)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(before_start=before_start):
            yield

    app = service_app(
        name="tracker",
        title="Sotong tracker",
        description="Follow a complaint (민원): residents their own, departments their queue, "
        'staff by search, ops by statistics. Errors are `{"error": {"code", "message"}}`.',
        lifespan=lifespan,
        registry=runtime.registry,
        readiness=lambda _: runtime.readiness(),
    )
    app.state.runtime = runtime
    app.state.store = store
    app.state.ingest = ingest
    app.include_router(
        build_router(
            store=store,
            departments=ApiKeys(settings.api_keys),
            staff=ApiKeys(settings.staff_api_keys),
            timing=StreamTiming(settings.sse_poll_seconds, settings.sse_keepalive_seconds),
            streams=Gauge(
                "sotong_tracker_live_streams",
                "Open Server-Sent Events timeline streams.",
                registry=runtime.registry,
            ),
        )
    )
    return app
