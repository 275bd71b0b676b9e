"""What a batch costs MongoDB, counted with PyMongo's command monitoring on the real server:
the same few commands for two complaints or twenty, and fewer still on redelivery."""

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from notifier.handlers import Arrival
from notifier.outbox import OutboxChannel
from notifier.store import MongoNotifierStore
from schemas import topics
from services.mongo import Document
from tests.conftest import Backends
from tests.mongo_commands import Commands
from tests.unit.test_notifier_delivery import Harness, assigned, build, filed


@pytest.fixture
async def counted(
    backends: Backends, tmp_path: Path
) -> AsyncIterator[tuple[Harness[MongoNotifierStore], Commands]]:
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        backends.mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    db = client[f"test_{uuid.uuid4().hex[:12]}"]
    try:
        store = MongoNotifierStore(db)
        await store.ensure_indexes()
        yield build(store, OutboxChannel(tmp_path / "outbox.jsonl")), commands
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_lifecycle_batch_costs_five_commands_for_two_complaints_or_twenty(
    counted: tuple[Harness[MongoNotifierStore], Commands],
) -> None:
    harness, commands = counted

    async def cost(complaints: int) -> Counter[str]:
        ids = [str(uuid.uuid4()) for _ in range(complaints)]
        await harness.delivery.remember_all([filed(cid) for cid in ids])
        before = commands.seen.copy()
        assert await harness.delivery.notify_all([Arrival(assigned(cid)) for cid in ids]) == []
        return commands.seen - before

    few, many = await cost(2), await cost(20)

    assert few == many == Counter({"find": 3, "insert": 1, "update": 1}), (
        "recipients, parked events, ledger records; one bulk claim; one bulk finish"
    )
    assert len(harness.lines()) == 22
    assert {o.outcome for o in harness.recorder.outcomes} == {"sent"}
    assert all(t == topics.NOTIFICATIONS for t, _, _ in harness.recorder.published)


async def test_a_filing_batch_costs_two_commands_and_a_redelivered_batch_only_reads(
    counted: tuple[Harness[MongoNotifierStore], Commands],
) -> None:
    harness, commands = counted
    ids = [str(uuid.uuid4()) for _ in range(10)]
    start = commands.seen.copy()
    await harness.delivery.remember_all([filed(cid) for cid in ids])
    assert commands.seen - start == Counter({"update": 1, "find": 1}), (
        "one bulk upsert of the contacts, one read of what was parked for them"
    )
    arrivals = [Arrival(assigned(cid)) for cid in ids]
    await harness.delivery.notify_all(arrivals)
    before = commands.seen.copy()

    await harness.delivery.notify_all(arrivals)

    assert commands.seen - before == Counter({"find": 3}), "nothing to claim, finish or publish"
    assert len(harness.lines()) == 10
