"""tracker's composition root: settings → runtime → store → batch subscriber and HTTP API.

The only module that reads settings. Every collaborator the handlers call can be passed
in (tests pass an in-memory store, a fixed clock, a recording dead letter); the defaults
are the real ones.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI
from prometheus_client import Gauge

from schemas import topics
from schemas.events import utcnow
from services.broker import raw_values
from services.keys import ApiKeys
from services.ratelimit import EndUsers, Limits, Rate, RateLimitMetrics, RouteLimit, RouteLimits
from services.runtime import Clock, Runtime
from tracker import search
from tracker.handlers import (
    Ingest,
    IngestMetrics,
    PublishDeadLetter,
    StatsLimits,
    StreamCaps,
    build_router,
    similar_routes,
)
from tracker.settings import TrackerSettings
from tracker.similar import SimilarPolicy
from tracker.sse import StreamTiming, TimelineHub, stream_tickets
from tracker.store import MongoTrackerStore, TrackerStore

RESIDENT_ROUTES = (
    "/v1/complaints/{complaint_id}",
    "/v1/complaints/{complaint_id}/events",
    "/v1/residents/me/complaints",
)
"""What a stranger reaches without a department or staff key: limited per client."""


def public_limits(settings: TrackerSettings, metrics: RateLimitMetrics) -> RouteLimits:
    """Per caller (an address, or a credentialed channel's end user): the resident's
    endpoints share one budget, the similar-complaints lookup has its own."""
    keys = settings.rate_limit_max_keys
    resident = RouteLimit(
        "client", Limits.of([Rate(settings.public_per_minute, 60)], max_keys=keys)
    )
    similar = RouteLimit(
        "similar",
        Limits.of([Rate(settings.similar_per_minute, 60)], max_keys=keys),
        what="lookups",
    )
    return RouteLimits(
        {("GET", path): resident for path in RESIDENT_ROUTES}
        | {("GET", "/v1/complaints/similar"): similar},
        end_users=EndUsers(ApiKeys(settings.channel_keys)),
        metrics=metrics,
    )


def create_app(
    settings: TrackerSettings | None = None,
    *,
    runtime: Runtime | None = None,
    store: TrackerStore | None = None,
    clock: Clock | None = None,
    dead_letter: PublishDeadLetter | None = None,
) -> FastAPI:
    """The tracker service. ``runtime`` (broker, metrics registry, Mongo client) is built
    from ``settings`` unless given; ``store`` defaults to MongoDB through it,
    ``dead_letter`` to the kit's dead-letter topic, ``clock`` to the wall clock."""
    settings = settings or TrackerSettings()
    runtime = runtime or Runtime.build("tracker", settings)
    store = store or MongoTrackerStore(runtime.db)
    ingest = Ingest(
        service=runtime.service,
        store=store,
        dead_letter=dead_letter or runtime.dead_letters.dead_letter,
        duplicates=runtime.metrics.duplicates,
        metrics=IngestMetrics(runtime.registry),
        clock=clock or utcnow,
    )
    # Registered by call: runtime.subscriber is untyped, and a decorator would erase the
    # handler's type under mypy --strict.
    runtime.subscriber(
        *topics.TRACKED,
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        decoder=raw_values,
    )(ingest.on_batch)

    async def before_start() -> None:
        await store.ensure_indexes()
        await asyncio.to_thread(search.warm_up)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(before_start=before_start):
            yield

    app = runtime.http_app(
        description="Follow a complaint (민원): residents their own, departments their queue, "
        'staff by search, ops by statistics. Errors are `{"error": {"code", "message"}}`.',
        lifespan=lifespan,
    )
    limits = public_limits(settings, RateLimitMetrics(runtime.registry, "tracker"))
    app.include_router(
        similar_routes(
            store=store,
            policy=SimilarPolicy(
                threshold=settings.similar_threshold,
                window=timedelta(days=settings.similar_window_days),
            ),
            clock=clock or utcnow,
        ),
        dependencies=[Depends(limits)],
    )
    app.include_router(
        build_router(
            store=store,
            departments=ApiKeys(settings.api_keys),
            staff=ApiKeys(settings.staff_api_keys),
            timing=StreamTiming(
                settings.sse_poll_seconds, settings.sse_keepalive_seconds, settings.sse_max_seconds
            ),
            hub=TimelineHub(store.timeline, poll_seconds=settings.sse_poll_seconds),
            stream_caps=StreamCaps(settings.sse_max_per_complaint, settings.sse_max_streams),
            tickets=stream_tickets(
                settings.stream_ticket_key,
                lifetime=timedelta(seconds=settings.stream_ticket_seconds),
                clock=clock or utcnow,
            ),
            limits=StatsLimits(
                settings.stats_min_cell, settings.stats_default_days, settings.stats_max_days
            ),
            streams=Gauge(
                "sotong_tracker_live_streams",
                "Open Server-Sent Events timeline streams.",
                registry=runtime.registry,
            ),
        ),
        dependencies=[Depends(limits)],
    )
    return app
