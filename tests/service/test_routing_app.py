"""The composition root on the real embedded Kafka and MongoDB, handed its collaborators:
the session's fitted classifier (start-up must not fit it again), a Mongo store, a
recording publish and a fixed clock."""

import asyncio
from collections.abc import Callable

import pytest
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from routing.app import create_app
from routing.classifier import Classifier, Example
from routing.settings import RoutingSettings
from routing.store import MongoRoutingStore
from schemas import ComplaintFiled, topics
from schemas.commands import AnyCommand, StartSiteCheck
from services.broker import publish_event
from services.mongo import Document
from tests.conftest import FAST_RETRY, Backends
from tests.fakes.routing import RecordingPublish, SettableClock
from tests.service.test_routing_service import DEPT, filed


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(600):  # 30 s
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_app_routes_with_the_collaborators_it_is_given(
    backends: Backends,
    mongo_db: AsyncDatabase[Document],
    trained_classifier: Classifier,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refit(_: list[Example]) -> Classifier:
        raise AssertionError("start-up fitted a classifier that was handed in fitted")

    monkeypatch.setattr(trained_classifier, "fit", refit)
    settings = RoutingSettings(
        kafka=backends.kafka(f"r{unique}."),
        mongo=backends.mongo(mongo_db.name),
        retry=FAST_RETRY,
        http_port=0,
        relay_interval_seconds=600,
        deadline_scan_interval_seconds=600,
    )
    store, recorder, clock = MongoRoutingStore(mongo_db), RecordingPublish(), SettableClock()
    app = create_app(
        settings, store=store, publish=recorder, clock=clock, classifier=trained_classifier
    )
    producer = KafkaBroker(backends.kafka_bootstrap)

    async def send(topic: str, message: ComplaintFiled | AnyCommand) -> None:
        await publish_event(producer, settings.kafka, topic, message, source="/sotong/test")

    async with app.router.lifespan_context(app):
        await producer.connect()
        try:
            await send(topics.FILED, filed("app1"))
            await until(lambda: len(recorder.lifecycle("app1")) == 3, "filed → 3 events")
            await send(topics.COMMANDS, StartSiteCheck(actor=DEPT, complaint_id="app1"))
            await until(lambda: len(recorder.lifecycle("app1")) == 4, "command → 1 event")
        finally:
            await producer.stop()

    events = recorder.lifecycle("app1")
    assert [e.to_state.value for e in events] == [
        "received",
        "assigned",
        "handler_assigned",
        "site_check",
    ]
    assert events[1].department == DEPT
    assert {e.occurred_at for e in events} == {clock.now}
    stored = await store.get("app1")
    assert stored is not None
    assert (stored.state.value, stored.outbox) == ("site_check", ())
