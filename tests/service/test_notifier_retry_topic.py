"""The notifier on the real embedded Kafka and MongoDB, with a real SMS gateway that is down
for a while: the message goes round ``notification.retry`` (published and consumed by the
notifier itself) and is sent once the gateway is back."""

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from notifier.app import create_app
from notifier.settings import NotifierSettings
from notifier.store import DeliveryStatus, MongoNotifierStore
from schemas import topics
from services.broker import publish_event
from services.mongo import Document
from tests.conftest import FAST_RETRY, Backends
from tests.service.test_notifier_peers import SMS_KEY, SMS_SENDER, Servers, servers
from tests.unit.test_notifier_subscribers import filed, received

PHONE = "010-9876-5432"


@pytest.fixture(scope="module")
def live() -> Iterator[Servers]:
    with servers() as running:
        yield running


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(600):  # 30 s
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_gateway_outage_goes_round_the_retry_topic_and_is_sent_once(
    backends: Backends,
    mongo_db: AsyncDatabase[Document],
    tmp_path: Path,
    unique: str,
    live: Servers,
) -> None:
    peers = live.fresh()
    peers.sms.script = [503, 503]  # both in-place tries fail; the retry gets through
    settings = NotifierSettings(
        kafka=backends.kafka(topic_prefix=f"n{unique}."),
        mongo=backends.mongo(mongo_db.name),
        retry=FAST_RETRY,
        http_port=0,
        outbox_path=tmp_path / "outbox.jsonl",
        sms_url=peers.sms.url,
        sms_api_key=SecretStr(SMS_KEY),
        sms_sender=SMS_SENDER,
        delivery_max_attempts=2,
        delivery_initial_backoff_seconds=0.01,
        delivery_max_backoff_seconds=0.02,
        retry_topic_initial_backoff_seconds=0.2,
        retry_topic_max_backoff_seconds=0.4,
        retry_topic_wait_seconds=1.0,
    )
    store = MongoNotifierStore(mongo_db)
    app = create_app(settings, store=store)
    producer = KafkaBroker(backends.kafka_bootstrap)
    cid = f"c-{unique}"
    step = received(cid)
    did = f"{step.event_id}:resident:sms"

    async def status() -> DeliveryStatus | None:
        record = await store.delivery(did)
        return None if record is None else record.status

    async with app.router.lifespan_context(app):
        await producer.connect()
        try:
            await publish_event(producer, settings.kafka, topics.FILED, filed(cid), source="/t")
            await publish_event(producer, settings.kafka, topics.LIFECYCLE, step, source="/t")

            async def sent() -> bool:
                return await status() is DeliveryStatus.SENT

            await until(sent, "the message sent after going round the retry topic")
        finally:
            await producer.stop()

    record = await store.delivery(did)
    assert record is not None
    assert (record.retries, record.attempts) == (1, 3)
    assert len(peers.sms.requests_for(PHONE)) == 3
    assert len(peers.sms.accepted_for(PHONE)) == 1
    keys = {r.headers.get("Idempotency-Key") for r in peers.sms.requests_for(PHONE)}
    assert len(keys) == 1, "every try of one delivery carries the same idempotency key"
    registry = app.state.runtime.registry
    assert (
        registry.get_sample_value("sotong_notification_retries_scheduled_total", {"channel": "sms"})
        == 1
    )
    assert (
        registry.get_sample_value(
            "sotong_notifications_total", {"channel": "sms", "outcome": "sent"}
        )
        == 1
    )
