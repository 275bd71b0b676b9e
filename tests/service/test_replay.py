"""A producer meeting a broker that is not the one it last published to publishes its
retained events again (``services.replay``), on the real embedded broker and database."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ComplaintFiled, topics
from services.broker import KeyedEvent
from services.mongo import Document
from services.replay import EPOCHS, PublishedLog, Replayer, chained
from tests.conftest import Backends
from tests.contract.test_intake_store import filed
from tests.fakes.intake import RecordingPublish

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
RETAINED = [filed(at=NOW - timedelta(hours=h)) for h in (30, 3, 2, 1)]


def parse_filed(text: str) -> KeyedEvent:
    return ComplaintFiled.model_validate_json(text)


async def source(since: datetime) -> AsyncIterator[tuple[str, KeyedEvent, str | None]]:
    for event in RETAINED:
        if event.occurred_at >= since:
            yield topics.FILED, event, event.event_id


def replayer(
    backends: Backends,
    db: AsyncDatabase[Document],
    publish: RecordingPublish,
    *,
    on: bool,
    registry: CollectorRegistry | None = None,
) -> Replayer:
    kafka = backends.kafka(f"replay{uuid.uuid4().hex[:8]}.").model_copy(
        update={"replay_after_broker_loss": on, "replay_window_seconds": 86_400}
    )
    return Replayer(
        service="intake",
        kafka=kafka,
        db=db,
        source=source,
        publish=publish,
        clock=lambda: NOW,
        registry=registry or CollectorRegistry(),
    )


async def test_the_same_broker_replays_nothing_and_a_lost_one_gets_the_window_in_order(
    backends: Backends, mongo_db: AsyncDatabase[Document]
) -> None:
    publish = RecordingPublish()
    first = replayer(backends, mongo_db, publish, on=True)
    try:
        assert await first.check() == 0  # nothing recorded yet: this broker is recorded
        assert await first.check() == 0
        cluster = await first.cluster_id()
    finally:
        await first.close()
    assert publish.sent == []
    # the broker this service last published to is gone (a Tansu restart: a new id)
    await mongo_db[EPOCHS].update_one({"_id": "intake"}, {"$set": {"cluster_id": "lost"}})
    registry = CollectorRegistry()
    second = replayer(backends, mongo_db, publish, on=True, registry=registry)
    try:
        assert await second.check() == 3
        assert await second.check() == 0  # recorded now: once only
    finally:
        await second.close()
    assert [s.event for s in publish.sent] == RETAINED[1:]  # the window, oldest first
    assert {s.topic for s in publish.sent} == {topics.FILED}
    doc = await mongo_db[EPOCHS].find_one({"_id": "intake"})
    assert doc is not None
    assert doc["cluster_id"] == cluster
    replayed = registry.get_sample_value("sotong_replayed_events_total", {"topic": topics.FILED})
    assert replayed == 3


async def test_with_replay_off_nothing_is_checked_or_recorded(
    backends: Backends, mongo_db: AsyncDatabase[Document]
) -> None:
    publish = RecordingPublish()
    off = replayer(backends, mongo_db, publish, on=False)
    assert await off.check() == 0
    assert off.admin is None
    assert await mongo_db[EPOCHS].find_one({"_id": "intake"}) is None
    assert publish.sent == []


async def test_a_published_log_keeps_what_it_is_told_to_once_in_order_under_a_ttl(
    mongo_db: AsyncDatabase[Document],
) -> None:
    publish = RecordingPublish()
    log = PublishedLog(mongo_db, "kept", timedelta(hours=2), {topics.FILED: parse_filed})
    retaining = log.retaining(publish)
    for event in RETAINED[1:]:
        await retaining(topics.FILED, event, event.event_id)
    await retaining(topics.FILED, RETAINED[1], RETAINED[1].event_id)  # published twice
    await retaining(topics.SLA, RETAINED[0], None)  # not a topic this log keeps
    assert len(publish.sent) == 5  # everything is published
    kept = [item async for item in log.since(datetime.now(UTC) - timedelta(minutes=1))]
    assert [(t, e, c) for t, e, c in kept] == [(topics.FILED, e, e.event_id) for e in RETAINED[1:]]
    indexes = await log.col.index_information()
    assert indexes["published_ttl"]["expireAfterSeconds"] == 7_200
    both = chained(source, log.since)
    assert len([x async for x in both(NOW - timedelta(days=1))]) == 3 + 3
