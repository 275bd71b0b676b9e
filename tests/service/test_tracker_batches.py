"""Consuming in batches: stored in bulk, one bad record dead-lettered alone, the rest kept."""

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker, TestKafkaBroker
from pymongo.errors import AutoReconnect

from schemas import ComplaintState, DeadLetter, topics
from services.broker import topic_name
from services.runtime import Runtime
from tests.conftest import Backends
from tests.service.test_tracker_api import Tracker, drop_database, settings
from tests.unit.test_tracker_projection import change, story
from tracker.app import create_app
from tracker.ingest import Ingest
from tracker.projection import TrackedEvent
from tracker.store import TrackerStore


@pytest.fixture
async def tracker(backends: Backends, unique: str) -> AsyncIterator[Tracker]:
    app = create_app(settings(backends, unique, create_topics=False))
    runtime: Runtime = app.state.runtime
    dead_letters: list[DeadLetter] = []

    @runtime.broker.subscriber(topic_name(runtime.settings.kafka, topics.DEAD_LETTER))
    async def on_dead_letter(letter: DeadLetter) -> None:
        dead_letters.append(letter)

    try:
        async with TestKafkaBroker(runtime.broker), app.router.lifespan_context(app):
            yield Tracker(app, runtime, httpx.AsyncClient(), dead_letters)
    finally:
        await drop_database(backends, f"db{unique}")


@dataclass
class Record:
    """What the batch handler reads of an aiokafka ConsumerRecord."""

    topic: str
    value: bytes
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def record(runtime: Runtime, event: TrackedEvent, offset: int = 0) -> Record:
    return Record(
        topic=topic_name(runtime.settings.kafka, topics.OF_EVENT[event.event_type]),
        value=event.model_dump_json().encode(),
        key=event.complaint_id.encode(),
        offset=offset,
    )


def store_of(tracker: Tracker) -> TrackerStore:
    store: TrackerStore = tracker.app.state.store
    return store


def ingest_of(tracker: Tracker) -> Ingest:
    ingest: Ingest = tracker.app.state.ingest
    return ingest


def sample(runtime: Runtime, name: str, **labels: str) -> float:
    return runtime.registry.get_sample_value(name, labels) or 0.0


async def test_one_invalid_record_is_dead_lettered_alone_and_its_batch_is_stored(
    tracker: Tracker,
) -> None:
    lifecycle = topic_name(tracker.runtime.settings.kafka, topics.LIFECYCLE)
    changes = [e for e in story("c-1") if e.event_type == "complaint.status_changed"]
    missing_fields = {"event_type": "complaint.status_changed", "complaint_id": "c-1"}

    await tracker.runtime.broker.publish_batch(
        changes[0].model_dump_json().encode(),
        b"not json at all",
        changes[1].model_dump_json().encode(),
        json.dumps(missing_fields).encode(),
        changes[2].model_dump_json().encode(),
        topic=lifecycle,
    )

    model = await store_of(tracker).read_model("c-1")
    assert model is not None
    assert [entry["sequence"] for entry in model["timeline"]] == [1, 2, 3]
    assert len(tracker.dead_letters) == 2
    bad_json, bad_fields = tracker.dead_letters
    assert base64.b64decode(bad_json.original_value_b64) == b"not json at all"
    assert "json" in bad_json.reason.lower()
    assert {"sequence", "to_state"} <= {e.field.split(".")[-1] for e in bad_fields.errors}
    assert {letter.original_topic for letter in tracker.dead_letters} == {lifecycle}
    assert not any(letter.retryable for letter in tracker.dead_letters)
    stored = sample(
        tracker.runtime, "sotong_tracker_events_stored_total", event_type="complaint.status_changed"
    )
    assert stored == 3


async def test_a_batch_across_topics_with_duplicates_and_a_rival(tracker: Tracker) -> None:
    events = story("c-1")
    rival = change("c-1", 2, ComplaintState.RECEIVED, ComplaintState.REJECTED).model_copy(
        update={"event_id": "rival-2"}
    )
    batch = [record(tracker.runtime, e, offset=n) for n, e in enumerate(events)]
    batch.insert(3, record(tracker.runtime, events[0], 90))  # the filing, twice
    batch.append(record(tracker.runtime, rival, 91))  # the first to claim a sequence wins
    batch.append(record(tracker.runtime, events[5], 92))

    await ingest_of(tracker).handle(batch)
    await ingest_of(tracker).handle(batch[:4])  # redelivered after a crash

    model = await store_of(tracker).read_model("c-1")
    assert model is not None
    assert model["event_count"] == len(events)
    assert model["state"] == "site_check"
    assert [letter.original_offset for letter in tracker.dead_letters] == [91]
    assert tracker.dead_letters[0].reason.startswith("SequenceConflict")
    assert tracker.dead_letters[0].complaint_id == "c-1"
    assert await store_of(tracker).events.count_documents({}) == len(events)
    filed_topic = topic_name(tracker.runtime.settings.kafka, topics.FILED)
    duplicates = sample(
        tracker.runtime, "sotong_duplicate_messages_total", consumer="tracker", topic=filed_topic
    )
    assert duplicates == 3  # once in the first batch, twice in the redelivery


async def test_a_database_outage_retries_the_whole_batch_and_loses_nothing(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(tracker)
    real = store.append_many
    failures = 2

    async def flaky(events: Any, *, stored_at: Any) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise AutoReconnect("mongo is restarting")
        return await real(events, stored_at=stored_at)

    monkeypatch.setattr(store, "append_many", flaky)
    lifecycle = topic_name(tracker.runtime.settings.kafka, topics.LIFECYCLE)
    changes = [e for e in story("c-1") if e.event_type == "complaint.status_changed"]

    await tracker.runtime.broker.publish_batch(
        *(e.model_dump_json().encode() for e in changes), topic=lifecycle
    )

    model = await store.read_model("c-1")
    assert model is not None
    assert len(model["timeline"]) == 4
    assert tracker.dead_letters == []
    assert retries(tracker.runtime) == 2


def retries(runtime: Runtime) -> float:
    """In-place retries of tracker's messages, whatever the topic label says (a batch
    spans topics, so the shared middleware cannot name one)."""
    return sum(
        sample.value
        for metric in runtime.registry.collect()
        for sample in metric.samples
        if sample.name == "sotong_consume_retries_total" and sample.labels["consumer"] == "tracker"
    )


@pytest.mark.timeout(120)
async def test_on_the_real_broker_records_arrive_in_batches(
    backends: Backends, unique: str
) -> None:
    app = create_app(settings(backends, unique, create_topics=True))
    runtime: Runtime = app.state.runtime
    kafka = runtime.settings.kafka
    events = [event for n in range(40) for event in story(f"c-{n}")]
    publisher = KafkaBroker(backends.kafka_bootstrap, enable_idempotence=False)
    try:
        async with app.router.lifespan_context(app), publisher:
            for event in events:
                await publisher.publish(
                    event.model_dump_json().encode(),
                    topic=topic_name(kafka, topics.OF_EVENT[event.event_type]),
                    key=event.complaint_id.encode(),
                )
            await publisher.publish(
                b"{broken", topic=topic_name(kafka, topics.SLA), key=b"c-broken"
            )
            store: TrackerStore = app.state.store
            deadline = time.monotonic() + 60
            while await store.complaints.count_documents({"event_count": 8}) < 40:
                assert time.monotonic() < deadline, "not every complaint was stored in 60 s"
                await asyncio.sleep(0.2)
            letters = await dead_letters(backends, topic_name(kafka, topics.DEAD_LETTER))
    finally:
        await drop_database(backends, f"db{unique}")

    batches = sample(runtime, "sotong_tracker_batch_records_count")
    records = sample(runtime, "sotong_tracker_batch_records_sum")
    assert records == len(events) + 1
    assert batches < records / 2, f"{records} records in {batches} batches"
    assert [letter["original_key"] for letter in letters] == ["c-broken"]
    assert letters[0]["original_topic"] == topic_name(kafka, topics.SLA)
    assert sample(runtime, "sotong_tracker_events_stored_total", event_type="complaint.filed") == 40


async def dead_letters(backends: Backends, topic: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=backends.kafka_bootstrap,
        group_id=f"probe-{time.monotonic_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(json.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return found
