"""intake's store contract: the in-memory fake (unit tier) and MongoDB (service tier) agree."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from intake.filing import file_submission, new_receipt_number, new_tracking_token
from intake.store import RELAY_GRACE, MongoSubmissionStore, ReceiptCollision, SubmissionStore
from schemas import ComplaintFiled, ComplaintSubmitted
from tests.fakes.intake import InMemorySubmissionStore

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
    record = await store.insert(event, "tracking-token", "resident-token")
    assert record is not None
    assert (record.filed, record.tracking_token, record.resident_token) == (
        event,
        "tracking-token",
        "resident-token",
    )
    assert record.published is False
    assert await store.find_by_channel_ref("kakao", "kakao-1") == record
    assert await store.find_by_channel_ref("kakao", "kakao-2") is None
    assert await store.find_by_channel_ref("web", "kakao-1") is None


async def test_the_same_channel_ref_again_is_refused_with_none(store: SubmissionStore) -> None:
    first = await store.insert(filed(channel_ref="ref-1"), "t1", "r1")
    assert first is not None
    assert await store.insert(filed(channel_ref="ref-1"), "t2", "r2") is None
    assert await store.find_by_channel_ref("kakao", "ref-1") == first
    other_channel = await store.insert(filed(channel="web", channel_ref="ref-1"), "t3", "r3")
    assert other_channel is not None


async def test_complaints_without_a_channel_ref_never_collide(store: SubmissionStore) -> None:
    assert await store.insert(filed(), "t1", "r1") is not None
    assert await store.insert(filed(), "t2", "r2") is not None


async def test_a_taken_receipt_number_raises_receipt_collision(store: SubmissionStore) -> None:
    assert await store.insert(filed(receipt_number="261201-000001"), "t1", "r1") is not None
    with pytest.raises(ReceiptCollision):
        await store.insert(filed(channel_ref="ref-2", receipt_number="261201-000001"), "t2", "r2")
    assert await store.find_by_channel_ref("kakao", "ref-2") is None


async def test_the_relay_sees_only_unpublished_complaints_past_the_grace_window(
    store: SubmissionStore,
) -> None:
    now = NOW + timedelta(minutes=5)
    older = filed(at=now - timedelta(seconds=30))
    old = filed(channel_ref="old", at=now - RELAY_GRACE - timedelta(seconds=1))
    young = filed(at=now - RELAY_GRACE + timedelta(seconds=1))
    published = filed(at=now - timedelta(minutes=1))
    for event in (old, young, published, older):
        assert await store.insert(event, "t", "r") is not None
    await store.mark_published(published.complaint_id)
    await store.mark_published("no-such-complaint")

    due = await store.unpublished(older_than=now - RELAY_GRACE)
    assert [r.filed.complaint_id for r in due] == [older.complaint_id, old.complaint_id]
    assert all(not r.published for r in due)
    first = await store.unpublished(older_than=now - RELAY_GRACE, limit=1)
    assert [r.filed.complaint_id for r in first] == [older.complaint_id]

    await store.mark_published(old.complaint_id)
    again = await store.unpublished(older_than=now - RELAY_GRACE)
    assert [r.filed.complaint_id for r in again] == [older.complaint_id]
    found = await store.find_by_channel_ref("kakao", "old")
    assert found is not None
    assert found.published is True


async def test_a_resident_token_is_known_once_remembered(store: SubmissionStore) -> None:
    token = new_tracking_token()
    assert await store.known_resident(token) is False
    await store.remember_resident(token, NOW)
    await store.remember_resident(token, NOW + timedelta(days=1))
    assert await store.known_resident(token) is True
    assert await store.known_resident(new_tracking_token()) is False


async def test_only_the_complaints_own_tracking_token_matches(store: SubmissionStore) -> None:
    event = filed(tracking="the-right-token")
    assert await store.insert(event, "the-right-token", "r") is not None
    assert await store.token_matches(event.complaint_id, "the-right-token") is True
    assert await store.token_matches(event.complaint_id, "the-wrong-token") is False
    assert await store.token_matches(event.complaint_id, "") is False
    assert await store.token_matches("no-such-complaint", "the-right-token") is False
