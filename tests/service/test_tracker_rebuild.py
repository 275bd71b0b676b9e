"""Rebuilding every read model from the event store gives back exactly what was there."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.mongo import Document
from services.settings import PROJECT_ROOT
from tests.conftest import Backends
from tests.unit.test_tracker_projection import story
from tests.unit.test_tracker_rebuild import Consumer, deliveries
from tracker.projection import TrackedEvent
from tracker.rebuild import rebuild
from tracker.store import MongoTrackerStore


@pytest.fixture
async def client(backends: Backends) -> AsyncIterator[AsyncMongoClient[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(backends.mongo_uri, tz_aware=True)
    try:
        yield mongo
    finally:
        await mongo.close()


async def fresh(
    client: AsyncMongoClient[Document],
) -> tuple[AsyncDatabase[Document], MongoTrackerStore]:
    db = client[f"rebuild_{uuid.uuid4().hex[:12]}"]
    store = MongoTrackerStore(db)
    await store.ensure_indexes()
    return db, store


async def read_models(store: MongoTrackerStore) -> list[Document]:
    return await store.complaints.find({}).sort("_id").to_list()


@pytest.mark.timeout(600)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(delivery=deliveries())
async def test_rebuilt_read_models_equal_the_incrementally_maintained_ones(
    client: AsyncMongoClient[Document],
    delivery: tuple[list[TrackedEvent], list[list[list[TrackedEvent]]]],
) -> None:
    events, per_consumer = delivery
    db, store = await fresh(client)
    try:
        consumers = [Consumer(store) for _ in per_consumer]
        await asyncio.gather(*(c.deliver(b) for c, b in zip(consumers, per_consumer, strict=True)))
        incremental = await read_models(store)

        count = await rebuild(store)

        filed = [e.complaint_id for e in events if e.event_type == "complaint.filed"]
        assert await read_models(store) == incremental
        assert count == len(incremental) == len(filed)
        stored = await store.events.count_documents({"complaint_id": {"$in": filed}})
        assert sum(m["event_count"] for m in incremental) == stored
    finally:
        await client.drop_database(db.name)


async def test_a_rebuild_drops_what_the_log_does_not_hold(
    client: AsyncMongoClient[Document],
) -> None:
    db, store = await fresh(client)
    try:
        await Consumer(store).deliver([story("c-1"), story("c-2")])
        expected = await read_models(store)
        await store.complaints.update_one({"_id": "c-1"}, {"$set": {"state": "closed"}})
        await store.complaints.insert_one({"_id": "c-stray", "state": "received"})

        assert await rebuild(store) == 2

        assert await read_models(store) == expected
        indexes = {index["name"] async for index in await store.complaints.list_indexes()}
        assert {"by_department", "by_resident", "by_search_term", "by_filed_at"} <= indexes
    finally:
        await client.drop_database(db.name)


@pytest.mark.timeout(120)
async def test_events_stored_during_a_rebuild_are_not_lost(
    client: AsyncMongoClient[Document],
) -> None:
    db, store = await fresh(client)
    try:
        everything = [event for n in range(60) for event in story(f"c-{n}")]
        first, late = everything[: len(everything) // 2], everything[len(everything) // 2 :]
        consumer = Consumer(store)
        await consumer.deliver([first])

        await asyncio.gather(
            rebuild(store), consumer.deliver([late[i : i + 10] for i in range(0, len(late), 10)])
        )

        models = await read_models(store)
        assert len(models) == 60
        assert all(model["event_count"] == 8 for model in models)
        await rebuild(store)
        assert await read_models(store) == models
    finally:
        await client.drop_database(db.name)


async def test_rebuilding_an_empty_store_leaves_an_empty_read_side(
    client: AsyncMongoClient[Document],
) -> None:
    db, store = await fresh(client)
    try:
        assert await rebuild(store) == 0
        assert await read_models(store) == []
    finally:
        await client.drop_database(db.name)


@pytest.mark.timeout(120)
async def test_python_m_tracker_rebuild_reads_the_tracker_settings(
    backends: Backends, client: AsyncMongoClient[Document]
) -> None:
    db, store = await fresh(client)
    try:
        await Consumer(store).deliver([story("c-1"), story("c-2"), story("c-3")])
        expected = await read_models(store)
        await store.complaints.drop()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SOTONG_")},
            "SOTONG_MONGO_URI": backends.mongo_uri,
            "SOTONG_MONGO_DATABASE": db.name,
        }

        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "tracker.rebuild"],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )

        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "rebuilt 3 complaint read models"
        assert await read_models(store) == expected
    finally:
        await client.drop_database(db.name)
