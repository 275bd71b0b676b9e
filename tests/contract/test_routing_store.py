"""What routing's handlers rely on from their store, asserted on the in-memory fake (unit
tier) and on the MongoDB adapter against the real MongoDB-wire server (service tier)."""

from datetime import UTC, datetime, timedelta

import pytest

from routing.assignment import Load
from routing.deadlines import KST
from routing.store import (
    PROCESSED_KEPT,
    CaseLookup,
    Changes,
    Cleared,
    Counts,
    MongoRoutingStore,
    RoutingRecord,
    RoutingStore,
    Transfer,
    TransferExample,
    TransferLabel,
    Write,
    advanced,
    with_load_deltas,
)
from schemas import ComplaintStatusChanged
from schemas.events import HandlerRef, LinkedTo
from schemas.states import ComplaintState as S
from tests.fakes.routing import InMemoryRoutingStore

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
DUE = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
KIM = HandlerRef(handler_id="roads-1", name="김도로", office_phone="032-560-1000")
LEE = HandlerRef(handler_id="roads-2", name="이도로", office_phone="032-560-1001")


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def store(request: pytest.FixtureRequest) -> RoutingStore:
    """Synchronous, so that only the mongo parameter asks for (and starts) the server."""
    if request.param == "memory":
        return InMemoryRoutingStore()
    return MongoRoutingStore(request.getfixturevalue("mongo_db"))


@pytest.fixture(autouse=True)
async def _indexed(store: RoutingStore) -> None:
    await store.ensure_indexes()


def event(
    complaint_id: str,
    sequence: int,
    to_state: S,
    *,
    handler: HandlerRef | None = KIM,
    due_at: datetime | None = DUE,
    at: datetime = T0,
) -> ComplaintStatusChanged:
    return ComplaintStatusChanged(
        complaint_id=complaint_id,
        receipt_number="261125-000001",
        sequence=sequence,
        from_state=None,
        to_state=to_state,
        trigger="t",
        department="roads",
        department_name="도로과",
        handler=handler,
        actor="routing",
        due_at=due_at,
        occurred_at=at + timedelta(seconds=sequence),
    )


def record(
    complaint_id: str,
    state: S = S.HANDLER_ASSIGNED,
    *,
    handler: HandlerRef | None = KIM,
    due_at: datetime | None = DUE,
) -> RoutingRecord:
    events = [
        event(complaint_id, 1, S.RECEIVED, handler=None, due_at=due_at),
        event(complaint_id, 2, state, handler=handler, due_at=due_at),
    ]
    return RoutingRecord(
        complaint_id=complaint_id,
        receipt_number="261125-000001",
        area="연희동",
        state=state,
        sequence=2,
        department="roads",
        department_name="도로과",
        handler=handler,
        due_at=due_at,
        updated_at=events[-1].occurred_at,
        auto_routed=True,
        confidence=0.91,
        service_code="streetlight",
        text="가로등이 고장났어요",
        received_at=T0,
        original_due_at=due_at,
        processed=("filed-" + complaint_id,),
        outbox=tuple(events),
        outbox_pending=True,
    )


async def stored(store: RoutingStore, complaint_id: str) -> RoutingRecord:
    found = await store.get(complaint_id)
    assert found is not None
    return found


async def test_a_new_complaint_reads_back_as_written(store: RoutingStore) -> None:
    assert await store.get("c1") is None
    written = record("c1")
    assert await store.create(written) is True
    assert await stored(store, "c1") == written


async def test_a_second_create_is_refused_and_changes_nothing(store: RoutingStore) -> None:
    assert await store.create(record("c1")) is True
    assert await store.create(record("c1", S.ASSIGNED, handler=None)) is False
    again = await stored(store, "c1")
    assert (again.state, again.handler) == (S.HANDLER_ASSIGNED, KIM)


async def test_advance_applies_events_changes_and_counts_at_the_read_sequence(
    store: RoutingStore,
) -> None:
    await store.create(record("c1"))
    before = await stored(store, "c1")
    later = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    moved = event("c1", 3, S.INFO_REQUESTED, handler=LEE, due_at=later)
    assert await store.advance(
        before,
        caused_by="cmd-1",
        events=[moved],
        changes=Changes(resume_state=S.HANDLER_ASSIGNED, paused_at=T0),
        counts=Counts(extensions=1, transfer_count=2),
    )
    after = await stored(store, "c1")
    assert (after.state, after.sequence, after.handler, after.due_at) == (
        S.INFO_REQUESTED,
        3,
        LEE,
        later,
    )
    assert after.updated_at == moved.occurred_at
    assert (after.resume_state, after.paused_at) == (S.HANDLER_ASSIGNED, T0)
    assert (after.extensions, after.transfer_count, after.reopen_count) == (1, 2, 0)
    assert after.has_processed("cmd-1")
    assert after.has_processed("filed-c1")
    assert [e.sequence for e in after.outbox] == [1, 2, 3]
    assert after.outbox[-1] == moved
    assert (after.text, after.received_at, after.original_due_at) == (
        "가로등이 고장났어요",
        T0,
        DUE,
    )


async def test_changes_write_only_the_fields_given_and_may_clear_one(store: RoutingStore) -> None:
    await store.create(record("c1"))
    first = await stored(store, "c1")
    await store.advance(
        first,
        caused_by="cmd-1",
        events=[event("c1", 3, S.INFO_REQUESTED)],
        changes=Changes(resume_state=S.SITE_CHECK, paused_at=T0),
    )
    second = await stored(store, "c1")
    await store.advance(
        second,
        caused_by="cmd-2",
        events=[event("c1", 4, S.SITE_CHECK)],
        changes=Changes(resume_state=None, paused_at=None),
    )
    third = await stored(store, "c1")
    assert (third.resume_state, third.paused_at) == (None, None)
    await store.advance(
        third,
        caused_by="cmd-3",
        events=[event("c1", 5, S.SITE_CHECK)],
        changes=Changes(extensions=0, received_at=T0 + timedelta(days=1)),
    )
    fourth = await stored(store, "c1")
    assert (fourth.extensions, fourth.received_at, fourth.original_due_at) == (
        0,
        T0 + timedelta(days=1),
        DUE,
    )


async def test_a_stale_record_loses_the_race_and_changes_nothing(store: RoutingStore) -> None:
    await store.create(record("c1"))
    read_twice = await stored(store, "c1")
    assert await store.advance(read_twice, caused_by="a", events=[event("c1", 3, S.SITE_CHECK)])
    lost = await store.advance(read_twice, caused_by="b", events=[event("c1", 3, S.REVIEWING)])
    assert lost is False
    now = await stored(store, "c1")
    assert (now.state, now.sequence, now.has_processed("b")) == (S.SITE_CHECK, 3, False)
    nobody = await store.advance(record("x"), caused_by="c", events=[event("x", 3, S.SITE_CHECK)])
    assert nobody is False
    assert await store.get("x") is None


async def test_processed_ids_keep_the_latest(store: RoutingStore) -> None:
    await store.create(record("c1"))
    current = await stored(store, "c1")
    await store.clear_outbox("c1", [e.event_id for e in current.outbox], up_to_sequence=2)
    for n in range(PROCESSED_KEPT):
        sequence = current.sequence + 1
        moved = event("c1", sequence, S.SITE_CHECK)
        assert await store.advance(current, caused_by=f"cmd-{n}", events=[moved])
        await store.clear_outbox("c1", [moved.event_id], up_to_sequence=sequence)  # stays small
        current = current.model_copy(update={"sequence": sequence})
    kept = await stored(store, "c1")
    assert len(kept.processed) == PROCESSED_KEPT
    assert not kept.has_processed("filed-c1")
    assert kept.has_processed("cmd-0")
    assert kept.has_processed(f"cmd-{PROCESSED_KEPT - 1}")


async def test_clearing_the_outbox_ends_pending_unless_events_came_after(
    store: RoutingStore,
) -> None:
    for complaint_id in ("c1", "c2"):
        await store.create(record(complaint_id))
    assert {r.complaint_id for r in await store.pending_outboxes()} == {"c1", "c2"}
    first = await stored(store, "c1")
    await store.clear_outbox("c1", [e.event_id for e in first.outbox], up_to_sequence=2)
    cleared = await stored(store, "c1")
    assert (cleared.outbox, cleared.outbox_pending) == ((), False)
    assert [r.complaint_id for r in await store.pending_outboxes()] == ["c2"]

    published = (await stored(store, "c2")).outbox
    after = event("c2", 3, S.SITE_CHECK)
    await store.advance(await stored(store, "c2"), caused_by="cmd", events=[after])
    await store.clear_outbox("c2", [e.event_id for e in published], up_to_sequence=2)
    left = await stored(store, "c2")
    assert (left.outbox, left.outbox_pending) == ((after,), True)
    assert [r.complaint_id for r in await store.pending_outboxes()] == ["c2"]
    assert len(await store.pending_outboxes(limit=1)) == 1


async def test_the_relay_can_leave_what_a_batch_staged_just_now(store: RoutingStore) -> None:
    """``staged_before`` leaves outboxes and load deltas staged after it (by the decision
    time, ``updated_at``) to the batch that staged them."""
    old = with_load_deltas(None, record("old"))
    staged_at = old.updated_at
    assert staged_at is not None
    new = with_load_deltas(None, record("new"))
    new = new.model_copy(update={"updated_at": staged_at + timedelta(minutes=5)})
    for staged in (old, new):
        await store.write_many([Write(None, staged, staged.outbox, staged.processed)])
    cut = staged_at + timedelta(minutes=1)
    assert [r.complaint_id for r in await store.pending_outboxes(staged_before=cut)] == ["old"]
    assert [r.complaint_id for r in await store.pending_loads(staged_before=cut)] == ["old"]
    assert {r.complaint_id for r in await store.pending_outboxes()} == {"old", "new"}
    assert {r.complaint_id for r in await store.pending_loads()} == {"old", "new"}


async def test_only_open_complaints_with_a_running_clock_are_scanned(store: RoutingStore) -> None:
    await store.create(record("running"))
    await store.create(record("assigned", S.ASSIGNED, handler=None))
    await store.create(record("paused", S.INFO_REQUESTED))
    await store.create(record("resolved", S.RESOLVED))
    await store.create(record("no-due", due_at=None))
    scanned = {r.complaint_id for r in await store.with_running_clock()}
    assert scanned == {"running", "assigned"}


async def test_an_alert_is_marked_once(store: RoutingStore) -> None:
    await store.create(record("c1"))
    await store.mark_alert("c1", "warning:2026-12-03")
    await store.mark_alert("c1", "warning:2026-12-03")
    await store.mark_alert("c1", "breach:2026-12-03")
    marked = await stored(store, "c1")
    assert sorted(marked.sla_sent) == ["breach:2026-12-03", "warning:2026-12-03"]
    running = {r.complaint_id: r for r in await store.with_running_clock()}
    assert set(running["c1"].sla_sent) == set(marked.sla_sent)


async def test_loads_count_open_and_all_complaints_of_each_handler(store: RoutingStore) -> None:
    await store.create(record("a", S.HANDLER_ASSIGNED, handler=KIM))
    await store.create(record("b", S.REVIEWING, handler=KIM))
    await store.create(record("c", S.CLOSED, handler=KIM))
    await store.create(record("d", S.RESOLVED, handler=LEE))
    await store.create(record("e", S.ASSIGNED, handler=None))
    loads = await store.loads(["roads-1", "roads-2", "roads-9"])
    assert loads == {
        "roads-1": Load(open=2, total=3),
        "roads-2": Load(open=0, total=1),
        "roads-9": Load(open=0, total=0),
    }
    assert await store.loads([]) == {}


async def test_transfers_are_kept_once_each_oldest_first(store: RoutingStore) -> None:
    async def transfer(caused_by: str, text: str, to: str, at: datetime) -> None:
        await store.record_transfer(
            Transfer(
                caused_by=caused_by,
                complaint_id="c1",
                text=text,
                from_department="roads",
                to_department=to,
                reason="소관 아님",
                at=at,
            ),
        )

    assert await store.transfer_examples() == []
    await transfer("t2", "악취가 나요", "environment", T0 + timedelta(hours=1))
    await transfer("t1", "가로등", "roads", T0)
    await transfer("t2", "악취가 나요", "parking", T0 + timedelta(hours=2))
    assert await store.transfer_examples() == [
        TransferExample(text="가로등", department="roads"),
        TransferExample(text="악취가 나요", department="environment"),
    ]


async def test_transfers_are_counted_and_read_as_labels_with_their_ids(
    store: RoutingStore,
) -> None:
    assert (await store.count_transfers(), await store.transfer_labels()) == (0, [])
    for caused_by, at in (("t2", T0), ("t1", T0), ("t0", T0 + timedelta(hours=1))):
        await store.record_transfer(
            Transfer(
                caused_by=caused_by,
                complaint_id="c1",
                text=f"민원 {caused_by}",
                from_department="roads",
                to_department="parks",
                reason=None,
                at=at,
            ),
        )
    await store.record_transfer(  # the same command again adds no label
        Transfer(
            caused_by="t1",
            complaint_id="c1",
            text="민원 t1",
            from_department="roads",
            to_department="parks",
            reason=None,
            at=T0,
        ),
    )
    assert await store.count_transfers() == 3
    assert await store.transfer_labels() == [  # oldest first, ties by id
        TransferLabel("t1", "민원 t1", "parks", T0),
        TransferLabel("t2", "민원 t2", "parks", T0),
        TransferLabel("t0", "민원 t0", "parks", T0 + timedelta(hours=1)),
    ]


async def test_indexes_can_be_ensured_again(store: RoutingStore) -> None:
    await store.ensure_indexes()
    await store.ensure_indexes()


async def test_times_come_back_in_utc_to_the_millisecond(store: RoutingStore) -> None:
    precise = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=KST)
    await store.create(record("c1").model_copy(update={"received_at": precise}))
    back = (await stored(store, "c1")).received_at
    assert back == precise.replace(microsecond=123000)
    assert back is not None
    assert back.utcoffset() == timedelta(0)


async def test_many_complaints_are_read_in_one_call(store: RoutingStore) -> None:
    for complaint_id in ("c1", "c2"):
        await store.create(record(complaint_id))
    found = await store.get_many(["c1", "c2", "nope"])
    assert sorted(found) == ["c1", "c2"]
    assert found["c1"] == await stored(store, "c1")
    assert await store.get_many([]) == {}


def moved(before: RoutingRecord, caused_by: str, to_state: S) -> Write:
    events = (event(before.complaint_id, before.sequence + 1, to_state),)
    after = advanced(before, caused_by=caused_by, events=events, changes=Changes(), counts=Counts())
    return Write(before, with_load_deltas(before, after), events, (caused_by,))


async def test_a_bulk_write_applies_each_complaint_only_at_its_read_sequence(
    store: RoutingStore,
) -> None:
    for complaint_id in ("c1", "c2"):
        await store.create(record(complaint_id))
    c1, c2 = await stored(store, "c1"), await stored(store, "c2")
    assert await store.write_many([moved(c2, "first", S.SITE_CHECK)]) == [True]
    new = with_load_deltas(None, record("c3"))
    outcome = await store.write_many(
        [
            moved(c1, "a", S.SITE_CHECK),
            moved(c2, "late", S.REVIEWING),  # c2 moved on since it was read
            Write(None, with_load_deltas(None, record("c1")), (), ()),  # c1 exists
            Write(None, new, new.outbox, new.processed),
            moved(record("ghost"), "g", S.SITE_CHECK),  # never stored
        ]
    )
    assert outcome == [True, False, False, True, False]
    after = await stored(store, "c1")
    assert (after.state, after.sequence, after.has_processed("a")) == (S.SITE_CHECK, 3, True)
    assert [e.sequence for e in after.outbox] == [1, 2, 3]
    assert (after.outbox_pending, after.loads_pending) == (True, False)  # same handler, open
    late = await stored(store, "c2")
    assert (late.state, late.has_processed("late")) == (S.SITE_CHECK, False)
    assert (await stored(store, "c3")).loads_pending is True
    assert await store.get("ghost") is None
    assert await store.write_many([]) == []


async def test_load_deltas_count_once_however_often_applied(store: RoutingStore) -> None:
    before = await store.loads(["roads-1", "roads-2"])
    first = with_load_deltas(None, record("c1"))
    assert await store.write_many([Write(None, first, first.outbox, first.processed)]) == [True]
    assert [r.complaint_id for r in await store.pending_loads()] == ["c1"]
    await store.apply_loads(first.load_deltas)
    await store.apply_loads(first.load_deltas)  # a recovery after a crash applies again
    c1 = await stored(store, "c1")
    handed_over = c1.model_copy(update={"handler": LEE})
    resolved = advanced(
        handed_over,
        caused_by="resolve",
        events=(event("c1", 3, S.RESOLVED, handler=LEE),),
        changes=Changes(),
        counts=Counts(),
    )
    second = with_load_deltas(c1, resolved)
    assert await store.write_many([Write(c1, second, resolved.outbox[-1:], ("resolve",))]) == [True]
    await store.apply_loads(second.load_deltas)
    await store.apply_loads(second.load_deltas)
    loads = await store.loads(["roads-1", "roads-2"])
    assert loads["roads-1"] == before["roads-1"]
    assert loads["roads-2"] == Load(open=before["roads-2"].open, total=before["roads-2"].total + 1)
    await store.settle_loads([await stored(store, "c1")])
    assert await store.pending_loads() == []


async def test_outboxes_are_cleared_in_bulk_and_settle_their_loads(store: RoutingStore) -> None:
    for complaint_id in ("c1", "c2"):
        written = with_load_deltas(None, record(complaint_id))
        await store.write_many([Write(None, written, written.outbox, written.processed)])
    c1, c2 = await stored(store, "c1"), await stored(store, "c2")
    await store.write_many([moved(c2, "later", S.SITE_CHECK)])
    await store.clear_outboxes(
        [
            Cleared("c1", tuple(e.event_id for e in c1.outbox), 2),
            Cleared("c2", tuple(e.event_id for e in c2.outbox), 2),  # one event came after
        ]
    )
    cleared = await stored(store, "c1")
    assert (cleared.outbox, cleared.outbox_pending, cleared.loads_pending) == ((), False, False)
    later = await stored(store, "c2")
    assert ([e.sequence for e in later.outbox], later.outbox_pending) == ([3], True)
    assert [r.complaint_id for r in await store.pending_outboxes()] == ["c2"]
    await store.clear_outboxes([])


def case_record(
    complaint_id: str,
    state: S,
    *,
    resident: str | None = "p:one",
    area: str = "연희동",
    received_at: datetime = T0,
    concluded_at: datetime | None = None,
    linked_to: LinkedTo | None = None,
) -> RoutingRecord:
    return record(complaint_id, state).model_copy(
        update={
            "resident_key": resident,
            "area": area,
            "received_at": received_at,
            "concluded_at": concluded_at,
            "terms": ("가로등/NN", "고장/NN"),
            "linked_to": linked_to,
        }
    )


async def test_case_candidates_are_found_by_their_keys_within_the_window(
    store: RoutingStore,
) -> None:
    old = T0 - timedelta(days=400)
    for r in [
        case_record("done", S.RESOLVED, concluded_at=T0),
        case_record("done-long-ago", S.CLOSED, concluded_at=old),
        case_record("done-other-resident", S.RESOLVED, resident="p:two", concluded_at=T0),
        case_record("open-here", S.SITE_CHECK),
        case_record("open-elsewhere", S.SITE_CHECK, area="연남동"),
        case_record(
            "open-but-linked",
            S.SITE_CHECK,
            linked_to=LinkedTo(
                complaint_id="open-here", receipt_number="261125-000001", similarity=0.5
            ),
        ),
        case_record("open-long-ago", S.SITE_CHECK, received_at=old),
    ]:
        assert await store.create(r)
    lookup = CaseLookup(
        repeat_keys=frozenset({"p:one|roads"}),
        repeat_since=T0 - timedelta(days=365),
        case_keys=frozenset({"roads|연희동"}),
        case_since=T0 - timedelta(days=30),
    )
    found = await store.case_candidates(lookup)
    assert sorted(r.complaint_id for r in found) == ["done", "open-here"]
    assert [r.complaint_id for r in await store.linked_to_cases(["open-here"])] == [
        "open-but-linked"
    ]
    assert await store.linked_to_cases([]) == []


async def test_a_reopened_complaint_is_no_longer_a_repeat_candidate(store: RoutingStore) -> None:
    done = case_record("done", S.RESOLVED, concluded_at=T0)
    assert await store.create(done)
    reopened = event("done", 3, S.HANDLER_ASSIGNED)
    assert await store.advance(done, caused_by="reopen-1", events=[reopened])
    lookup = CaseLookup(
        repeat_keys=frozenset({"p:one|roads"}),
        repeat_since=T0 - timedelta(days=1),
        case_keys=frozenset(),
        case_since=T0,
    )
    assert await store.case_candidates(lookup) == []
