"""tracker's store contract: the same assertions on the in-memory fake (unit tier) and on
MongoDB (the ``mongo`` parameter, service tier). What the handlers and the rebuild rely
on: each event stored once, one history per complaint, the conditional replace of read
models, and the queries behind the resident's list, the queue, search and statistics."""

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ComplaintState
from schemas.common import Location
from schemas.events import bound_event, utcnow
from schemas.tokens import hash_token
from services.mongo import Document
from tests.fakes.tracker import InMemoryTrackerStore
from tests.unit.test_tracker_projection import T0, change, filed, story
from tests.unit.test_tracker_read_api import RESIDENT_A, RESIDENT_B, district
from tracker.handlers import refresh
from tracker.projection import ReadModel, TrackedEvent, project
from tracker.rebuild import rebuild
from tracker.search import SearchQuery, query_terms
from tracker.store import (
    Appended,
    MongoTrackerStore,
    TrackerStore,
    open_at_filter,
    resident_filters,
    search_filter,
)

S = ComplaintState
NewStore = Callable[[], Awaitable[TrackerStore]]


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def backend(request: pytest.FixtureRequest) -> AsyncDatabase[Document] | None:
    """None for the fake; a fresh database on the real server for MongoDB."""
    if request.param == "memory":
        return None
    database: AsyncDatabase[Document] = request.getfixturevalue("mongo_db")
    return database


@pytest.fixture
async def new_store(backend: AsyncDatabase[Document] | None) -> AsyncIterator[NewStore]:
    """Makes empty stores of the backend under test, as many as a test needs."""
    made: list[str] = []

    async def make() -> TrackerStore:
        if backend is None:
            return InMemoryTrackerStore()
        name = f"{backend.name}_{len(made)}"
        made.append(name)
        store = MongoTrackerStore(backend.client[name])
        await store.ensure_indexes()
        return store

    yield make
    if backend is not None:
        for name in made:
            await backend.client.drop_database(name)


@pytest.fixture
async def store(new_store: NewStore) -> TrackerStore:
    return await new_store()


async def deliver(store: TrackerStore, events: list[TrackedEvent]) -> ReadModel | None:
    """What the subscriber does for each message, one message at a time."""
    for event in events:
        await store.append_many([event], stored_at=utcnow())
        await refresh(store, [event.complaint_id])
    return await store.read_model(events[0].complaint_id)


async def in_batch(store: TrackerStore, events: list[TrackedEvent]) -> None:
    """What the subscriber does with one batch."""
    await store.append_many(events, stored_at=utcnow())
    await refresh(store, {event.complaint_id for event in events})


# -- the event log ------------------------------------------------------------------------


async def test_storing_the_same_event_twice_is_a_no_op(store: TrackerStore) -> None:
    event = story("c-1")[0]

    first = await store.append_many([event], stored_at=utcnow())
    await refresh(store, ["c-1"])
    before = await store.read_model("c-1")
    second = await store.append_many([event], stored_at=utcnow())
    await refresh(store, ["c-1"])

    assert (first, second) == ([Appended.STORED], [Appended.DUPLICATE])
    assert len((await store.histories(["c-1"]))["c-1"]) == 1
    assert await store.read_model("c-1") == before


async def test_one_outcome_per_event_in_order_and_a_repeat_in_a_batch_is_a_duplicate(
    store: TrackerStore,
) -> None:
    events = story("c-1")
    await store.append_many(events[:2], stored_at=utcnow())

    outcomes = await store.append_many(
        [events[2], events[0], events[3], events[2]], stored_at=utcnow()
    )

    assert outcomes == [
        Appended.STORED,
        Appended.DUPLICATE,
        Appended.STORED,
        Appended.DUPLICATE,
    ]
    assert await store.append_many([], stored_at=utcnow()) == []


async def test_the_history_gives_back_every_event_as_it_was(store: TrackerStore) -> None:
    events = story("c-1")
    await store.append_many([*events, *story("c-2")], stored_at=utcnow())

    found = await store.histories(["c-1", "c-9"])

    assert set(found) == {"c-1"}
    assert sorted(found["c-1"], key=lambda e: e.event_id) == sorted(
        events, key=lambda e: e.event_id
    )


async def test_a_second_event_claiming_a_sequence_is_refused(store: TrackerStore) -> None:
    await deliver(store, story("c-1"))
    before = await store.read_model("c-1")
    rival = change("c-1", 2, S.RECEIVED, S.REJECTED).model_copy(update={"event_id": "rival-2"})

    outcome = await store.append_many([rival], stored_at=utcnow())
    await refresh(store, ["c-1"])

    assert outcome == [Appended.CONFLICT]
    assert "rival-2" not in {e.event_id for e in (await store.histories(["c-1"]))["c-1"]}
    assert await store.read_model("c-1") == before


async def test_within_a_batch_the_first_to_claim_a_sequence_wins(store: TrackerStore) -> None:
    claimed = change("c-1", 1, None, S.RECEIVED)
    rival = change("c-1", 1, None, S.REJECTED).model_copy(update={"event_id": "rival-1"})

    outcomes = await store.append_many([claimed, rival, claimed], stored_at=utcnow())

    assert outcomes == [Appended.STORED, Appended.CONFLICT, Appended.DUPLICATE]


async def test_the_same_sequence_in_another_complaint_is_fine(store: TrackerStore) -> None:
    await deliver(store, story("c-1"))

    model = await deliver(store, story("c-2"))

    assert model is not None
    assert model.state == "site_check"
    histories = await store.histories(["c-1", "c-2"])
    assert [sum(getattr(e, "sequence", 0) == 2 for e in h) for h in histories.values()] == [1, 1]


async def test_out_of_order_arrival_across_topics_gives_the_same_read_model(
    new_store: NewStore,
) -> None:
    events = story("c-1")
    in_order = await deliver(await new_store(), events)
    shuffled_with_redeliveries = events + events[1:4]
    random.Random(3).shuffle(shuffled_with_redeliveries)

    for order in [events[::-1], shuffled_with_redeliveries]:
        assert await deliver(await new_store(), order) == in_order

    assert in_order is not None
    assert in_order.state == "site_check"
    assert in_order.event_count == len(events)


async def test_a_complaint_is_shown_from_its_filing_on_and_nothing_before_is_lost(
    store: TrackerStore,
) -> None:
    """Events that outran their filing (or name an id nobody filed) wait in the log: no
    read model, so no list or count shows them; the filing brings them all in."""
    events = story("c-1")
    everything = SearchQuery()

    for early in events[1:]:
        assert await deliver(store, [early]) is None
    await in_batch(store, story("c-2")[1:])

    assert await store.read_model_ids() == []
    assert await store.search(everything, limit=20, offset=0) == ([], 0)
    assert await store.statistics_rows() == []
    assert await store.queue("roads", set(), limit=20, offset=0) == ([], 0)
    assert await store.timeline("c-1") is None
    histories = await store.histories(["c-1", "c-2"])
    assert [len(histories["c-1"]), len(histories["c-2"])] == [7, 7]

    assert await deliver(store, events[:1]) == project(events)
    assert [
        hit.complaint_id for hit in (await store.search(everything, limit=20, offset=0))[0]
    ] == ["c-1"]
    assert len(await store.statistics_rows()) == 1


async def test_concurrent_deliveries_converge_on_the_full_history(store: TrackerStore) -> None:
    """A read model projected from fewer events never overwrites one from more."""
    events = story("c-1")

    await asyncio.gather(*(deliver(store, [event]) for event in events))

    model = await store.read_model("c-1")
    assert model is not None
    assert model.event_count == len(events)
    assert [entry.sequence for entry in model.timeline] == [1, 2, 3, 4]


async def test_every_history_in_complaint_order_and_which_complaints_are_filed(
    store: TrackerStore,
) -> None:
    unfiled = story("c-4")[1:]
    await store.append_many(
        [*story("c-2"), *story("c-3"), *unfiled, *story("c-1")], stored_at=utcnow()
    )

    scanned = [events async for events in store.all_histories()]

    assert [{e.complaint_id for e in events} for events in scanned] == [
        {"c-1"},
        {"c-2"},
        {"c-3"},
        {"c-4"},
    ]
    assert [len(events) for events in scanned] == [8, 8, 8, 7]
    assert await store.filed(["c-1", "c-3", "c-4", "c-9"]) == {"c-1", "c-3"}


# -- the read models ------------------------------------------------------------------------


async def test_a_read_model_from_fewer_events_never_wins(store: TrackerStore) -> None:
    """A slower writer that read an older snapshot finishes last: the newer one stays."""
    events = story("c-1")
    latest = await deliver(store, events)

    await store.replace_read_models([project(events[:3])])

    assert await store.read_model("c-1") == latest


async def test_a_read_model_from_as_many_events_replaces_the_stored_one(
    store: TrackerStore,
) -> None:
    """The same events: the same document, or one a changed projection made (a rebuild)."""
    events = story("c-1")
    await deliver(store, events)
    reprojected = project(events).model_copy(update={"title": "가로등 고장 (다시 계산)"})

    await store.replace_read_models([reprojected])

    model = await store.read_model("c-1")
    assert model is not None
    assert model.title == "가로등 고장 (다시 계산)"


async def test_a_read_model_from_more_events_wins_and_unknown_ones_are_none(
    store: TrackerStore,
) -> None:
    events = story("c-1")
    await store.replace_read_models([project(events[:3])])

    await store.replace_read_models([project(events), project(story("c-2")[:1])])

    model = await store.read_model("c-1")
    assert model is not None
    assert model.event_count == len(events)
    assert await store.read_model("c-9") is None
    assert sorted(await store.read_model_ids()) == ["c-1", "c-2"]
    await store.delete_read_models(["c-2", "c-9"])
    assert await store.read_model_ids() == ["c-1"]


async def test_a_read_model_survives_the_store_unchanged(store: TrackerStore) -> None:
    events = story("c-1")
    await in_batch(store, events)

    model = await store.read_model("c-1")

    assert model == project(events)
    timeline = await store.timeline("c-1")
    assert timeline is not None
    assert [entry.state for entry in timeline] == [
        S.RECEIVED,
        S.ASSIGNED,
        S.HANDLER_ASSIGNED,
        S.SITE_CHECK,
    ]
    assert timeline[2].handler is not None
    assert timeline[2].handler.name == "김담당"
    assert await store.timeline("c-9") is None


# -- what the views read ----------------------------------------------------------------------


async def test_a_residents_complaints_newest_first_paged(store: TrackerStore) -> None:
    await in_batch(store, district())

    first, total = await store.resident_complaints(hash_token(RESIDENT_A), limit=2, offset=0)
    rest, _ = await store.resident_complaints(hash_token(RESIDENT_A), limit=2, offset=2)
    theirs, _ = await store.resident_complaints(hash_token(RESIDENT_B), limit=20, offset=0)
    nobody = await store.resident_complaints(hash_token("x" * 32), limit=20, offset=0)

    assert [item.complaint_id for item in first + rest] == ["c-3", "c-2", "c-1"]
    assert total == 3
    assert [item.complaint_id for item in theirs] == ["c-4"]
    assert nobody == ([], 0)
    assert first[0].department is not None
    assert (first[0].department.code, first[0].department.name) == ("parks", "공원녹지과")


async def test_a_complaint_bound_to_another_device_is_listed_for_it_through_indexes(
    store: TrackerStore, backend: AsyncDatabase[Document] | None
) -> None:
    """Recovery (``ResidentBound``): the complaint joins the new device's list, stays on the
    filer's, and arriving before its filing changes nothing."""
    device = hash_token("new-device-resident-token-01")
    events = district()
    await in_batch(store, [bound_event("c-2", device, utcnow()), *events])
    await in_batch(store, [bound_event("c-2", device, utcnow())])  # a repeat

    mine, total = await store.resident_complaints(device, limit=20, offset=0)
    filers, _ = await store.resident_complaints(hash_token(RESIDENT_A), limit=20, offset=0)
    model = await store.read_model("c-2")

    assert ([item.complaint_id for item in mine], total) == (["c-2"], 1)
    assert "c-2" in [item.complaint_id for item in filers]
    assert model is not None
    assert model.bound_resident_hashes == [device]
    if backend is not None:
        assert isinstance(store, MongoTrackerStore)
        for query, index in zip(
            resident_filters(device), ("by_resident", "by_bound_resident"), strict=True
        ):
            plan = (await store.complaints.find(query).explain())["queryPlanner"]["winningPlan"]
            assert "IXSCAN" in str(plan), plan
            assert index in str(plan), plan


async def test_a_departments_queue_open_only_overdue_first_then_by_due_time(
    store: TrackerStore,
) -> None:
    await in_batch(store, district())
    later = story("c-5")
    later[0] = filed("c-5", occurred_at=T0 + timedelta(hours=4))
    await in_batch(store, later)  # roads, due like c-1, filed later

    items, total = await store.queue("roads", set(), limit=20, offset=0)
    site_check, _ = await store.queue("roads", {S.SITE_CHECK}, limit=20, offset=0)
    paged, _ = await store.queue("roads", set(), limit=1, offset=1)

    assert [item.complaint_id for item in items] == ["c-2", "c-1", "c-5"]
    assert total == 3
    assert [item.overdue for item in items] == [True, False, False]
    assert items[0].dong == "가정1동"
    assert [item.complaint_id for item in site_check] == ["c-1", "c-5"]
    assert [item.complaint_id for item in paged] == ["c-1"]
    assert await store.queue_counts("roads") == {"handler_assigned": 1, "site_check": 2}
    assert await store.queue_counts("parks") == {"handler_assigned": 1}
    assert await store.queue_counts("nobody") == {}


@pytest.mark.parametrize(
    ("query", "found"),
    [
        pytest.param(SearchQuery(terms=tuple(query_terms("가로등"))), ["c-4", "c-1"], id="term"),
        pytest.param(
            SearchQuery(terms=tuple(query_terms("가로등이 꺼졌어요"))), ["c-1"], id="every-term"
        ),
        pytest.param(SearchQuery(state=S.RESOLVED), ["c-4"], id="state"),
        pytest.param(SearchQuery(department="parks"), ["c-3"], id="department"),
        pytest.param(SearchQuery(dong="가정1동"), ["c-2"], id="dong"),
        pytest.param(SearchQuery(overdue=True), ["c-2"], id="overdue"),
        pytest.param(SearchQuery(overdue=False), ["c-4", "c-3", "c-1"], id="not-overdue"),
        pytest.param(
            SearchQuery(filed_from=T0 + timedelta(hours=1), filed_to=T0 + timedelta(hours=3)),
            ["c-3", "c-2"],
            id="period",
        ),
        pytest.param(SearchQuery(), ["c-4", "c-3", "c-2", "c-1"], id="everything"),
    ],
)
async def test_search_matches_every_term_and_filter_newest_first(
    store: TrackerStore, query: SearchQuery, found: list[str]
) -> None:
    await in_batch(store, district())

    hits, total = await store.search(query, limit=20, offset=0)

    assert [hit.complaint_id for hit in hits] == found
    assert total == len(found)


async def test_search_hits_carry_an_excerpt_and_nothing_personal(store: TrackerStore) -> None:
    await in_batch(store, district())

    hits, _ = await store.search(SearchQuery(department="roads"), limit=1, offset=1)

    assert [hit.complaint_id for hit in hits] == ["c-2"]
    assert hits[0].excerpt == "집 앞에 쓰레기봉투가 일주일째 쌓여 있어요"
    assert "홍길동" not in hits[0].model_dump_json()


async def test_statistics_rows_per_department_and_period(store: TrackerStore) -> None:
    await in_batch(store, district())

    everything = await store.statistics_rows()
    parks = await store.statistics_rows(department="parks")
    later = await store.statistics_rows(filed_from=T0 + timedelta(hours=1, minutes=30))

    assert sorted(row.state or "" for row in everything) == [
        "handler_assigned",
        "handler_assigned",
        "resolved",
        "site_check",
    ]
    assert [(row.department, row.transfer_count) for row in parks] == [("parks", 1)]
    assert [len(row.timeline) for row in parks] == [5]
    assert sorted(row.filed_at for row in later if row.filed_at) == [
        T0 + timedelta(hours=2),
        T0 + timedelta(hours=3),
    ]


# -- the rebuild ------------------------------------------------------------------------------


async def test_a_rebuild_restores_what_the_log_holds_and_drops_what_it_does_not(
    store: TrackerStore,
) -> None:
    await in_batch(store, [*story("c-1"), *story("c-2")])
    expected = [await store.read_model("c-1"), await store.read_model("c-2")]
    drifted = project(story("c-1")).model_copy(update={"state": S.CLOSED})
    await store.replace_read_models([drifted, project([filed("c-stray")])])

    assert await rebuild(store) == 2

    assert [await store.read_model("c-1"), await store.read_model("c-2")] == expected
    assert sorted(await store.read_model_ids()) == ["c-1", "c-2"]


async def test_a_rebuild_drops_the_phantoms_an_older_tracker_made_and_keeps_their_events(
    store: TrackerStore,
) -> None:
    """An older tracker made a read model of any event; a command for a mistyped id made
    one that statistics counted as awaiting routing."""
    await in_batch(store, story("c-1"))
    phantom = story("c-9")[1:]
    await store.append_many(phantom, stored_at=utcnow())
    await store.replace_read_models([project(phantom)])

    assert await rebuild(store) == 1

    assert await store.read_model_ids() == ["c-1"]
    assert len((await store.histories(["c-9"]))["c-9"]) == len(phantom)


async def test_rebuilding_an_empty_store_leaves_an_empty_read_side(store: TrackerStore) -> None:
    assert await rebuild(store) == 0
    assert await store.read_model_ids() == []


async def test_events_stored_during_a_rebuild_are_not_lost(store: TrackerStore) -> None:
    everything = [event for n in range(20) for event in story(f"c-{n}")]
    first, late = everything[: len(everything) // 2], everything[len(everything) // 2 :]
    await in_batch(store, first)

    async def ingest_late() -> None:
        for i in range(0, len(late), 10):
            await in_batch(store, late[i : i + 10])

    await asyncio.gather(rebuild(store), ingest_late())

    models = [await store.read_model(cid) for cid in sorted(await store.read_model_ids())]
    assert len(models) == 20
    assert all(model is not None and model.event_count == 8 for model in models)
    await rebuild(store)
    assert [await store.read_model(cid) for cid in sorted(await store.read_model_ids())] == models


async def test_a_receipt_number_finds_its_complaint_through_an_index(
    store: TrackerStore, backend: AsyncDatabase[Document] | None
) -> None:
    await in_batch(
        store,
        [
            filed("mine", receipt_number="251201-000001"),
            filed("other", receipt_number="251201-000002"),
        ],
    )
    hits, total = await store.search(SearchQuery(receipt_number="251201-000002"), limit=5, offset=0)
    assert ([h.complaint_id for h in hits], total) == (["other"], 1)
    if backend is not None:
        assert isinstance(store, MongoTrackerStore)
        query = search_filter(SearchQuery(receipt_number="251201-000002"))
        plan = (await store.complaints.find(query).explain())["queryPlanner"]["winningPlan"]
        assert "by_receipt_number" in str(plan), plan


# -- '이미 접수된 민원' ----------------------------------------------------------------------


async def test_open_at_reads_one_departments_open_complaints_in_one_dong_newest_first(
    store: TrackerStore, backend: AsyncDatabase[Document] | None
) -> None:

    def routed(cid: str, dong: str, to: ComplaintState, minutes: int) -> list[TrackedEvent]:
        where = Location(address="청라커낼로 100", dong=dong)
        return [
            filed(cid, location=where).model_copy(
                update={"occurred_at": T0 + timedelta(minutes=minutes)}
            ),
            change(cid, 1, None, ComplaintState.RECEIVED, trigger="file"),
            change(cid, 2, ComplaintState.RECEIVED, to, trigger="t", department="roads"),
        ]

    for cid, dong, to, minutes in [
        ("older", "청라1동", ComplaintState.ASSIGNED, 1),
        ("newer", "청라1동", ComplaintState.ASSIGNED, 2),
        ("closed", "청라1동", ComplaintState.RESOLVED, 3),
        ("elsewhere", "청라2동", ComplaintState.ASSIGNED, 4),
    ]:
        await in_batch(store, routed(cid, dong, to, minutes))
    rows = await store.open_at("roads", "청라1동", limit=10)
    assert [r.complaint_id for r in rows] == ["newer", "older"]
    assert "가로등" in " ".join(rows[0].search_terms)
    assert [r.complaint_id for r in await store.open_at("roads", "청라1동", limit=1)] == ["newer"]
    if backend is not None:
        assert isinstance(store, MongoTrackerStore)
        query = open_at_filter("roads", "청라1동")
        plan = (await store.complaints.find(query).explain())["queryPlanner"]["winningPlan"]
        assert "IXSCAN" in str(plan), plan
