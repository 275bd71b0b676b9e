"""What a replay reads (``services.replay``): the events intake and routing published,
kept for the retention window, asserted on the fakes (unit tier) and on MongoDB."""

from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from intake.store import FiledRecord, MongoSubmissionStore, SubmissionStore
from routing.store import Cleared, MongoRoutingStore, RoutingRecord, RoutingStore
from schemas.states import ComplaintState as S
from services.mongo import Document
from tests.contract.test_intake_store import filed
from tests.contract.test_routing_store import event
from tests.fakes.intake import InMemorySubmissionStore, insert
from tests.fakes.routing import InMemoryRoutingStore

DAY = timedelta(days=1)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def routing_store(request: pytest.FixtureRequest) -> RoutingStore:
    if request.param == "memory":
        return InMemoryRoutingStore(keep_published=DAY)
    return MongoRoutingStore(request.getfixturevalue("mongo_db"), keep_published=DAY)


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def intake_store(request: pytest.FixtureRequest) -> SubmissionStore:
    if request.param == "memory":
        return InMemorySubmissionStore()
    return MongoSubmissionStore(request.getfixturevalue("mongo_db"))


async def kept(store: RoutingStore, since: datetime = LONG_AGO) -> list[tuple[str, int]]:
    return [(e.complaint_id, e.sequence) async for e in store.published_since(since)]


async def with_outbox(store: RoutingStore, complaint_id: str) -> RoutingRecord:
    first = event(complaint_id, 1, S.RECEIVED, handler=None)
    created = RoutingRecord(
        complaint_id=complaint_id,
        receipt_number="261125-000001",
        state=S.RECEIVED,
        sequence=1,
        outbox=(first,),
        outbox_pending=True,
    )
    assert await store.create(created)
    second = event(complaint_id, 2, S.ASSIGNED, handler=None)
    assert await store.advance(created, caused_by="cmd-1", events=[second])
    current = await store.get(complaint_id)
    assert current is not None
    return current


async def test_published_lifecycle_events_are_kept_in_order_instead_of_dropped(
    routing_store: RoutingStore,
) -> None:
    await routing_store.ensure_indexes()
    record = await with_outbox(routing_store, "c-1")
    assert [e.sequence for e in record.outbox] == [1, 2]
    await routing_store.clear_outbox("c-1", [e.event_id for e in record.outbox], 2)
    after = await routing_store.get("c-1")
    assert after is not None
    assert (after.outbox, after.outbox_pending) == ((), False)
    assert await kept(routing_store) == [("c-1", 1), ("c-1", 2)]
    # clearing again (a relay pass racing the handler) keeps each event once
    await routing_store.clear_outbox("c-1", [e.event_id for e in record.outbox], 2)
    assert await kept(routing_store) == [("c-1", 1), ("c-1", 2)]
    assert await kept(routing_store, datetime.now(UTC) + timedelta(minutes=1)) == []


async def test_only_the_events_cleared_are_kept_and_the_rest_stay_pending(
    routing_store: RoutingStore,
) -> None:
    await routing_store.ensure_indexes()
    record = await with_outbox(routing_store, "c-2")
    first = record.outbox[0]
    await routing_store.clear_outbox("c-2", [first.event_id], 1)  # the complaint moved on
    after = await routing_store.get("c-2")
    assert after is not None
    assert [e.sequence for e in after.outbox] == [2]
    assert after.outbox_pending
    assert await kept(routing_store) == [("c-2", 1)]


async def test_a_batch_clear_keeps_its_published_events_too(
    routing_store: RoutingStore,
) -> None:
    """Routing's hot path clears a whole batch's outboxes in one write (``clear_outboxes``)."""
    await routing_store.ensure_indexes()
    one, two = await with_outbox(routing_store, "c-3"), await with_outbox(routing_store, "c-4")
    cleared = [
        Cleared(r.complaint_id, tuple(e.event_id for e in r.outbox), 2, r.outbox)
        for r in (one, two)
    ]
    await routing_store.clear_outboxes(cleared)
    await routing_store.clear_outboxes(cleared)  # again: each kept once
    assert sorted(await kept(routing_store)) == [("c-3", 1), ("c-3", 2), ("c-4", 1), ("c-4", 2)]
    for complaint_id in ("c-3", "c-4"):
        after = await routing_store.get(complaint_id)
        assert after is not None
        assert (after.outbox, after.outbox_pending) == ((), False)


async def test_a_store_not_keeping_published_events_has_none_to_replay() -> None:
    store = InMemoryRoutingStore()
    record = await with_outbox(store, "c-3")
    await store.clear_outbox("c-3", [e.event_id for e in record.outbox], 2)
    assert await kept(store) == []


@pytest.mark.service
async def test_mongo_keeps_published_events_under_a_ttl_index_of_the_window(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = MongoRoutingStore(mongo_db, keep_published=DAY)
    await store.ensure_indexes()
    indexes = await store.published.index_information()
    assert indexes["published_ttl"]["expireAfterSeconds"] == 86_400
    shorter = MongoRoutingStore(mongo_db, keep_published=timedelta(hours=1))
    await shorter.ensure_indexes()  # a changed window replaces the index
    indexes = await store.published.index_information()
    assert indexes["published_ttl"]["expireAfterSeconds"] == 3_600


async def test_published_filings_are_read_back_oldest_first_from_a_moment_on(
    intake_store: SubmissionStore,
) -> None:
    await intake_store.ensure_indexes()
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    events = [filed(at=t0 + timedelta(minutes=m)) for m in (2, 0, 1, 3)]
    for e in events:
        assert isinstance(
            await insert(intake_store, e, "tracking-token", "resident-token"), FiledRecord
        )
    await intake_store.mark_published_many([e.complaint_id for e in events[:3]])
    since = [r.filed.complaint_id async for r in intake_store.published_since(t0)]
    assert since == [events[1].complaint_id, events[2].complaint_id, events[0].complaint_id]
    later = [
        r.filed.complaint_id async for r in intake_store.published_since(t0 + timedelta(minutes=1))
    ]
    assert later == [events[2].complaint_id, events[0].complaint_id]
