"""intake's store contract: the in-memory fake (unit tier) and MongoDB (service tier) agree."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from intake.filing import file_submission, new_receipt_number, new_tracking_token
from intake.store import (
    MAX_BOUND_RESIDENTS,
    RELAY_GRACE,
    FiledRecord,
    MongoSubmissionStore,
    Refused,
    SubmissionStore,
)
from schemas import ComplaintFiled, ComplaintSubmitted
from schemas.events import PhotoRef
from schemas.tokens import hash_token
from tests.fakes.intake import InMemorySubmissionStore, insert

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def bare_store(request: pytest.FixtureRequest) -> SubmissionStore:
    if request.param == "mongo":
        return MongoSubmissionStore(request.getfixturevalue("mongo_db"))
    return InMemorySubmissionStore()


@pytest.fixture
async def store(bare_store: SubmissionStore) -> SubmissionStore:
    await bare_store.ensure_indexes()
    return bare_store


def filed(
    *,
    channel: str = "kakao",
    channel_ref: str | None = None,
    receipt_number: str | None = None,
    at: datetime = NOW,
    tracking: str = "tracking-token",
) -> ComplaintFiled:
    submission = ComplaintSubmitted.model_validate(
        {"channel": channel, "channel_ref": channel_ref, "body": "가로등이 꺼져 있어요"}
    )
    return file_submission(
        submission,
        complaint_id=str(uuid.uuid4()),
        receipt_number=receipt_number or new_receipt_number(at),
        tracking_token=tracking,
        resident_token="resident-token",
        filed_at=at,
    )


async def test_an_inserted_complaint_is_found_by_its_channel_ref_unpublished(
    store: SubmissionStore,
) -> None:
    event = filed(channel_ref="kakao-1")
    record = await insert(store, event, "tracking-token", "resident-token")
    assert isinstance(record, FiledRecord)
    assert (record.filed, record.tracking_token, record.resident_token) == (
        event,
        "tracking-token",
        "resident-token",
    )
    assert record.published is False
    found = await store.find_by_channel_refs({("kakao", "kakao-1"), ("kakao", "kakao-2")})
    assert found == {("kakao", "kakao-1"): record.stored()}  # issue 11 §1: tokens not kept
    assert found[("kakao", "kakao-1")].tracking_token is None
    assert await store.find_by_channel_refs({("web", "kakao-1")}) == {}


async def test_a_taken_channel_ref_is_refused_and_the_rest_of_the_batch_inserted(
    store: SubmissionStore,
) -> None:
    first = await insert(store, filed(channel_ref="ref-1"), "t1", "r1")
    assert isinstance(first, FiledRecord)
    again = FiledRecord(filed(channel_ref="ref-1"), "t2", "r2", published=False)
    other_channel = FiledRecord(filed(channel="web", channel_ref="ref-1"), "t3", "r3", False)
    outcome = await store.insert_many([again, other_channel])
    assert outcome == [Refused.CHANNEL_REF, other_channel]
    found = await store.find_by_channel_refs({("kakao", "ref-1"), ("web", "ref-1")})
    assert found == {("kakao", "ref-1"): first.stored(), ("web", "ref-1"): other_channel.stored()}


async def test_a_channel_ref_that_reads_like_an_index_name_is_still_a_channel_ref(
    store: SubmissionStore,
) -> None:
    """Refusals are told apart by the index hit, not by words in the error message."""
    assert isinstance(
        await insert(store, filed(channel_ref="receipt_unique"), "t", "r"), FiledRecord
    )
    assert await insert(store, filed(channel_ref="receipt_unique"), "t", "r") is Refused.CHANNEL_REF


async def test_complaints_without_a_channel_ref_never_collide(store: SubmissionStore) -> None:
    both = [FiledRecord(filed(), f"t{i}", f"r{i}", published=False) for i in (1, 2)]
    assert await store.insert_many(both) == both


async def test_a_taken_receipt_number_is_refused_alone(store: SubmissionStore) -> None:
    assert isinstance(
        await insert(store, filed(receipt_number="261201-000001"), "t1", "r1"), FiledRecord
    )
    taken = FiledRecord(filed(channel_ref="ref-2", receipt_number="261201-000001"), "t", "r", False)
    fine = FiledRecord(filed(channel_ref="ref-3", receipt_number="261201-000002"), "t", "r", False)
    assert await store.insert_many([taken, fine]) == [Refused.RECEIPT, fine]
    assert list(await store.find_by_channel_refs({("kakao", "ref-2"), ("kakao", "ref-3")})) == [
        ("kakao", "ref-3")
    ]


async def test_the_relay_sees_only_unpublished_complaints_past_the_grace_window(
    store: SubmissionStore,
) -> None:
    now = NOW + timedelta(minutes=5)
    older = filed(at=now - timedelta(seconds=30))
    old = filed(channel_ref="old", at=now - RELAY_GRACE - timedelta(seconds=1))
    young = filed(at=now - RELAY_GRACE + timedelta(seconds=1))
    published = filed(at=now - timedelta(minutes=1))
    for event in (old, young, published, older):
        assert isinstance(await insert(store, event, "t", "r"), FiledRecord)
    await store.mark_published(published.complaint_id)
    await store.mark_published("no-such-complaint")

    due = await store.unpublished(older_than=now - RELAY_GRACE)
    assert [r.filed.complaint_id for r in due] == [older.complaint_id, old.complaint_id]
    assert all(not r.published for r in due)
    first = await store.unpublished(older_than=now - RELAY_GRACE, limit=1)
    assert [r.filed.complaint_id for r in first] == [older.complaint_id]

    await store.mark_published_many([old.complaint_id, "no-such-complaint"])
    again = await store.unpublished(older_than=now - RELAY_GRACE)
    assert [r.filed.complaint_id for r in again] == [older.complaint_id]
    found = await store.find_by_channel_refs({("kakao", "old")})
    assert found[("kakao", "old")].published is True


async def test_a_resident_token_is_known_once_remembered(store: SubmissionStore) -> None:
    token, other, stranger = (new_tracking_token() for _ in range(3))
    assert await store.known_residents({token}) == set()
    await store.remember_residents({token}, NOW)
    await store.remember_residents({token, other}, NOW + timedelta(days=1))
    assert await store.known_residents({token, other, stranger}) == {token, other}
    assert await store.known_residents(set()) == set()


async def test_only_hashes_of_the_tokens_are_stored(bare_store: SubmissionStore) -> None:
    """Issue 11 §1: what the store keeps holds neither token, only their hashes."""
    store = bare_store
    await store.ensure_indexes()
    tracking, resident = new_tracking_token(), new_tracking_token()
    submission = ComplaintSubmitted.model_validate({"channel": "web", "body": "가로등"})
    event = file_submission(
        submission,
        complaint_id=str(uuid.uuid4()),
        receipt_number=new_receipt_number(NOW),
        tracking_token=tracking,
        resident_token=resident,
        filed_at=NOW,
    )
    assert isinstance(await insert(store, event, tracking, resident), FiledRecord)
    await store.remember_residents({resident}, NOW)
    if isinstance(store, MongoSubmissionStore):
        docs = [doc async for doc in store.col.find({})]
        docs += [doc async for doc in store.residents.find({})]
        kept = [repr(d) for d in docs]
    else:
        assert isinstance(store, InMemorySubmissionStore)
        kept = [repr(store.rows), repr(store.residents)]
    assert kept
    assert tracking not in repr(kept)
    assert resident not in repr(kept)
    assert await store.token_matches(event.complaint_id, tracking) is True
    [found] = await store.unpublished(older_than=NOW + timedelta(days=1))
    assert (found.tracking_token, found.resident_token) == (None, None)


async def test_only_the_complaints_own_tracking_token_matches(store: SubmissionStore) -> None:
    event = filed(tracking="the-right-token")
    assert isinstance(await insert(store, event, "the-right-token", "r"), FiledRecord)
    assert await store.token_matches(event.complaint_id, "the-right-token") is True
    assert await store.token_matches(event.complaint_id, "the-wrong-token") is False
    assert await store.token_matches(event.complaint_id, "") is False
    assert await store.token_matches("no-such-complaint", "the-right-token") is False


async def test_the_filing_residents_token_matches_too(store: SubmissionStore) -> None:
    """Issue 12: a resident acts on their complaint with the resident token (the portal's
    cookie) as well as with the complaint's tracking token; another resident's does not."""
    mine = filed(tracking="mine-tracking")
    theirs = filed(tracking="theirs-tracking").model_copy(
        update={"resident_token_hash": hash_token("their-resident-token")}
    )
    await insert(store, mine, "mine-tracking", "resident-token")
    await insert(store, theirs, "theirs-tracking", "their-resident-token")
    assert await store.token_matches(mine.complaint_id, "resident-token") is True
    assert await store.token_matches(theirs.complaint_id, "their-resident-token") is True
    assert await store.token_matches(mine.complaint_id, "theirs-tracking") is False
    assert await store.token_matches(mine.complaint_id, "their-resident-token") is False
    assert await store.token_matches(theirs.complaint_id, "resident-token") is False


async def test_a_submission_files_once_and_is_found_by_its_event_id(
    store: SubmissionStore,
) -> None:
    first = FiledRecord(filed(), "t1", "r1", published=False, submission_id="sub-1")
    again = FiledRecord(filed(), "t2", "r2", published=False, submission_id="sub-1")
    other = FiledRecord(filed(), "t3", "r3", published=False, submission_id="sub-2")
    assert await store.insert_many([first]) == [first]
    assert await store.insert_many([again, other]) == [Refused.SUBMISSION, other]
    found = await store.find_by_submissions({"sub-1", "sub-2", "sub-3"})
    assert found == {"sub-1": first.stored(), "sub-2": other.stored()}
    assert await store.find_by_submissions(set()) == {}
    # complaints filed before submission ids were kept never collide with each other
    legacy = [FiledRecord(filed(), f"t{i}", f"r{i}", published=False) for i in (4, 5)]
    assert await store.insert_many(legacy) == legacy


async def test_the_photos_of_complaints_are_read_by_complaint_id(store: SubmissionStore) -> None:
    ref = PhotoRef(photo_id="p" * 22, content_type="image/jpeg", size=1234)
    submission = ComplaintSubmitted.model_validate({"channel": "web", "body": "가로등"})
    with_photo = file_submission(
        submission,
        complaint_id=str(uuid.uuid4()),
        receipt_number=new_receipt_number(NOW),
        tracking_token="t",
        resident_token="r",
        filed_at=NOW,
        photos=[ref],
    )
    without = filed()
    for event in (with_photo, without):
        assert isinstance(await insert(store, event, "t", "r"), FiledRecord)

    found = await store.photos_of([with_photo.complaint_id, without.complaint_id, "none"])

    assert found == {with_photo.complaint_id: [ref]}
    assert await store.photos_of([]) == {}


async def test_phone_counts_add_up_per_key_and_answer_the_totals(store: SubmissionStore) -> None:
    expires = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    first = await store.count_phones({"a:2026-12-02": (2, expires), "b:2026-12-02": (1, expires)})
    assert first == {"a:2026-12-02": 2, "b:2026-12-02": 1}
    again = await store.count_phones({"a:2026-12-02": (3, expires)})
    assert again == {"a:2026-12-02": 5}
    assert await store.count_phones({}) == {}


def filed_by(resident: str, phone: str | None, at: datetime = NOW) -> ComplaintFiled:
    """A web filing by the holder of ``resident`` (a token), naming ``phone``."""
    submission = ComplaintSubmitted.model_validate(
        {
            "channel": "web",
            "body": "가로등이 꺼져 있어요",
            "resident": {"phone": phone, "notification_consent": phone is not None},
        }
    )
    return file_submission(
        submission,
        complaint_id=str(uuid.uuid4()),
        receipt_number=new_receipt_number(at),
        tracking_token=new_tracking_token(),
        resident_token=resident,
        filed_at=at,
    )


async def test_recovery_reads_a_complaints_owner_by_its_receipt_number(
    store: SubmissionStore,
) -> None:
    event = filed_by("resident-a-token-0001", "010-2222-3333")
    await insert(store, event, "t", "resident-a-token-0001")

    owner = await store.owner_by_receipt(event.receipt_number)

    assert owner is not None
    assert (owner.complaint_id, owner.receipt_number) == (event.complaint_id, event.receipt_number)
    assert owner.resident_hashes == (hash_token("resident-a-token-0001"),)
    assert owner.phone == "010-2222-3333"
    assert "010" not in repr(owner)
    assert await store.owner_by_receipt("261201-000000") is None


async def test_a_bound_resident_token_owns_the_complaint_and_finds_its_residents_others(
    store: SubmissionStore,
) -> None:
    old, new = "old-device-token-0001", "new-device-token-0001"
    first = filed_by(old, "010-2222-3333", NOW)
    second = filed_by(old, None, NOW + timedelta(minutes=1))
    stranger = filed_by("someone-else-token-01", "010-2222-3333", NOW + timedelta(minutes=2))
    for event, resident in ((first, old), (second, old), (stranger, "someone-else-token-01")):
        await insert(store, event, "t", resident)

    assert not await store.token_matches(first.complaint_id, new)
    await store.bind_resident([first.complaint_id], hash_token(new))
    await store.bind_resident([first.complaint_id], hash_token(new))  # a repeat: no change

    assert await store.token_matches(first.complaint_id, new)
    assert await store.token_matches(first.complaint_id, old)
    assert not await store.token_matches(second.complaint_id, new)
    owner = await store.owner_by_receipt(first.receipt_number)
    assert owner is not None
    assert owner.resident_hashes == (hash_token(old), hash_token(new))
    # filed under the old token, or bound to the new one: newest filed first
    found = await store.owned_by([hash_token(new)], limit=10)
    assert [o.complaint_id for o in found] == [first.complaint_id]
    found = await store.owned_by(owner.resident_hashes, limit=10)
    assert [o.complaint_id for o in found] == [second.complaint_id, first.complaint_id]
    assert [o.complaint_id for o in await store.owned_by(owner.resident_hashes, limit=1)] == [
        second.complaint_id
    ]
    if isinstance(store, MongoSubmissionStore):  # each of the two reads on its own index
        for query, index in (
            ({"event.resident_token_hash": {"$in": [hash_token(old)]}}, "by_resident"),
            ({"bound_residents": {"$in": [hash_token(new)]}}, "by_bound_resident"),
            ({"receipt_number": first.receipt_number}, "receipt_unique"),
        ):
            plan = (await store.col.find(query).explain())["queryPlanner"]["winningPlan"]
            assert index in str(plan), plan


async def test_a_complaint_keeps_the_latest_bindings_only(store: SubmissionStore) -> None:
    event = filed_by("resident-a-token-0001", "010-2222-3333")
    await insert(store, event, "t", "resident-a-token-0001")
    tokens = [f"device-{n:02d}-token-0001" for n in range(MAX_BOUND_RESIDENTS + 2)]
    for token in tokens:
        await store.bind_resident([event.complaint_id], hash_token(token))

    owner = await store.owner_by_receipt(event.receipt_number)
    assert owner is not None
    assert len(owner.resident_hashes) == 1 + MAX_BOUND_RESIDENTS
    assert not await store.token_matches(event.complaint_id, tokens[0])
    assert await store.token_matches(event.complaint_id, tokens[-1])


async def test_a_complaints_submission_is_found_by_its_id(store: SubmissionStore) -> None:
    """A correction attaches its photos to the submission the complaint was filed from."""
    event = filed(tracking="t")
    [outcome] = await store.insert_many(
        [FiledRecord(event, "t", "r", published=False, submission_id="submission-1")]
    )
    assert isinstance(outcome, FiledRecord)
    assert await store.submission_of(event.complaint_id) == "submission-1"
    assert await store.submission_of("no-such-complaint") is None
