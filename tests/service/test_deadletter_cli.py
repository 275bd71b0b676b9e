"""``sotong deadletter list|replay`` against the real broker and database: letters listed
without their contents, originals replayed to their topics, the notifier's failed
deliveries reset so a replay is delivered."""

import base64
import hashlib
import io
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from notifier.store import Claim, DeliveryStatus, Finish, MongoNotifierStore
from schemas import ComplaintStatusChanged, topics
from schemas.events import DeadLetter
from services.archive import DeadLetterArchive
from services.broker import ensure_topics
from services.mongo import Document
from services.settings import KafkaSettings
from sotong import cli, deadletter
from tests.conftest import Backends
from tests.unit.test_notifier_delivery import NOW, assigned

PHONE = "010-9999-8888"


async def publish(kafka: KafkaSettings, letters: list[DeadLetter]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(
                kafka.topic_prefix + topics.DEAD_LETTER,
                letter.model_dump_json().encode(),
                key=(letter.complaint_id or "").encode(),
            )
    finally:
        await producer.stop()


async def read_topic(
    kafka: KafkaSettings, topic: str
) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        name = kafka.topic_prefix + topic
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        found = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                found += [(r.key or b"", r.value or b"", dict(r.headers)) for r in records]
        return found
    finally:
        await consumer.stop()


def undeliverable(kafka: KafkaSettings, event: ComplaintStatusChanged) -> DeadLetter:
    value = event.model_dump_json().encode()
    return DeadLetter(
        complaint_id=event.complaint_id,
        original_topic=kafka.topic_prefix + topics.LIFECYCLE,
        original_key=event.complaint_id,
        original_headers={"ce_id": event.event_id},
        original_value_b64=base64.b64encode(value).decode(),
        original_sha256=hashlib.sha256(value).hexdigest(),
        consumer="notifier",
        reason="resident could not be notified: sms: PermanentError: sms gateway answered 400",
        retryable=False,
        attempts=1,
    )


async def test_letters_are_listed_without_contents_and_replayed_to_their_topics(
    backends: Backends,
    mongo_db: AsyncDatabase[Document],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka = backends.kafka(topic_prefix=f"t{unique}.")
    env = backends.env(database=mongo_db.name, topic_prefix=kafka.topic_prefix)
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    await ensure_topics(kafka)
    store = MongoNotifierStore(mongo_db)
    await store.ensure_indexes()

    event = assigned(f"c-{unique}")
    failed = Claim(
        delivery_id=f"{event.event_id}:resident:sms",
        complaint_id=event.complaint_id,
        source_event_id=event.event_id,
        recipient="resident",
        channel="sms",
        template_code="SOTONG_ASSIGNED",
    )
    sent = Claim(**{**vars(failed), "delivery_id": f"{event.event_id}:handler:sms"})
    await store.claim_many([failed, sent], known={}, now=NOW)
    await store.settle(
        [
            Finish(delivery_id=failed.delivery_id, status=DeliveryStatus.FAILED, at=NOW),
            Finish(delivery_id=sent.delivery_id, status=DeliveryStatus.SENT, at=NOW),
        ],
        [],
        now=NOW,
    )
    mine = undeliverable(kafka, event)
    big = b'{"body": "' + PHONE.encode() + b" " + b"x" * 100_000 + b'"}'
    large = DeadLetter(
        complaint_id=f"c2-{unique}",
        original_topic=kafka.topic_prefix + topics.FILED,
        original_partition=0,
        original_offset=7,
        original_key=f"c2-{unique}",
        original_value_b64=base64.b64encode(big[:64]).decode(),
        original_size=len(big),
        original_sha256=hashlib.sha256(big).hexdigest(),
        original_truncated=True,
        consumer="routing",
        reason="1 invalid field(s): body: too long",
        retryable=False,
        attempts=1,
        occurred_at=NOW - timedelta(days=1),
    )
    await DeadLetterArchive(mongo_db).keep(large, big)
    await publish(kafka, [mine, large])
    parser = cli.build_parser()

    out = io.StringIO()
    assert await deadletter._run(parser.parse_args(["deadletter", "list"]), out) == 0
    listing = out.getvalue()
    assert mine.event_id in listing
    assert large.event_id in listing
    assert "archived" in listing
    assert "2 dead letter(s)" in listing
    assert PHONE not in listing
    assert "9999" not in listing
    assert base64.b64encode(big[:64]).decode() not in listing

    out = io.StringIO()
    args = parser.parse_args(["deadletter", "list", "--consumer", "notifier", "--reason", "SMS"])
    await deadletter._run(args, out)
    assert mine.event_id in out.getvalue()
    assert large.event_id not in out.getvalue()
    out = io.StringIO()
    await deadletter._run(parser.parse_args(["deadletter", "list", "--topic", topics.FILED]), out)
    assert "1 dead letter(s)" in out.getvalue()

    out = io.StringIO()
    assert await deadletter._run(parser.parse_args(["deadletter", "replay"]), out) == 2
    assert await store.delivery(failed.delivery_id) is not None, "nothing replayed without ids"

    out = io.StringIO()
    replay = ["deadletter", "replay", mine.event_id, large.event_id]
    assert await deadletter._run(parser.parse_args(replay), out) == 0
    assert "1 failed notifier deliveries reset" in out.getvalue()

    assert await store.delivery(failed.delivery_id) is None, "the replay will be delivered"
    kept = await store.delivery(sent.delivery_id)
    assert kept is not None
    assert kept.status is DeliveryStatus.SENT, "what was sent stays sent"
    [(key, value, headers)] = await read_topic(kafka, topics.LIFECYCLE)
    assert (key.decode(), ComplaintStatusChanged.model_validate_json(value)) == (
        event.complaint_id,
        event,
    )
    assert headers["ce_id"] == event.event_id.encode()
    assert headers[deadletter.REPLAY_HEADER] == mine.event_id.encode()
    [(key, value, _)] = await read_topic(kafka, topics.FILED)
    assert (key.decode(), value) == (large.original_key, big), "the archived whole, not the excerpt"
