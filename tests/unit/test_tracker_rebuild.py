"""Rebuilding from the event store gives back what the batch handler maintained (a read
model for each filed complaint, none for the others), on the in-memory store
(tests/service/test_tracker_rebuild.py runs the same on MongoDB, with its own
concurrency)."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from schemas import ComplaintState, topics
from tests.fakes.tracker import InMemoryTrackerStore
from tests.unit.test_tracker_projection import change, histories
from tracker.handlers import Ingest, IngestMetrics
from tracker.projection import TrackedEvent
from tracker.rebuild import rebuild
from tracker.store import TrackerStore


@dataclass
class Record:
    topic: str
    value: bytes
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Consumer:
    """tracker's batch path without Kafka: what each consumer of a group would run."""

    def __init__(self, store: TrackerStore) -> None:
        self.rejected: list[Record] = []
        registry = CollectorRegistry()
        self.ingest = Ingest(
            service="tracker",
            store=store,
            dead_letter=self._dead_letter,
            duplicates=Counter("dup", "duplicates", ["consumer", "topic"], registry=registry),
            metrics=IngestMetrics(registry),
        )

    async def _dead_letter(self, message: Any, exc: BaseException, attempts: int) -> None:
        self.rejected.append(message.raw_message)

    async def deliver(self, batches: list[list[TrackedEvent]]) -> None:
        for batch in batches:
            await self.ingest.handle(
                [
                    Record(topics.OF_EVENT[e.event_type], e.model_dump_json().encode(), offset=n)
                    for n, e in enumerate(batch)
                ]
            )


def chunks(draw: st.DrawFn, events: list[TrackedEvent], max_size: int) -> list[list[TrackedEvent]]:
    batches: list[list[TrackedEvent]] = []
    rest = events
    while rest:
        size = draw(st.integers(1, max_size))
        batches.append(rest[:size])
        rest = rest[size:]
    return batches


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[TrackedEvent], list[list[list[TrackedEvent]]]]:
    """A district's history and how two consumers of one group received it: any order
    across topics and complaints, redeliveries, rivals for a sequence, any batch sizes."""
    events = [
        event
        for n in range(draw(st.integers(1, 6)))
        for event in draw(histories(complaint_id=f"c-{n}"))
    ]
    rivals = [
        change(e.complaint_id, 1, None, ComplaintState.REJECTED).model_copy(
            update={"event_id": f"rival-{e.complaint_id}"}
        )
        for e in draw(st.lists(st.sampled_from(events), max_size=2))
    ]
    redelivered = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    arrival = draw(st.permutations([*events, *rivals, *redelivered]))
    split = draw(st.integers(0, len(arrival)))
    return events, [chunks(draw, arrival[:split], 20), chunks(draw, arrival[split:], 20)]


@settings(max_examples=30, deadline=None)
@given(delivery=deliveries())
async def test_rebuilt_read_models_equal_the_incrementally_maintained_ones(
    delivery: tuple[list[TrackedEvent], list[list[list[TrackedEvent]]]],
) -> None:
    events, per_consumer = delivery
    store = InMemoryTrackerStore()
    consumers = [Consumer(store) for _ in per_consumer]
    await asyncio.gather(*(c.deliver(b) for c, b in zip(consumers, per_consumer, strict=True)))
    incremental = dict(store.complaints)

    count = await rebuild(store)

    filed = {e.complaint_id for e in events if e.event_type == "complaint.filed"}
    assert store.complaints == incremental
    assert count == len(incremental) == len(filed)
    logged_for_filed = [doc for doc in store.events.values() if doc["complaint_id"] in filed]
    assert sum(model["event_count"] for model in incremental.values()) == len(logged_for_filed)
