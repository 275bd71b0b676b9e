"""portal's store contract: the in-memory fake (unit tier) and MongoDB (service tier) agree."""

import uuid
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from portal.store import Favourite, Followed, MongoPortalStore, PortalStore
from schemas.tokens import hash_token
from services.mongo import Document
from tests.fakes.portal import FakePortalStore

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
ALICE = "alice-resident-token-0123456789"
BOB = "bob-resident-token-0123456789ab"


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def bare_store(request: pytest.FixtureRequest) -> PortalStore:
    if request.param == "mongo":
        return MongoPortalStore(request.getfixturevalue("mongo_db"))
    return FakePortalStore()


@pytest.fixture
async def store(bare_store: PortalStore) -> PortalStore:
    await bare_store.ensure_indexes()
    return bare_store


async def test_a_followed_complaint_gives_back_its_tracking_token_to_its_resident_only(
    store: PortalStore,
) -> None:
    complaint_id = str(uuid.uuid4())
    await store.follow(ALICE, complaint_id, "tracking-token-of-alice", "261202-000001")
    assert await store.tracking_token(ALICE, complaint_id) == "tracking-token-of-alice"
    assert await store.tracking_token(BOB, complaint_id) is None
    assert await store.tracking_token(ALICE, str(uuid.uuid4())) is None
    assert await store.followed(ALICE) == [Followed(complaint_id, "261202-000001")]
    assert await store.followed(BOB) == []


@pytest.mark.service
async def test_on_disk_the_token_is_sealed_and_the_resident_a_hash(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = MongoPortalStore(mongo_db)
    complaint_id = str(uuid.uuid4())
    await store.follow(ALICE, complaint_id, "tracking-token-of-alice", "261202-000002")
    [doc] = await store.residents.find({}).to_list()
    assert doc["_id"] == hash_token(ALICE)
    assert "tracking-token-of-alice" not in str(doc)
    assert ALICE not in str(doc)


async def test_a_complaint_id_that_is_not_a_uuid_is_refused(store: PortalStore) -> None:
    with pytest.raises(ValueError, match="UUID"):
        await store.follow(ALICE, "a.b$c", "t", "261202-000003")


async def test_favourites_are_added_once_kept_in_order_and_removed(store: PortalStore) -> None:
    assert await store.favourites(ALICE) == []
    await store.add_favourite(ALICE, Favourite("/file", "민원 신청"))
    await store.add_favourite(ALICE, Favourite("/chat", "24시간 상담"))
    await store.add_favourite(ALICE, Favourite("/file", "민원 신청"))
    assert await store.favourites(ALICE) == [
        Favourite("/file", "민원 신청"),
        Favourite("/chat", "24시간 상담"),
    ]
    assert await store.favourites(BOB) == []
    await store.remove_favourite(ALICE, "/file")
    assert await store.favourites(ALICE) == [Favourite("/chat", "24시간 상담")]


async def test_favourites_keep_the_latest_thirty(store: PortalStore) -> None:
    for n in range(33):
        await store.add_favourite(ALICE, Favourite(f"/p{n}", f"쪽 {n}"))
    kept = await store.favourites(ALICE)
    assert len(kept) == 30
    assert kept[0].path == "/p3"
    assert kept[-1].path == "/p32"


async def test_signals_are_kept_in_order_latest_fifty(store: PortalStore) -> None:
    await store.record_signals(ALICE, [], NOW)
    assert await store.signals(ALICE) == []
    await store.record_signals(ALICE, ["after-parking"], NOW)
    await store.record_signals(ALICE, ["after-bulky-waste", "after-waste"], NOW)
    assert [s.rule for s in await store.signals(ALICE)] == [
        "after-parking",
        "after-bulky-waste",
        "after-waste",
    ]
    assert (await store.signals(ALICE))[0].at == NOW
    for _ in range(30):
        await store.record_signals(ALICE, ["a", "b"], NOW)
    assert len(await store.signals(ALICE)) == 50
