"""tracker's composition root: settings → runtime → store → batch subscriber and HTTP API."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Gauge

from schemas import topics
from services.http import service_app
from services.keys import ApiKeys
from services.runtime import Runtime
from tracker import search
from tracker.ingest import Ingest, IngestMetrics, raw_values, records_of
from tracker.routes import build_router
from tracker.settings import TrackerSettings
from tracker.sse import StreamTiming
from tracker.store import TrackerStore


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
        *topics.TRACKED,
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
