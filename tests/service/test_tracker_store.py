"""What only the MongoDB adapter can show: the documents it writes. Its behaviour is held
to the in-memory fake's by tests/contract/test_tracker_store.py."""

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from schemas.events import utcnow
from services.mongo import Document
from tests.unit.test_tracker_projection import story
from tracker.handlers import refresh
from tracker.store import MongoTrackerStore


@pytest.fixture
async def store(mongo_db: AsyncDatabase[Document]) -> MongoTrackerStore:
    store = MongoTrackerStore(mongo_db)
    await store.ensure_indexes()
    return store


async def test_the_stored_event_keeps_its_payload(store: MongoTrackerStore) -> None:
    event = story("c-1")[3]

    await store.append_many([event], stored_at=utcnow())

    doc = await store.events.find_one({"_id": event.event_id})
    assert doc is not None
    assert doc["complaint_id"] == "c-1"
    assert doc["event_type"] == "complaint.status_changed"
    assert doc["sequence"] == 2
    assert doc["payload"] == event.model_dump(mode="json")
    assert {"occurred_at", "stored_at"} <= doc.keys()


async def test_the_read_model_document_keeps_the_shape_readers_know(
    store: MongoTrackerStore,
) -> None:
    """Flat department fields for the queue's index, enums as plain strings, every field
    present (null until known), so documents an older tracker wrote read the same."""
    await store.append_many(story("c-1"), stored_at=utcnow())
    await refresh(store, ["c-1"])

    doc = await store.complaints.find_one({"_id": "c-1"})

    assert doc is not None
    assert list(doc) == [
        "_id",
        "complaint_id",
        "event_count",
        "receipt_number",
        "state",
        "updated_at",
        "department",
        "department_name",
        "handler",
        "due_at",
        "overdue",
        "auto_routed",
        "transfer_count",
        "reopen_count",
        "alerts",
        "timeline",
        "notifications",
        "rejections",
        "tracking_token_hash",
        "resident_token_hash",
        "bound_resident_hashes",
        "title",
        "body",
        "channel",
        "filed_at",
        "submitted_at",
        "service_code",
        "dong",
        "resident",
        "transcript",
        "search_terms",
        "repeated_of",
        "repeated",
        "linked_to",
        "linked",
        "rating",
        "rating_comment",
        "photos",
    ]
    assert (doc["state"], doc["department"], doc["channel"]) == ("site_check", "roads", "kakao")
    assert type(doc["state"]) is str
    assert doc["handler"] == {
        "handler_id": "h-17",
        "name": "김담당",
        "office_phone": "032-560-1234",
    }
    assert list(doc["timeline"][0]) == [
        "event_id",
        "sequence",
        "state",
        "from_state",
        "trigger",
        "occurred_at",
        "department",
        "department_name",
        "handler",
        "note",
        "remedy",
        "due_at",
        "actor",
        "correction",
        "rating",
    ]
    assert doc["notifications"][1]["outcome"] == "failed"
    assert doc["resident"] == {
        "name": "홍길동",
        "phone": "010-1234-5678",
        "email": None,
        "address": "인천 서구 청라커낼로 100",
    }
