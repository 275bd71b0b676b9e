"""notifier's composition root: settings → runtime → store, channels, templates → subscribers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from faststream.kafka.annotations import KafkaMessage
from pydantic_settings import SettingsConfigDict

from notifier.delivery import Delivery
from notifier.metrics import NotifierMetrics
from notifier.outbox import OutboxChannel
from notifier.store import NotifierStore
from notifier.templates import Catalogue
from schemas import ComplaintFiled, ComplaintStatusChanged, topics
from services.broker import topic_name
from services.http import service_app
from services.runtime import Runtime
from services.settings import PROJECT_ROOT, ServiceSettings


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOTONG_NOTIFIER_", extra="ignore")

    http_port: int = 8004
    outbox_path: Path = PROJECT_ROOT / "var" / "outbox.jsonl"


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    runtime = Runtime.build("notifier", settings)
    store = NotifierStore(runtime.db)
    delivery = Delivery(
        store=store,
        channels=[OutboxChannel(settings.outbox_path)],
        catalogue=Catalogue.load(),
        publish=runtime.publish,
        metrics=NotifierMetrics(
            runtime.metrics,
            consumer=runtime.service,
            lifecycle_topic=topic_name(settings.kafka, topics.LIFECYCLE),
        ),
    )

    # Registered by call rather than as decorators: Runtime.subscriber is typed Any, and
    # mypy --strict refuses an untyped decorator.
    async def on_filed(filed: ComplaintFiled) -> None:
        await delivery.remember_recipient(filed)

    async def on_status_changed(event: ComplaintStatusChanged, message: KafkaMessage) -> None:
        await delivery.notify(event, correlation_id=message.correlation_id)

    runtime.subscriber(topics.FILED, group="recipients")(on_filed)
    runtime.subscriber(topics.LIFECYCLE, group="lifecycle")(on_status_changed)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(before_start=store.ensure_indexes):
            yield

    async def readiness(_: FastAPI) -> dict[str, bool]:
        return await runtime.readiness()

    app = service_app(
        name="notifier",
        title="Sotong notifier",
        description="Tells residents how their complaint (민원) is going: one message per step.",
        lifespan=lifespan,
        registry=runtime.registry,
        readiness=readiness,
    )
    app.state.runtime = runtime
    return app
