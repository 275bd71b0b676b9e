"""The shared classifier store on the real MongoDB-wire server: one lease holder at a
time, a published model loads back as it was, and an artifact that was altered, or that
another version of routing wrote, is not unpickled."""

from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from sklearn.dummy import DummyClassifier

from routing.classifier import Classifier
from routing.models import BUCKET, KEEP, ModelStore, Pointer
from services.mongo import Document

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=15)


def tiny(version: str) -> Classifier:
    """A fitted model small enough to write many times (the real one is tens of MB)."""
    model = Classifier(threshold=0.5, general_desk="civil-affairs")
    dummy = DummyClassifier(strategy="most_frequent")
    model.pipeline = dummy.fit([[0], [1]], ["roads", "roads"])
    model.version = version
    return model


async def test_one_holder_at_a_time_until_it_releases_or_its_lease_runs_out(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = ModelStore(mongo_db)
    assert await store.acquire("a", NOW, TTL)
    assert await store.acquire("a", NOW + timedelta(minutes=1), TTL)  # renewed by its holder
    assert not await store.acquire("b", NOW + timedelta(minutes=2), TTL)
    await store.release("b")  # not b's to release
    assert not await store.acquire("b", NOW + timedelta(minutes=3), TTL)
    await store.release("a")
    assert await store.acquire("b", NOW + timedelta(minutes=4), TTL)
    # b dies holding it: after the lease, a takes over
    assert not await store.acquire("a", NOW + timedelta(minutes=18), TTL)
    assert await store.acquire("a", NOW + timedelta(minutes=20), TTL)


async def test_a_published_model_is_loaded_back_with_what_it_was_built_from(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = ModelStore(mongo_db)
    assert await store.pointer() is None
    pointer = await store.share(tiny("v1"), ["t-2", "t-1"], now=NOW, held_out=0.93, recent=0.8)
    assert await store.pointer() == pointer
    loaded = await store.load(pointer, threshold=0.75, general_desk="civil-affairs")
    assert loaded is not None
    assert (loaded.model.version, loaded.model.threshold) == ("v1", 0.75)
    assert loaded.known == frozenset({"t-1", "t-2"})
    assert loaded.model.pipeline.predict([[3]]).tolist() == ["roads"]


async def test_an_altered_artifact_or_another_versions_model_is_not_loaded(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = ModelStore(mongo_db)
    pointer = await store.share(tiny("v1"), ["t-1"], now=NOW)
    other = Pointer(pointer.version, "another-env", pointer.sha256, NOW)
    assert await store.load(other, threshold=0.75, general_desk="g") is None

    chunks = mongo_db[f"{BUCKET}.chunks"]
    chunk = await chunks.find_one({})
    assert chunk is not None
    same_length = b"\x80\x04N." + bytes(len(chunk["data"]) - 4)  # pickles None, then zeros
    await chunks.update_one({"_id": chunk["_id"]}, {"$set": {"data": same_length}})
    assert await store.load(pointer, threshold=0.75, general_desk="g") is None
    await chunks.update_one({"_id": chunk["_id"]}, {"$set": {"data": b"\x80\x04N."}})
    assert await store.load(pointer, threshold=0.75, general_desk="g") is None  # torn


@pytest.mark.parametrize("published", [KEEP + 2])
async def test_only_the_last_few_artifacts_are_kept(
    mongo_db: AsyncDatabase[Document], published: int
) -> None:
    store = ModelStore(mongo_db)
    for n in range(published):
        last = await store.share(tiny(f"v{n}"), [f"t-{n}"], now=NOW + timedelta(minutes=n))
    assert await mongo_db[f"{BUCKET}.files"].count_documents({}) == KEEP
    assert await store.load(last, threshold=0.75, general_desk="g") is not None
