"""tracker's composition root: settings → runtime → store → Kafka subscriber and HTTP API."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query
from prometheus_client import Counter
from pydantic_settings import SettingsConfigDict

from intake.filing import token_matches
from schemas import topics
from schemas.events import utcnow
from services.broker import topic_name
from services.http import ApiError, service_app
from services.runtime import Runtime
from services.settings import ServiceSettings
from tracker.projection import TrackedEvent
from tracker.store import TrackerStore
from tracker.view import ComplaintView, public_view

log = logging.getLogger("sotong.tracker")

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


class Tracker:
    """Records every event once and keeps each complaint's read model rebuilt from them."""

    def __init__(self, runtime: Runtime, store: TrackerStore) -> None:
        self.runtime = runtime
        self.store = store
        self.stored_total = Counter(
            "sotong_tracker_events_stored_total",
            "Events stored for the first time, by event type.",
            ["event_type"],
            registry=runtime.registry,
        )

    async def track(self, event: TrackedEvent) -> None:
        """Refresh the read model even for a duplicate: the earlier delivery may have
        stored the event and then died before the read model was written."""
        if await self.store.append(event, stored_at=utcnow()):
            self.stored_total.labels(event.event_type).inc()
        else:
            topic = topic_name(self.runtime.settings.kafka, TOPIC_OF[event.event_type])
            self.runtime.metrics.duplicates.labels(self.runtime.service, topic).inc()
            log.info("duplicate event", extra={"event_id": event.event_id})
        await self.store.refresh(event.complaint_id)


def not_found() -> ApiError:
    return ApiError(404, "not_found", "No complaint matches this id and tracking token.")


def create_app(settings: TrackerSettings | None = None) -> FastAPI:
    settings = settings or TrackerSettings()
    runtime = Runtime.build("tracker", settings)
    store = TrackerStore(runtime.db)
    tracker = Tracker(runtime, store)

    async def on_event(event: TrackedEvent) -> None:
        await tracker.track(event)

    # Registered by call: runtime.subscriber is untyped, and a decorator would erase the
    # handler's type under mypy --strict.
    runtime.subscriber(*TOPIC_OF.values())(on_event)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(before_start=store.ensure_indexes):
            yield

    async def readiness(_: FastAPI) -> dict[str, bool]:
        return await runtime.readiness()

    app = service_app(
        name="tracker",
        title="Sotong tracker",
        description="Follow a complaint (민원): its state, timeline and notifications.",
        lifespan=lifespan,
        registry=runtime.registry,
        readiness=readiness,
    )
    app.state.runtime = runtime

    @app.get(
        "/v1/complaints/{complaint_id}",
        response_model=ComplaintView,
        responses={404: {"description": "Unknown complaint or wrong tracking token."}},
    )
    async def get_complaint(
        complaint_id: str,
        token: Annotated[str | None, Query(description="The tracking token from filing.")] = None,
    ) -> ComplaintView:
        """A complaint as its resident may see it. Every failure is the same 404, so the
        answer never reveals whether a complaint exists."""
        model = await store.read_model(complaint_id)
        if model is None or not token_matches(token, model.get("tracking_token_hash")):
            raise not_found()
        return public_view(model)

    return app
