"""intake's contact code store: the in-memory fake (unit tier) and MongoDB (service tier)
agree on insert-once and compare-and-set; on the real server the TTL index clears records."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from intake.contacts import (
    CODES,
    CodeRecord,
    CodeRules,
    ConfirmedPhones,
    ContactCodeStore,
    MongoConfirmedPhones,
    MongoContactCodes,
    confirmed_phone_key,
)
from services.mongo import Document
from tests.fakes.intake import InMemoryConfirmedPhones, InMemoryContactCodes

NOW = datetime(2026, 12, 2, 1, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def bare_store(request: pytest.FixtureRequest) -> ContactCodeStore:
    if request.param == "mongo":
        return MongoContactCodes(request.getfixturevalue("mongo_db"))
    return InMemoryContactCodes()


@pytest.fixture
async def store(bare_store: ContactCodeStore) -> ContactCodeStore:
    await bare_store.ensure_indexes()
    return bare_store


def record(complaint_id: str = "c-1") -> CodeRecord:
    return CodeRules().issue_for(
        complaint_id=complaint_id,
        receipt_number="261202-000001",
        tracking_token_hash="t" * 64,
        resident_token_hash=None,
        phone="010-1234-5678",
        now=NOW,
        code="123456",
        salt="salt",
    )


async def test_a_complaints_first_code_is_kept_and_read_back_as_written(
    store: ContactCodeStore,
) -> None:
    first = record()
    assert await store.create(first) is True
    assert await store.create(replace(first, code_hash="other")) is False

    assert await store.get("c-1") == first
    assert await store.get("nope") is None


async def test_a_change_is_written_only_over_the_version_it_was_made_from(
    store: ContactCodeStore,
) -> None:
    await store.create(record())
    stored = await store.get("c-1")
    assert stored is not None
    tried = replace(stored, attempts=1, resends=(NOW,), confirmed_at=NOW)

    assert await store.update(tried) is True
    assert await store.update(replace(stored, attempts=1)) is False  # a concurrent attempt lost
    after = await store.get("c-1")
    assert after == replace(tried, version=1)
    assert await store.update(replace(after, attempts=2)) is True


@pytest.mark.service
async def test_records_are_cleared_by_a_ttl_index(mongo_db: AsyncDatabase[Document]) -> None:
    await MongoContactCodes(mongo_db).ensure_indexes()
    indexes = {i["name"]: i async for i in await mongo_db[CODES].list_indexes()}
    assert indexes["purge_ttl"]["key"] == {"purge_at": 1}
    assert indexes["purge_ttl"]["expireAfterSeconds"] == 0


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def bare_phones(request: pytest.FixtureRequest) -> ConfirmedPhones:
    if request.param == "mongo":
        return MongoConfirmedPhones(request.getfixturevalue("mongo_db"))
    return InMemoryConfirmedPhones()


@pytest.fixture
async def phones(bare_phones: ConfirmedPhones) -> ConfirmedPhones:
    await bare_phones.ensure_indexes()
    return bare_phones


async def test_a_confirmed_phone_is_remembered_until_its_time_and_again_moves_it(
    phones: ConfirmedPhones,
) -> None:
    key = confirmed_phone_key(b"k" * 32, "010-1234-5678", "r" * 64)
    assert key is not None
    assert key == confirmed_phone_key(b"k" * 32, "01012345678", "r" * 64)
    assert key != confirmed_phone_key(b"k" * 32, "010-1234-5678", "s" * 64)  # another resident
    assert key != confirmed_phone_key(b"other key" * 4, "010-1234-5678", "r" * 64)
    assert not await phones.remembered(key, NOW)

    await phones.remember([key], NOW + timedelta(days=90))
    assert await phones.remembered(key, NOW + timedelta(days=89))
    assert not await phones.remembered(key, NOW + timedelta(days=90))
    await phones.remember([key], NOW + timedelta(days=120))  # confirmed again: longer
    assert await phones.remembered(key, NOW + timedelta(days=100))
