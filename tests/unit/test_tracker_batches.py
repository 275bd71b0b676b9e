"""Consuming in batches: stored in bulk, one bad record dead-lettered alone, the rest kept.

On the in-memory broker and store; tests/service/test_tracker_batches.py runs batches on
the real embedded Kafka and MongoDB.
"""

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry
from pymongo.errors import AutoReconnect

from schemas import ComplaintState, topics
from services.broker import topic_name
from tests.unit.test_tracker_api import Tracker, running
from tests.unit.test_tracker_projection import change, story
from tracker.handlers import Ingest, IngestMetrics
from tracker.projection import TrackedEvent


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    async with running() as tracker:
        yield tracker


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


def record(tracker: Tracker, event: TrackedEvent, offset: int = 0) -> Record:
    return Record(
        topic=topic_name(tracker.runtime.settings.kafka, topics.OF_EVENT[event.event_type]),
        value=event.model_dump_json().encode(),
        key=event.complaint_id.encode(),
        offset=offset,
    )


def ingest_of(tracker: Tracker) -> Ingest:
    """A batch handler wired as the app wires its own, for a batch no topic could carry."""
    return Ingest(
        service="tracker",
        store=tracker.store,
        dead_letter=tracker.runtime.dead_letters.dead_letter,
        duplicates=tracker.runtime.metrics.duplicates,
        metrics=IngestMetrics(CollectorRegistry()),
    )


async def test_one_invalid_record_is_dead_lettered_alone_and_its_batch_is_stored(
    tracker: Tracker,
) -> None:
    await tracker.deliver(story("c-1")[0])  # the filing: a read model exists from then on
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

    model = await tracker.store.read_model("c-1")
    assert model is not None
    assert [entry.sequence for entry in model.timeline] == [1, 2, 3]
    assert len(tracker.dead_letters) == 2
    bad_json, bad_fields = tracker.dead_letters
    assert base64.b64decode(bad_json.original_value_b64) == b"not json at all"
    assert "json" in bad_json.reason.lower()
    assert {"sequence", "to_state"} <= {e.field.split(".")[-1] for e in bad_fields.errors}
    assert {letter.original_topic for letter in tracker.dead_letters} == {lifecycle}
    assert not any(letter.retryable for letter in tracker.dead_letters)
    assert tracker.stored("complaint.status_changed") == 3


async def test_a_batch_across_topics_with_duplicates_and_a_rival(tracker: Tracker) -> None:
    events = story("c-1")
    rival = change("c-1", 2, ComplaintState.RECEIVED, ComplaintState.REJECTED).model_copy(
        update={"event_id": "rival-2"}
    )
    batch = [record(tracker, e, offset=n) for n, e in enumerate(events)]
    batch.insert(3, record(tracker, events[0], 90))  # the filing, twice
    batch.append(record(tracker, rival, 91))  # the first to claim a sequence wins
    batch.append(record(tracker, events[5], 92))
    ingest = ingest_of(tracker)

    await ingest.handle(batch)
    await ingest.handle(batch[:4])  # redelivered after a crash

    model = await tracker.store.read_model("c-1")
    assert model is not None
    assert model.event_count == len(events)
    assert model.state == "site_check"
    assert [letter.original_offset for letter in tracker.dead_letters] == [91]
    assert tracker.dead_letters[0].reason.startswith("SequenceConflict")
    assert tracker.dead_letters[0].complaint_id == "c-1"
    assert len(tracker.store.events) == len(events)
    filed_topic = topic_name(tracker.runtime.settings.kafka, topics.FILED)
    duplicates = tracker.sample(
        "sotong_duplicate_messages_total", consumer="tracker", topic=filed_topic
    )
    assert duplicates == 3  # once in the first batch, twice in the redelivery


async def test_a_database_outage_retries_the_whole_batch_and_loses_nothing(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    await tracker.deliver(story("c-1")[0])
    store = tracker.store
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
    assert len(model.timeline) == 4
    assert tracker.dead_letters == []
    assert retries(tracker) == 2


def retries(tracker: Tracker) -> float:
    """In-place retries of tracker's messages, whatever the topic label says (a batch
    spans topics, so the shared middleware cannot name one)."""
    return sum(
        sample.value
        for metric in tracker.runtime.registry.collect()
        for sample in metric.samples
        if sample.name == "sotong_consume_retries_total" and sample.labels["consumer"] == "tracker"
    )


async def test_events_are_stamped_by_the_clock_and_rejects_go_to_the_dead_letter_given() -> None:
    stamp = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
    rejected: list[tuple[bytes, BaseException]] = []

    async def dead_letter(message: StreamMessage[Any], exc: BaseException, attempts: int) -> None:
        rejected.append((message.body, exc))

    async with running(clock=lambda: stamp, dead_letter=dead_letter) as tracker:
        lifecycle = topic_name(tracker.runtime.settings.kafka, topics.LIFECYCLE)
        event = story("c-1")[2]
        await tracker.runtime.broker.publish_batch(
            event.model_dump_json().encode(), b"{broken", topic=lifecycle
        )

    assert [doc["stored_at"] for doc in tracker.store.events.values()] == [stamp]
    assert [body for body, _ in rejected] == [b"{broken"]
    assert tracker.dead_letters == []
