"""Consuming in batches on the real embedded Kafka and MongoDB (the batch handler itself
is tested on the in-memory broker and store in tests/unit/test_tracker_batches.py)."""

import asyncio
import json
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker

from schemas import topics
from services.broker import topic_name
from services.runtime import Runtime
from tests.conftest import Backends
from tests.service.test_tracker_api import drop_database, settings
from tests.unit.test_tracker_projection import story
from tracker.app import create_app
from tracker.store import MongoTrackerStore


def sample(runtime: Runtime, name: str, **labels: str) -> float:
    return runtime.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.timeout(120)
async def test_on_the_real_broker_records_arrive_in_batches(
    backends: Backends, unique: str
) -> None:
    config = settings(backends, unique, create_topics=True)
    runtime = Runtime.build("tracker", config)
    store = MongoTrackerStore(runtime.db)
    app = create_app(config, runtime=runtime, store=store)
    kafka = config.kafka
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
