"""intake's photo store: the in-memory fake (unit tier) and GridFS on the real server
(service tier, PyMongo's ``AsyncGridFSBucket`` on SecantusDB) agree; every filter is
served by an index."""

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from pymongo.asynchronous.database import AsyncDatabase

from intake.photo_store import BUCKET, MongoPhotoStore, PhotoStore
from intake.photos import Limits, new_photo_id, process
from services.mongo import Document
from tests.fakes.intake import InMemoryPhotoStore

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
LIMITS = Limits(max_bytes=10**7, max_pixels=10**7, thumbnail_pixels=100)


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.service)])
def bare_store(request: pytest.FixtureRequest) -> PhotoStore:
    if request.param == "mongo":
        return MongoPhotoStore(request.getfixturevalue("mongo_db"))
    return InMemoryPhotoStore()


@pytest.fixture
async def store(bare_store: PhotoStore) -> PhotoStore:
    await bare_store.ensure_indexes()
    return bare_store


def photo(size: tuple[int, int] = (1200, 900)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(out, format="JPEG")
    return out.getvalue()


async def test_a_saved_photo_and_its_thumbnail_read_back_byte_for_byte(
    store: PhotoStore,
) -> None:
    processed = process(photo(), LIMITS)  # larger than one GridFS chunk (255 KiB)
    assert len(processed.data) > 255 * 1024
    photo_id = new_photo_id()

    ref = await store.save(photo_id, processed, NOW)

    assert (ref.photo_id, ref.content_type, ref.size) == (
        photo_id,
        "image/jpeg",
        len(processed.data),
    )
    assert await store.read(photo_id, thumbnail=False) == (processed.data, "image/jpeg")
    assert await store.read(photo_id, thumbnail=True) == (processed.thumbnail, "image/jpeg")
    assert await store.read(new_photo_id(), thumbnail=False) is None
    found = await store.find([photo_id, new_photo_id()])
    assert list(found) == [photo_id]
    assert (found[photo_id].ref, found[photo_id].submission_id) == (ref, None)


async def test_a_photo_is_attached_only_from_the_owner_expected(store: PhotoStore) -> None:
    photo_id = new_photo_id()
    await store.save(photo_id, process(photo((40, 30)), LIMITS), NOW)

    assert await store.attach(photo_id, "sub-1", replacing=None) is True
    assert await store.attach(photo_id, "sub-2", replacing=None) is False
    assert await store.attach(photo_id, "sub-2", replacing="sub-1") is True
    assert (await store.find([photo_id]))[photo_id].submission_id == "sub-2"
    assert await store.attach(new_photo_id(), "sub-3", replacing=None) is False


async def test_a_complaints_photos_are_listed_and_a_detached_one_is_swept_again(
    store: PhotoStore,
) -> None:
    first, second, other = new_photo_id(), new_photo_id(), new_photo_id()
    small = process(photo((40, 30)), LIMITS)
    for photo_id in (first, second, other):
        await store.save(photo_id, small, NOW - timedelta(hours=30))
    assert await store.attach(first, "sub-1", replacing=None)
    assert await store.attach(second, "sub-1", replacing=None)
    assert await store.attach(other, "sub-2", replacing=None)

    assert sorted(await store.attached_to("sub-1")) == sorted([first, second])
    assert await store.detach(second, "sub-2", NOW) is False  # not that submission's
    assert await store.detach(second, "sub-1", NOW - timedelta(hours=25)) is True

    assert await store.attached_to("sub-1") == [first]
    assert (await store.find([second]))[second].submission_id is None
    assert await store.sweep(NOW - timedelta(hours=24), at_most=100) == 1  # unattached since
    assert await store.read(second, thumbnail=True) is None
    assert await store.read(first, thumbnail=False) is not None


async def test_photos_never_attached_are_swept_with_their_thumbnails_and_no_other(
    store: PhotoStore,
) -> None:
    old, attached, recent = new_photo_id(), new_photo_id(), new_photo_id()
    small = process(photo((40, 30)), LIMITS)
    await store.save(old, small, NOW - timedelta(hours=30))
    await store.save(attached, small, NOW - timedelta(hours=30))
    await store.save(recent, small, NOW - timedelta(hours=1))
    assert await store.attach(attached, "sub-1", replacing=None)

    assert await store.sweep(NOW - timedelta(hours=24), at_most=100) == 1

    assert await store.read(old, thumbnail=False) is None
    assert await store.read(old, thumbnail=True) is None
    assert await store.attach(old, "sub-2", replacing=None) is False  # gone for good
    for kept in (attached, recent):
        assert await store.read(kept, thumbnail=False) is not None
        assert await store.read(kept, thumbnail=True) is not None
    assert await store.sweep(NOW - timedelta(hours=24), at_most=100) == 0
    assert await store.sweep(NOW, at_most=100) == 1  # the recent one, once old enough


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("find", {"_id": {"$in": ["a", "b"]}}),
    ("attach", {"_id": "a", "metadata.submission_id": None}),
    ("sweep", {"metadata.unattached_since": {"$lt": NOW}}),
    ("attached_to", {"metadata.submission_id": "sub-1"}),
]


@pytest.mark.service
@pytest.mark.parametrize(("what", "query"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_every_photo_lookup_is_served_by_an_index(
    mongo_db: AsyncDatabase[Document], what: str, query: dict[str, Any]
) -> None:
    store = MongoPhotoStore(mongo_db)
    await store.ensure_indexes()
    for _ in range(5):
        await store.save(new_photo_id(), process(photo((40, 30)), LIMITS), NOW)
    plan = json.dumps(await mongo_db[f"{BUCKET}.files"].find(query).explain(), default=str)
    assert "COLLSCAN" not in plan, f"{what}: {plan}"
    assert "IXSCAN" in plan or "IDHACK" in plan, f"{what}: {plan}"
