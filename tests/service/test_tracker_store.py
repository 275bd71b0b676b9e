"""tracker's MongoDB adapter against the real server: idempotent, order-blind, one history."""

import asyncio
import random
from collections.abc import Collection

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ComplaintState
from schemas.events import utcnow
from services.mongo import Document
from tests.unit.test_tracker_projection import change, story
from tracker.projection import TrackedEvent
from tracker.store import SequenceConflict, TrackerStore


@pytest.fixture
async def store(mongo_db: AsyncDatabase[Document]) -> TrackerStore:
    store = TrackerStore(mongo_db)
    await store.ensure_indexes()
    return store


async def deliver(store: TrackerStore, events: list[TrackedEvent]) -> Document | None:
    """What the subscriber does for each message, one message at a time."""
    for event in events:
        await store.append(event, stored_at=utcnow())
        await store.refresh(event.complaint_id)
    return await store.read_model(events[0].complaint_id)


async def test_storing_the_same_event_twice_is_a_no_op(store: TrackerStore) -> None:
    event = story("c-1")[0]

    first = await store.append(event, stored_at=utcnow())
    await store.refresh("c-1")
    before = await store.read_model("c-1")
    second = await store.append(event, stored_at=utcnow())
    await store.refresh("c-1")

    assert (first, second) == (True, False)
    assert await store.events.count_documents({"complaint_id": "c-1"}) == 1
    assert await store.read_model("c-1") == before


async def test_the_stored_event_keeps_its_payload(store: TrackerStore) -> None:
    event = story("c-1")[3]

    await store.append(event, stored_at=utcnow())

    doc = await store.events.find_one({"_id": event.event_id})
    assert doc is not None
    assert doc["complaint_id"] == "c-1"
    assert doc["event_type"] == "complaint.status_changed"
    assert doc["sequence"] == 2
    assert doc["payload"] == event.model_dump(mode="json")
    assert {"occurred_at", "stored_at"} <= doc.keys()


async def test_out_of_order_arrival_across_topics_gives_the_same_read_model(
    store: TrackerStore,
) -> None:
    events = story("c-1")
    in_order = await deliver(store, events)
    shuffled_with_redeliveries = events + events[1:4]
    random.Random(3).shuffle(shuffled_with_redeliveries)
    orders = [events[::-1], shuffled_with_redeliveries]

    for order in orders:
        await store.events.drop()
        await store.complaints.drop()
        await store.ensure_indexes()
        assert await deliver(store, order) == in_order

    assert in_order is not None
    assert in_order["state"] == "site_check"
    assert in_order["event_count"] == len(events)


async def test_concurrent_deliveries_converge_on_the_full_history(store: TrackerStore) -> None:
    """A rebuild that read fewer events never overwrites one that read more."""
    events = story("c-1")

    async def one(event: TrackedEvent) -> None:
        await store.append(event, stored_at=utcnow())
        await store.refresh(event.complaint_id)

    await asyncio.gather(*(one(event) for event in events))

    model = await store.read_model("c-1")
    assert model is not None
    assert model["event_count"] == len(events)
    assert [entry["sequence"] for entry in model["timeline"]] == [1, 2, 3, 4]


async def test_a_rebuild_from_an_older_snapshot_never_wins(
    store: TrackerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slower writer that read fewer events finishes last: the read model keeps the newer."""
    events = story("c-1")
    latest = await deliver(store, events)

    async def older_snapshot(complaint_ids: Collection[str]) -> dict[str, list[TrackedEvent]]:
        return {"c-1": events[:3]}

    monkeypatch.setattr(store, "histories", older_snapshot)
    await store.refresh("c-1")

    assert await store.read_model("c-1") == latest


async def test_a_second_event_claiming_a_sequence_is_refused(store: TrackerStore) -> None:
    await deliver(store, story("c-1"))
    before = await store.read_model("c-1")
    rival = change("c-1", 2, ComplaintState.RECEIVED, ComplaintState.REJECTED).model_copy(
        update={"event_id": "rival-2"}
    )

    with pytest.raises(SequenceConflict):
        await store.append(rival, stored_at=utcnow())

    assert await store.events.count_documents({"_id": "rival-2"}) == 0
    assert await store.read_model("c-1") == before


async def test_the_same_sequence_in_another_complaint_is_fine(store: TrackerStore) -> None:
    await deliver(store, story("c-1"))

    model = await deliver(store, story("c-2"))

    assert model is not None
    assert model["state"] == "site_check"
    assert await store.events.count_documents({"sequence": 2}) == 2
