"""The kit's subscribers on the real broker: a header nobody can decode loses nothing, and
a dependency outage longer than the retries is waited out, never dead-lettered."""

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect

from schemas import DeadLetter, topics
from services.archive import DeadLetterArchive
from services.broker import DeadLetters, ensure_topics, make_broker, subscriber, topic_name
from services.metrics import KitMetrics
from services.mongo import Document
from services.settings import KafkaSettings, RetrySettings
from tests.conftest import Backends

RETRY = RetrySettings(max_attempts=2, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)


@dataclass
class Kit:
    kafka: KafkaSettings
    metrics: KitMetrics
    registry: CollectorRegistry
    received: list[Any] = field(default_factory=list)

    def dead_lettered(self) -> float:
        total = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == "sotong_dead_lettered_total":  # the kit's own counter
                    total += sample.value
        return total

    async def produce(self, *records: tuple[bytes, list[tuple[str, bytes | None]]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka.bootstrap_servers)
        await producer.start()
        try:
            for value, headers in records:
                await producer.send_and_wait(
                    topic_name(self.kafka, topics.FILED),
                    value,
                    key=b"c-1",
                    headers=headers,  # null values are legal in Kafka
                )
        finally:
            await producer.stop()


@pytest.fixture
async def kit(backends: Backends) -> Kit:
    kafka = KafkaSettings(
        bootstrap_servers=backends.kafka_bootstrap,
        idempotent_producer=backends.idempotent_producer,
        topic_prefix=f"kit{uuid.uuid4().hex[:6]}.",
        partitions=1,
        session_timeout_ms=4000,
        heartbeat_interval_ms=1000,
    )
    await ensure_topics(kafka)
    registry = CollectorRegistry()
    return Kit(kafka, KitMetrics(registry), registry)


async def running(
    kit: Kit,
    handler: Callable[..., Awaitable[None]],
    archive: DeadLetterArchive | None = None,
    **options: Any,
) -> AsyncIterator[DeadLetters]:
    broker, dead_letters = make_broker(
        service="kittest", kafka=kit.kafka, retry=RETRY, registry=kit.registry, metrics=kit.metrics
    )
    dead_letters.archive = archive.keep if archive else None
    subscriber(broker, kit.kafka, topics.FILED, group_id=f"{kit.kafka.topic_prefix}g", **options)(
        handler
    )
    await broker.start()
    try:
        yield dead_letters
    finally:
        await broker.stop()


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


BAD_HEADERS = [("ce_id", b"\xff\xfe"), ("ce_type", None), ("ok", b"fine")]


async def test_a_record_with_unreadable_headers_is_processed_and_its_neighbours_too(
    kit: Kit,
) -> None:
    async def handle(body: dict[str, Any]) -> None:
        kit.received.append(body["n"])

    async for _ in running(kit, handle):
        await kit.produce((json.dumps({"n": 1}).encode(), BAD_HEADERS), (b'{"n": 2}', []))
        await until(lambda: kit.received == [1, 2])
    assert kit.dead_lettered() == 0


async def test_one_unreadable_header_in_a_batch_loses_none_of_the_batch(kit: Kit) -> None:
    async def handle(bodies: list[dict[str, Any]]) -> None:
        kit.received.extend(b["n"] for b in bodies)

    records = [(json.dumps({"n": i}).encode(), BAD_HEADERS if i == 3 else []) for i in range(6)]
    await kit.produce(*records)
    async for _ in running(kit, handle, batch=True, max_records=10):
        await until(lambda: sorted(kit.received) == list(range(6)))
    assert kit.dead_lettered() == 0


async def test_an_outage_longer_than_the_retries_is_waited_out_not_dead_lettered(
    kit: Kit,
) -> None:
    calls = 0

    async def handle(body: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls <= RETRY.max_attempts * 3:  # three rounds of in-place retries fail
            raise AutoReconnect("database unreachable")
        kit.received.append(body["n"])

    async for _ in running(kit, handle):
        await kit.produce((b'{"n": 7}', []), (b'{"n": 8}', []))
        await until(lambda: kit.received == [7, 8])
    assert calls == RETRY.max_attempts * 3 + 2
    assert kit.dead_lettered() == 0


async def dead_letters_on_topic(kit: Kit, count: int) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(
        topic_name(kit.kafka, topics.DEAD_LETTER),
        bootstrap_servers=kit.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"{kit.kafka.topic_prefix}reader",
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        async with asyncio.timeout(30):
            while len(letters) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    letters += [DeadLetter.model_validate_json(r.value or b"") for r in records]
    finally:
        await consumer.stop()
    return letters


async def test_a_record_too_large_for_a_dead_letter_is_archived_whole_and_excerpted(
    kit: Kit, mongo_db: AsyncDatabase[Document]
) -> None:
    async def handle(body: dict[str, Any]) -> None:
        kit.received.append(body["n"])

    huge = b'{"n": "' + b"x" * 900_000  # 900 KB of invalid JSON
    archive = DeadLetterArchive(mongo_db)
    async for _ in running(kit, handle, archive):
        await kit.produce((huge, []), (b'{"n": 1}', []))
        await until(lambda: kit.received == [1])  # the canary behind it is not held up
    [letter] = await dead_letters_on_topic(kit, 1)
    assert letter.original_truncated is True
    assert letter.original_size == len(huge)
    assert letter.original_sha256 == hashlib.sha256(huge).hexdigest()
    excerpt = base64.b64decode(letter.original_value_b64)
    assert huge.startswith(excerpt)
    assert len(excerpt) < len(huge) // 10
    assert await archive.original(letter.event_id) == huge
