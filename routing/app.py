"""routing's composition root."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from routing.catalogue import Catalogue
from routing.classifier import Classifier, Example, load_examples
from routing.deadlines import calendar
from routing.handlers import Routing, RoutingMetrics, subscribe
from routing.lifecycle import Lifecycle
from routing.settings import RoutingSettings
from routing.store import MongoRoutingStore
from routing.texts import Texts
from schemas import CommandRejected, ComplaintDeadlineAlert, ComplaintStatusChanged
from services.http import service_app
from services.runtime import Runtime


def create_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()
    runtime = Runtime.build("routing", settings)
    store = MongoRoutingStore(runtime.db)

    async def publish(
        topic: str,
        event: ComplaintStatusChanged | CommandRejected | ComplaintDeadlineAlert,
        correlation_id: str | None,
    ) -> None:
        await runtime.publish(topic, event, correlation_id=correlation_id)

    catalogue = Catalogue.load()
    texts = Texts.load()
    classifier = Classifier(
        threshold=settings.classifier_threshold, general_desk=catalogue.general_desk
    )
    routing = Routing(
        store=store,
        catalogue=catalogue,
        classifier=classifier,
        lifecycle=Lifecycle(texts),
        texts=texts,
        publish=publish,
        metrics=RoutingMetrics(runtime.registry),
        calendar=calendar(settings.extra_holidays),
        on_duplicate=lambda topic: runtime.metrics.duplicates.labels("routing", topic).inc(),
    )

    subscribe(runtime, routing)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def prepare() -> None:
            await store.ensure_indexes()
            examples = load_examples() + [
                Example(e.text, e.department) for e in await store.transfer_examples()
            ]
            await asyncio.to_thread(classifier.fit, examples)

        async with runtime.running(
            before_start=prepare,
            background=[
                lambda: routing.relay_forever(settings.relay_interval_seconds),
                lambda: routing.deadlines_forever(settings.deadline_scan_interval_seconds),
            ],
        ):
            yield

    app = service_app(
        name="routing",
        title="Sotong routing",
        description="The complaint lifecycle, department classification and handler assignment.",
        lifespan=lifespan,
        registry=runtime.registry,
        readiness=lambda _: runtime.readiness(),
    )
    app.state.runtime = runtime
    return app
