"""What the handlers rely on from notifier's store, held against the in-memory fake (unit
tier) and MongoDB (the ``mongo`` parameter, service tier) alike."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notifier.store import (
    Claim,
    DeliveryRecord,
    DeliveryStatus,
    Finish,
    Hold,
    Mark,
    MongoNotifierStore,
    NotifierStore,
    Parked,
    Recipient,
    delivery_id,
)
from schemas import (
    Channel,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    Location,
    Resident,
)
from schemas.events import AlertKind, HandlerRef, PhotoRef
from tests.fakes.notifier import InMemoryNotifierStore

NOW = datetime(2025, 11, 25, 9, 30, tzinfo=UTC)
PHONE = "010-2345-6789"


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def adapter(request: pytest.FixtureRequest) -> NotifierStore:
    if request.param == "memory":
        return InMemoryNotifierStore()
    return MongoNotifierStore(request.getfixturevalue("mongo_db"))


@pytest.fixture
async def store(adapter: NotifierStore) -> NotifierStore:
    await adapter.ensure_indexes()
    return adapter


def new_id() -> str:
    return str(uuid.uuid4())


def filed(cid: str, *, phone: str | None = PHONE, consent: bool = True) -> ComplaintFiled:
    return ComplaintFiled(
        complaint_id=cid,
        receipt_number="251125-000042",
        tracking_token_hash="0" * 64,
        channel=Channel.WEB,
        resident=Resident(
            name="홍길동", phone=phone, email="hong@example.kr", notification_consent=consent
        ),
        body="골목에 쓰레기가 무단투기되어 있습니다.",
        location=Location(),
        submitted_at=NOW,
    )


def changed(cid: str, sequence: int, to_state: str = "assigned") -> ComplaintStatusChanged:
    return ComplaintStatusChanged.model_validate(
        {
            "complaint_id": cid,
            "receipt_number": "251125-000042",
            "sequence": sequence,
            "from_state": None,
            "to_state": to_state,
            "trigger": "assign",
            "department": "roads",
            "department_name": "도로과",
            "actor": "routing",
        }
    )


def deadline(cid: str) -> ComplaintDeadlineAlert:
    chief = HandlerRef(handler_id="chief", name="박과장", office_phone="032-560-5100")
    return ComplaintDeadlineAlert(
        complaint_id=cid,
        receipt_number="251125-000042",
        kind=AlertKind.WARNING,
        state="site_check",
        department="roads",
        department_name="도로과",
        supervisor=chief,
        received_at=NOW,
        due_at=NOW + timedelta(days=7),
    )


async def claim(
    store: NotifierStore, did: str, *, now: datetime = NOW, fallback_from: str | None = None
) -> DeliveryRecord:
    return await store.claim(
        Claim(
            delivery_id=did,
            complaint_id="c-1",
            source_event_id="ev-1",
            recipient="resident",
            channel="alimtalk",
            template_code="SOTONG_ASSIGNED",
            fallback_from=fallback_from,
        ),
        now=now,
    )


# -- recipients, from complaint.filed -----------------------------------------------------


async def test_a_recipient_is_unknown_until_remembered(store: NotifierStore) -> None:
    cid = new_id()
    assert await store.recipient(cid) is None
    await store.remember(filed(cid))
    assert await store.recipient(cid) == Recipient(
        complaint_id=cid,
        receipt_number="251125-000042",
        notification_consent=True,
        name="홍길동",
        phone=PHONE,
        email="hong@example.kr",
    )


async def test_the_first_filing_wins_and_a_redelivery_changes_nothing(
    store: NotifierStore,
) -> None:
    cid = new_id()
    await store.remember(filed(cid))
    await store.remember(filed(cid, phone=None, consent=False))
    await asyncio.gather(*(store.remember(filed(cid, consent=False)) for _ in range(3)))
    recipient = await store.recipient(cid)
    assert recipient is not None
    assert (recipient.phone, recipient.notification_consent) == (PHONE, True)
    assert PHONE not in repr(recipient)


async def test_a_missing_contact_is_remembered_as_none(store: NotifierStore) -> None:
    cid = new_id()
    await store.remember(filed(cid, phone=None))
    recipient = await store.recipient(cid)
    assert recipient is not None
    assert recipient.phone is None


async def test_the_app_that_filed_it_and_its_photo_ids_are_remembered(
    store: NotifierStore,
) -> None:
    cid = new_id()
    photos = [PhotoRef(photo_id=p, content_type="image/jpeg", size=10) for p in ("p1", "p2")]
    filing = filed(cid).model_copy(update={"channel_client": "fixit", "photos": photos})
    await store.remember(filing)
    recipient = await store.recipient(cid)
    assert recipient is not None
    assert (recipient.channel_client, recipient.photos) == ("fixit", ("p1", "p2"))
    assert (await store.recipients_of([cid]))[cid] == recipient


async def test_photos_a_correction_added_join_the_remembered_ones_once(
    store: NotifierStore,
) -> None:
    cid, unknown = new_id(), new_id()
    photos = [PhotoRef(photo_id="p1", content_type="image/jpeg", size=10)]
    await store.remember(filed(cid).model_copy(update={"photos": photos}))

    await store.add_photos({cid: ["p2", "p1"], unknown: ["p9"]})
    await store.add_photos({cid: ["p2"]})  # a redelivered correction

    recipient = await store.recipient(cid)
    assert recipient is not None
    assert recipient.photos == ("p1", "p2")
    assert await store.recipient(unknown) is None


# -- the ledger: one delivery per (event, recipient, channel) --------------------------


async def test_a_delivery_is_named_by_event_recipient_and_channel() -> None:
    assert delivery_id("ev-1", "resident", "sms") == "ev-1:resident:sms"


async def test_the_first_claim_is_fresh_and_sending(store: NotifierStore) -> None:
    did = delivery_id(new_id(), "resident", "alimtalk")
    record = await store.claim(
        Claim(
            delivery_id=did,
            complaint_id="c-1",
            source_event_id="ev-1",
            recipient="resident",
            channel="alimtalk",
            template_code="SOTONG_ASSIGNED",
            fallback_from="outbox",
        ),
        now=NOW,
    )
    assert record.fresh
    assert (record.delivery_id, record.complaint_id, record.source_event_id) == (
        did,
        "c-1",
        "ev-1",
    )
    assert (record.recipient, record.channel, record.template_code) == (
        "resident",
        "alimtalk",
        "SOTONG_ASSIGNED",
    )
    assert (record.status, record.attempts, record.fallback_from) == (
        DeliveryStatus.SENDING,
        1,
        "outbox",
    )
    assert (record.outcome_published, record.dead_lettered, record.finished_at) == (
        False,
        False,
        None,
    )


async def test_claiming_again_while_sending_counts_one_more_attempt(store: NotifierStore) -> None:
    did = delivery_id(new_id(), "resident", "alimtalk")
    await claim(store, did)
    again = await store.claim(
        Claim(
            delivery_id=did,
            complaint_id="c-1",
            source_event_id="ev-1",
            recipient="resident",
            channel="alimtalk",
            template_code="SOTONG_ASSIGNED",
            fallback_from="ignored",
        ),
        now=NOW + timedelta(seconds=5),
    )
    assert not again.fresh
    assert (again.status, again.attempts) == (DeliveryStatus.SENDING, 2)
    assert again.fallback_from is None, "the first claim's record stands"
    stored = await store.delivery(did)
    assert stored is not None
    assert (stored.attempts, stored.fresh) == (2, False)


async def test_of_concurrent_claims_exactly_one_is_fresh(store: NotifierStore) -> None:
    did = delivery_id(new_id(), "resident", "alimtalk")
    records = await asyncio.gather(
        *(
            store.claim(
                Claim(
                    delivery_id=did,
                    complaint_id="c-1",
                    source_event_id="ev-1",
                    recipient="resident",
                    channel="alimtalk",
                    template_code="SOTONG_ASSIGNED",
                ),
                now=NOW,
            )
            for _ in range(4)
        )
    )
    assert sum(r.fresh for r in records) == 1
    assert sorted(r.attempts for r in records) == [1, 2, 3, 4]


async def test_other_recipients_and_channels_are_other_deliveries(store: NotifierStore) -> None:
    event = new_id()
    dids = [
        delivery_id(event, "resident", "alimtalk"),
        delivery_id(event, "resident", "sms"),
        delivery_id(event, "handler", "alimtalk"),
        delivery_id(new_id(), "resident", "alimtalk"),
    ]
    for did in dids:
        record = await store.claim(
            Claim(
                delivery_id=did,
                complaint_id="c-1",
                source_event_id=event,
                recipient="resident",
                channel="alimtalk",
                template_code="SOTONG_ASSIGNED",
            ),
            now=NOW,
        )
        assert record.fresh, did


async def test_finishing_records_the_outcome_and_the_retries(store: NotifierStore) -> None:
    did = delivery_id(new_id(), "resident", "alimtalk")
    await claim(store, did)
    done = await store.finish(
        did,
        DeliveryStatus.FAILED,
        now=NOW + timedelta(seconds=1),
        detail="ChannelRetryable: timed out",
        retries=2,
        final=False,
        retryable=True,
    )
    assert not done.fresh
    assert (done.status, done.attempts, done.detail) == (
        DeliveryStatus.FAILED,
        3,
        "ChannelRetryable: timed out",
    )
    assert (done.final, done.retryable) == (False, True)
    assert done.finished_at == NOW + timedelta(seconds=1)
    assert await store.delivery(did) == done


async def test_a_time_is_kept_to_the_millisecond(store: NotifierStore) -> None:
    did = delivery_id(new_id(), "resident", "alimtalk")
    await claim(store, did)
    done = await store.finish(
        did, DeliveryStatus.SENT, now=NOW.replace(microsecond=123_456), detail=None
    )
    assert done.finished_at == NOW.replace(microsecond=123_000)


async def test_only_a_claim_still_sending_can_finish(store: NotifierStore) -> None:
    did = delivery_id(new_id(), "resident", "alimtalk")
    await claim(store, did)
    sent = await store.finish(did, DeliveryStatus.SENT, now=NOW, detail="fallback from sms")
    late = await store.finish(
        did, DeliveryStatus.FAILED, now=NOW + timedelta(hours=1), detail="late", retries=5
    )
    assert late == sent
    assert (late.status, late.detail, late.attempts, late.final) == (
        DeliveryStatus.SENT,
        "fallback from sms",
        1,
        True,
    )


async def test_a_finished_claim_comes_back_unchanged(store: NotifierStore) -> None:
    did = delivery_id(new_id(), "resident", "alimtalk")
    await claim(store, did)
    skipped = await store.finish(did, DeliveryStatus.SKIPPED, now=NOW, detail="no consent")
    again = await claim(store, did, now=NOW + timedelta(minutes=1))
    assert again == skipped


async def test_finishing_without_a_claim_is_a_bug(store: NotifierStore) -> None:
    with pytest.raises(AssertionError, match="without a claim"):
        await store.finish(new_id(), DeliveryStatus.SENT, now=NOW)


async def test_published_and_dead_lettered_are_remembered(store: NotifierStore) -> None:
    did = delivery_id(new_id(), "resident", "sms")
    await claim(store, did)
    await store.finish(did, DeliveryStatus.FAILED, now=NOW, detail="refused")
    await store.mark_published(did)
    after_publish = await store.delivery(did)
    assert after_publish is not None
    assert (after_publish.outcome_published, after_publish.dead_lettered) == (True, False)
    await store.mark_dead_lettered(did)
    again = await store.claim(
        Claim(
            delivery_id=did,
            complaint_id="c-1",
            source_event_id="ev-1",
            recipient="resident",
            channel="alimtalk",
            template_code="SOTONG_ASSIGNED",
        ),
        now=NOW,
    )
    assert (again.outcome_published, again.dead_lettered, again.final) == (True, True, True)


async def test_an_unknown_delivery_is_none_and_marking_it_is_harmless(
    store: NotifierStore,
) -> None:
    did = delivery_id(new_id(), "resident", "sms")
    await store.mark_published(did)
    await store.mark_dead_lettered(did)
    assert await store.delivery(did) is None


# -- parked: lifecycle events before their recipient ------------------------------------


async def test_an_event_is_parked_once_and_read_in_lifecycle_order(store: NotifierStore) -> None:
    cid = new_id()
    third, first, second = changed(cid, 3), changed(cid, 1, "received"), changed(cid, 2)
    assert await store.park(third, correlation_id="corr-3", now=NOW)
    assert await store.park(first, correlation_id=None, now=NOW)
    assert not await store.park(third, correlation_id="other", now=NOW), "already parked"
    parallel = await asyncio.gather(
        *(store.park(second, correlation_id="corr-2", now=NOW) for _ in range(3))
    )
    assert sorted(parallel) == [False, False, True]
    await store.park(changed(new_id(), 1), correlation_id=None, now=NOW)  # another complaint

    parked = await store.parked(cid)
    assert [p.event for p in parked] == [first, second, third]
    assert [p.correlation_id for p in parked] == [None, "corr-2", "corr-3"]


async def test_an_unparked_event_is_gone(store: NotifierStore) -> None:
    cid = new_id()
    event = changed(cid, 1)
    await store.park(event, correlation_id=None, now=NOW)
    await store.unpark(event.event_id)
    await store.unpark(event.event_id)
    assert await store.parked(cid) == []
    assert await store.park(event, correlation_id=None, now=NOW), "parked afresh"


# -- deferred: held by quiet hours ------------------------------------------------------


async def test_a_message_is_held_once_per_recipient(store: NotifierStore) -> None:
    cid = new_id()
    event = changed(cid, 2)
    later = NOW + timedelta(hours=9)
    assert await store.defer(event, "resident", correlation_id="c", release_at=later, now=NOW)
    assert not await store.defer(event, "resident", correlation_id="x", release_at=NOW, now=NOW)
    assert await store.defer(event, "handler", correlation_id="c", release_at=later, now=NOW)

    [held] = await store.deferred_for(cid, "resident")
    assert (held.deferred_id, held.complaint_id, held.recipient) == (
        f"{event.event_id}:resident",
        cid,
        "resident",
    )
    assert (held.source, held.correlation_id, held.release_at) == (event, "c", later)
    assert len(await store.deferred_for(cid, "handler")) == 1
    assert await store.deferred_for(cid, "supervisor") == []


async def test_what_is_held_for_a_recipient_comes_in_lifecycle_order(
    store: NotifierStore,
) -> None:
    cid = new_id()
    at = NOW + timedelta(hours=9)
    for sequence in (4, 2, 3):
        await store.defer(
            changed(cid, sequence), "resident", correlation_id=None, release_at=at, now=NOW
        )
    held = await store.deferred_for(cid, "resident")
    assert [h.source.sequence for h in held if isinstance(h.source, ComplaintStatusChanged)] == [
        2,
        3,
        4,
    ]


async def test_due_is_what_may_go_now_oldest_first_and_each_complaint_in_order(
    store: NotifierStore,
) -> None:
    a, b = sorted([new_id(), new_id()])
    eight = NOW + timedelta(hours=9)
    nine = eight + timedelta(hours=1)
    await store.defer(changed(b, 3), "resident", correlation_id=None, release_at=eight, now=NOW)
    await store.defer(changed(a, 5), "resident", correlation_id=None, release_at=eight, now=NOW)
    await store.defer(changed(a, 4), "resident", correlation_id=None, release_at=eight, now=NOW)
    alert = deadline(a)
    await store.defer(alert, "supervisor", correlation_id=None, release_at=nine, now=NOW)

    assert await store.due(eight - timedelta(milliseconds=1)) == []
    at_eight = await store.due(eight)
    assert [(d.complaint_id, d.source.event_type) for d in at_eight] == [
        (a, "complaint.status_changed"),
        (a, "complaint.status_changed"),
        (b, "complaint.status_changed"),
    ]
    assert [
        d.source.sequence for d in at_eight if isinstance(d.source, ComplaintStatusChanged)
    ] == [
        4,
        5,
        3,
    ]
    everything = await store.due(nine + timedelta(days=1))
    assert len(everything) == 4
    assert everything[-1].source == alert
    assert isinstance(everything[-1].source, ComplaintDeadlineAlert)
    assert len(await store.due(nine, limit=2)) == 2


async def test_an_undeferred_message_is_no_longer_held(store: NotifierStore) -> None:
    cid = new_id()
    event = changed(cid, 2)
    await store.defer(event, "resident", correlation_id=None, release_at=NOW, now=NOW)
    [held] = await store.due(NOW)
    await store.undefer(held.deferred_id)
    await store.undefer(held.deferred_id)
    assert await store.due(NOW) == []
    assert await store.deferred_for(cid, "resident") == []


# -- a batch at a time: the same promises, one command per call --------------------------


def claim_for(did: str, cid: str = "c-1", channel: str = "alimtalk") -> Claim:
    return Claim(
        delivery_id=did,
        complaint_id=cid,
        source_event_id=did.split(":")[0],
        recipient="resident",
        channel=channel,
        template_code="SOTONG_ASSIGNED",
    )


async def test_recipients_are_read_and_remembered_a_batch_at_a_time(
    store: NotifierStore,
) -> None:
    known, other, unknown = new_id(), new_id(), new_id()
    await store.remember(filed(known))
    await store.remember_many([filed(known, phone=None), filed(other, consent=False), filed(other)])

    found = await store.recipients_of([known, other, unknown])
    assert set(found) == {known, other}
    assert found[known].phone == PHONE, "the first filing wins"
    assert found[other].notification_consent is False, "the first of a batch wins too"
    assert await store.recipients_of([]) == {}


async def test_events_are_parked_and_read_back_a_batch_at_a_time(store: NotifierStore) -> None:
    one, two = new_id(), new_id()
    second, first, elsewhere = changed(one, 2), changed(one, 1, "received"), changed(two, 1)
    await store.park(second, correlation_id=None, now=NOW)

    newly = await store.park_many(
        [Parked(second, "x"), Parked(first, "corr-1"), Parked(elsewhere, None)], now=NOW
    )
    assert newly == {first.event_id, elsewhere.event_id}, "only the first parking counts"
    parked = await store.parked_for([one, two, new_id()])
    assert {cid: [p.event for p in items] for cid, items in parked.items()} == {
        one: [first, second],
        two: [elsewhere],
    }
    assert parked[one][0].correlation_id == "corr-1"

    await store.unpark_many([first.event_id, elsewhere.event_id])
    assert [p.event for p in (await store.parked_for([one, two]))[one]] == [second]
    assert two not in await store.parked_for([one, two])


async def test_a_batch_claims_fresh_resumes_sending_and_leaves_finished_alone(
    store: NotifierStore,
) -> None:
    sending, finished, new, won = (delivery_id(new_id(), "resident", "sms") for _ in range(4))
    await store.claim(claim_for(sending), now=NOW)
    await store.claim(claim_for(finished), now=NOW)
    await store.finish(finished, DeliveryStatus.SENT, now=NOW)
    known = await store.records([sending, finished, new, won])
    assert set(known) == {sending, finished}
    assert not any(r.fresh for r in known.values())
    await store.claim(claim_for(won), now=NOW)  # another attempt, after the batch read

    records = await store.claim_many(
        [claim_for(d) for d in (sending, finished, new, won)], known=known, now=NOW
    )

    by_id = {r.delivery_id: r for r in records}
    assert [r.delivery_id for r in records] == [sending, finished, new, won]
    assert (by_id[sending].status, by_id[sending].attempts, by_id[sending].fresh) == (
        DeliveryStatus.SENDING,
        2,
        False,
    )
    assert (by_id[finished].status, by_id[finished].attempts) == (DeliveryStatus.SENT, 1)
    assert (by_id[new].status, by_id[new].attempts, by_id[new].fresh) == (
        DeliveryStatus.SENDING,
        1,
        True,
    )
    assert by_id[won].fresh is False, "the other attempt's claim, not this batch's"
    stored = await store.records([sending, new])
    assert (stored[sending].attempts, stored[new].attempts) == (2, 1)


async def test_settling_finishes_what_is_sending_and_marks_what_went_out(
    store: NotifierStore,
) -> None:
    ok, late, earlier = (delivery_id(new_id(), "resident", "sms") for _ in range(3))
    for did in (ok, late, earlier):
        await store.claim(claim_for(did), now=NOW)
    await store.finish(late, DeliveryStatus.FAILED, now=NOW, detail="first")
    await store.finish(earlier, DeliveryStatus.SKIPPED, now=NOW)
    at = NOW + timedelta(seconds=1, microseconds=1500)

    await store.settle(
        [
            Finish(delivery_id=ok, status=DeliveryStatus.SENT, at=at, retries=2, published=True),
            Finish(delivery_id=late, status=DeliveryStatus.SENT, at=at, published=True),
        ],
        [Mark(delivery_id=earlier, published=True, dead_lettered=True)],
        now=at,
    )

    records = await store.records([ok, late, earlier])
    assert (records[ok].status, records[ok].attempts, records[ok].outcome_published) == (
        DeliveryStatus.SENT,
        3,
        True,
    )
    assert records[ok].finished_at == datetime(2025, 11, 25, 9, 30, 1, 1000, tzinfo=UTC)
    assert (records[late].status, records[late].detail) == (DeliveryStatus.FAILED, "first")
    assert records[late].outcome_published is False, "only a claim still sending ends"
    assert (records[earlier].outcome_published, records[earlier].dead_lettered) == (True, True)
    await store.settle([], [], now=at)


async def test_messages_are_held_and_read_back_a_batch_at_a_time(store: NotifierStore) -> None:
    one, two = new_id(), new_id()
    at = NOW + timedelta(hours=9)
    late, early = changed(one, 3), changed(one, 2)
    holds = [
        Hold(late, "resident", "c", at),
        Hold(early, "resident", None, at),
        Hold(early, "handler", None, at),
        Hold(changed(two, 1), "resident", None, at),
    ]
    assert await store.defer_many(holds, now=NOW) == {h.deferred_id for h in holds}
    assert await store.defer_many(holds[:1], now=NOW) == set(), "held once"

    held = await store.held_for([one, new_id()])
    assert list(held) == [one]
    assert [(h.source, h.recipient) for h in held[one] if h.recipient == "resident"] == [
        (early, "resident"),
        (late, "resident"),
    ]
    await store.undefer_many([h.deferred_id for h in held[one]])
    assert await store.held_for([one]) == {}
    assert len((await store.held_for([two]))[two]) == 1


async def test_a_retrying_delivery_is_resumed_only_by_a_claim_and_swept_past_its_lease(
    store: NotifierStore,
) -> None:
    cid = new_id()
    event = changed(cid, 2)
    did = delivery_id(event.event_id, "resident", "sms")
    claim = Claim(
        delivery_id=did,
        complaint_id=cid,
        source_event_id=event.event_id,
        recipient="resident",
        channel="sms",
        template_code="SOTONG_ASSIGNED",
        source=event,
        correlation_id="corr-1",
    )
    [fresh] = await store.claim_many([claim], known={}, now=NOW)
    assert fresh.fresh
    later = NOW + timedelta(minutes=5)
    retrying = Finish(
        delivery_id=did,
        status=DeliveryStatus.RETRYING,
        at=NOW,
        detail="sms gateway answered 503",
        final=False,
        retryable=True,
        retry_at=later,
    )
    await store.settle([retrying], [], now=NOW)
    record = await store.delivery(did)
    assert record is not None
    assert (record.status, record.retries, record.retry_at) == ("retrying", 1, later)

    assert await store.stuck(NOW + timedelta(minutes=1)) == [], "a claim within its lease"
    [found] = await store.stuck(later + timedelta(seconds=1))
    assert (found.record.delivery_id, found.correlation_id, found.source) == (
        did,
        "corr-1",
        event,
    )

    [resumed] = await store.claim_many([claim], known={did: record}, now=later)
    assert (resumed.status, resumed.attempts, resumed.fresh) == ("sending", 2, False)
    assert await store.requeue_many([found], now=later) == set(), "a resumed delivery wins"
    assert (await store.records([did]))[did].status == "sending"

    [stale] = await store.stuck(later + timedelta(seconds=1))
    assert await store.requeue_many([stale], now=later) == {did}
    requeued = await store.delivery(did)
    assert requeued is not None
    assert (requeued.status, requeued.retry_at) == ("retrying", later)


async def test_a_days_count_keeps_each_delivery_once(store: NotifierStore) -> None:
    key, other = f"{new_id()}:2025-11-25", f"{new_id()}:2025-11-25"
    expires = {key: NOW + timedelta(days=2), other: NOW + timedelta(days=2)}
    assert await store.counted([key, other]) == {}
    await store.count_many({key: ["e1:resident:sms", "e2:resident:sms"]}, expires)
    await store.count_many({key: ["e2:resident:sms", "e3:resident:sms"], other: ["x"]}, expires)
    assert await store.counted([key, other]) == {
        key: frozenset({"e1:resident:sms", "e2:resident:sms", "e3:resident:sms"}),
        other: frozenset({"x"}),
    }


async def test_forgetting_an_events_failed_deliveries_leaves_the_rest(
    store: NotifierStore,
) -> None:
    cid = new_id()
    event = changed(cid, 2)
    failed = claim_for(delivery_id(event.event_id, "resident", "sms"), cid, "sms")
    sent = Claim(**{**vars(failed), "delivery_id": delivery_id(event.event_id, "handler", "sms")})
    await store.claim_many([failed, sent], known={}, now=NOW)
    await store.settle(
        [
            Finish(delivery_id=failed.delivery_id, status=DeliveryStatus.FAILED, at=NOW),
            Finish(delivery_id=sent.delivery_id, status=DeliveryStatus.SENT, at=NOW),
        ],
        [],
        now=NOW,
    )
    assert await store.forget_failed(event.event_id) == 1
    assert await store.delivery(failed.delivery_id) is None
    assert await store.delivery(sent.delivery_id) is not None
    assert await store.forget_failed(event.event_id) == 0
