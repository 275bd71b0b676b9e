"""intake's Idempotency-Key store: the in-memory fake (unit tier) and MongoDB (service tier)
agree; on the real server, the TTL index exists and every filter is served by an index
(SecantusDB plans one only when an index covers every field of the filter)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from intake.idempotency import COLLECTION, Answer, Claim, IdempotencyStore, MongoIdempotencyStore
from services.mongo import Document
from tests.fakes.intake import InMemoryIdempotencyStore

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
TTL = timedelta(hours=24)


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def bare_store(request: pytest.FixtureRequest) -> IdempotencyStore:
    if request.param == "mongo":
        return MongoIdempotencyStore(request.getfixturevalue("mongo_db"), TTL)
    return InMemoryIdempotencyStore()


@pytest.fixture
async def store(bare_store: IdempotencyStore) -> IdempotencyStore:
    await bare_store.ensure_indexes()
    return bare_store


def claim(key: str, print_: str = "p", at: datetime = NOW) -> Claim:
    return Claim(key, print_, at, at + TTL)


async def test_a_key_is_claimed_once_and_its_answer_kept(store: IdempotencyStore) -> None:
    assert await store.claim_many([claim("k1"), claim("k2")]) == [True, True]
    assert await store.claim_many([claim("k1", "other"), claim("k3")]) == [False, True]

    await store.answer_many([Answer("k1", 201, (("content-type", "application/json"),), b"x")])
    found = await store.find_many(["k1", "k2", "nope"])

    assert set(found) == {"k1", "k2"}
    assert (found["k1"].fingerprint, found["k1"].status, found["k1"].sealed) == ("p", 201, b"x")
    assert found["k1"].headers == (("content-type", "application/json"),)
    assert (found["k2"].status, found["k2"].sealed) == (None, None)


async def test_a_pending_claim_is_taken_over_only_past_its_lease(store: IdempotencyStore) -> None:
    await store.claim_many([claim("k1")])
    lease = timedelta(seconds=60)
    later = NOW + timedelta(seconds=30)
    assert await store.take_over("k1", started_before=later - lease, at=later) is False
    much_later = NOW + timedelta(seconds=90)
    assert await store.take_over("k1", started_before=much_later - lease, at=much_later) is True
    assert await store.take_over("k1", started_before=much_later - lease, at=much_later) is False
    await store.answer_many([Answer("k1", 202, (), b"y")])
    past = NOW + timedelta(hours=2)
    assert await store.take_over("k1", started_before=past, at=past) is False  # answered


async def test_only_an_expired_key_is_forgotten_and_a_released_one_is_free(
    store: IdempotencyStore,
) -> None:
    await store.claim_many([claim("k1"), claim("k2")])
    assert await store.forget_expired("k1", now=NOW + TTL - timedelta(seconds=1)) is False
    assert await store.forget_expired("k1", now=NOW + TTL) is True
    await store.release("k2")
    assert await store.find_many(["k1", "k2"]) == {}
    assert await store.claim_many([claim("k1"), claim("k2")]) == [True, True]


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("claims of a batch", {"_id": {"$in": ["a", "b"]}}),
    ("take-over", {"_id": "a", "state": "pending", "started_at": {"$lt": NOW}}),
    ("expired", {"_id": "a", "expires_at": {"$lte": NOW}}),
    ("answer, release", {"_id": "a"}),
]


@pytest.mark.service
@pytest.mark.parametrize(("what", "query"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_every_lookup_is_served_by_an_index(
    mongo_db: AsyncDatabase[Document], what: str, query: dict[str, Any]
) -> None:
    """Writes are checked by explaining the equivalent find (SecantusDB's explain of an
    update says COLLSCAN whatever the filter)."""
    store = MongoIdempotencyStore(mongo_db, TTL)
    await store.ensure_indexes()
    await store.claim_many([claim(f"k{i}") for i in range(20)])
    plan = json.dumps(await mongo_db[COLLECTION].find(query).explain(), default=str)
    assert "COLLSCAN" not in plan, f"{what}: {plan}"
    assert "IXSCAN" in plan or "IDHACK" in plan, f"{what}: {plan}"


@pytest.mark.service
async def test_keys_expire_by_a_ttl_index(mongo_db: AsyncDatabase[Document]) -> None:
    await MongoIdempotencyStore(mongo_db, TTL).ensure_indexes()
    indexes = {i["name"]: i async for i in await mongo_db[COLLECTION].list_indexes()}
    assert indexes["expiry"]["key"] == {"expires_at": 1}
    assert indexes["expiry"]["expireAfterSeconds"] == 0
