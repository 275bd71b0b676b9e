"""What every service is made of, built from settings in one place (the composition root).

``Runtime.build`` only constructs objects; connections open in ``Runtime.running``,
which each service's FastAPI lifespan enters.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services import broker as broker_kit
from services import subscriptions, telemetry
from services.archive import DeadLetterArchive
from services.broker import DeadLetters, KeyedEvent
from services.http import service_app
from services.metrics import ConsumerLag, KitMetrics, MongoCommandMetrics
from services.mongo import Document, database, make_client, ping
from services.settings import ServiceSettings


class Publish(Protocol):
    """What a service's handlers call to publish: ``Runtime.publish``, or a fake in tests."""

    async def __call__(
        self, topic: str, event: KeyedEvent, correlation_id: str | None = None
    ) -> None: ...


Clock = Callable[[], datetime]
"""The time now, aware (UTC): ``schemas.events.utcnow``, or a fixed clock in tests."""


@dataclass
class Runtime:
    service: str
    settings: ServiceSettings
    registry: CollectorRegistry
    metrics: KitMetrics
    broker: KafkaBroker
    dead_letters: DeadLetters
    mongo: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    lag: ConsumerLag | None = None
    tracer_provider: TracerProvider | None = None
    started: bool = field(default=False)

    @classmethod
    def build(
        cls,
        service: str,
        settings: ServiceSettings,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> "Runtime":
        """``tracer_provider`` defaults to the one ``settings.telemetry`` asks for (none
        when tracing is off); a test passes its own, exporting to memory."""
        if tracer_provider is None:
            tracer_provider = telemetry.provider(service, settings.telemetry)
            if tracer_provider is not None:
                telemetry.install_process_wide(tracer_provider)
        registry = CollectorRegistry()
        metrics = KitMetrics(registry)
        broker, dead_letters = broker_kit.make_broker(
            service=service,
            kafka=settings.kafka,
            retry=settings.retry,
            registry=registry,
            metrics=metrics,
            tracer_provider=tracer_provider,
        )
        mongo = make_client(
            settings.mongo,
            app_name=service,
            listeners=[MongoCommandMetrics(registry), *telemetry.mongo_listeners(tracer_provider)],
        )
        db = database(mongo, settings.mongo)
        dead_letters.archive = DeadLetterArchive(db).keep
        return cls(
            service=service,
            settings=settings,
            registry=registry,
            metrics=metrics,
            broker=broker,
            dead_letters=dead_letters,
            mongo=mongo,
            db=db,
            lag=ConsumerLag(registry),
            tracer_provider=tracer_provider,
        )

    @property
    def source(self) -> str:
        return f"/sotong/{self.service}"

    def subscriber(
        self, *topic_names: str, group: str | None = None, **kwargs: object
    ) -> Callable[[Callable[..., Awaitable[None]]], object]:
        """An at-least-once subscriber. Each gets its own consumer group, named
        ``sotong-SERVICE`` or ``sotong-SERVICE-GROUP``, so scaling out a service shares
        each topic's partitions between its processes."""
        group_id = f"sotong-{self.service}" + (f"-{group}" if group else "")
        decorator: Callable[[Callable[..., Awaitable[None]]], object] = broker_kit.subscriber(
            self.broker, self.settings.kafka, *topic_names, group_id=group_id, **kwargs
        )
        return decorator

    async def publish(
        self, topic: str, event: KeyedEvent, correlation_id: str | None = None
    ) -> None:
        await broker_kit.publish_event(
            self.broker,
            self.settings.kafka,
            topic,
            event,
            source=self.source,
            correlation_id=correlation_id,
        )

    def http_app(
        self,
        *,
        description: str,
        lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    ) -> FastAPI:
        """The service's HTTP app: health, readiness from this runtime's broker and
        database, metrics on its registry (``app.state.runtime`` for tools that read it)."""
        app = service_app(
            name=self.service,
            title=f"Sotong {self.service}",
            description=description,
            lifespan=lifespan,
            registry=self.registry,
            readiness=lambda _: self.readiness(),
            max_request_bytes=self.settings.max_request_bytes,
        )
        app.state.runtime = self
        telemetry.instrument_http(app, self.tracer_provider)
        return app

    async def readiness(self) -> dict[str, bool]:
        kafka_ok = self.started and await self.broker.ping(timeout=2.0)
        return {"kafka": bool(kafka_ok), "mongodb": await ping(self.mongo)}

    @asynccontextmanager
    async def running(
        self,
        *,
        before_start: Callable[[], Awaitable[None]] | None = None,
        background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    ) -> AsyncIterator[None]:
        """Topics and indexes first, then the subscribers and the service's background
        loops (outbox relays, watchers); the reverse on the way out."""
        await broker_kit.ensure_topics(self.settings.kafka)
        if before_start is not None:
            await before_start()
        await subscriptions.record(self.db, self.service, self.broker, datetime.now(UTC))
        await self.broker.start()
        self.started = True
        lag = self.lag or ConsumerLag(self.registry)
        tasks = [asyncio.create_task(lag.forever(self.broker))]
        tasks += [asyncio.create_task(loop()) for loop in background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.started = False
            await self.broker.stop()
            await self.mongo.close()
            if self.tracer_provider is not None:  # the last spans leave before the process
                await asyncio.to_thread(self.tracer_provider.force_flush, 5_000)
