"""The app's subscribers with the real MongoDB and real providers (FastStream's in-memory
broker carries the messages): a resident no provider reaches is dead-lettered."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from notifier.settings import NotifierSettings
from schemas import topics
from schemas.events import Outcome
from services.broker import topic_name
from services.mongo import Document
from tests.conftest import FAST_RETRY, Backends
from tests.service.test_notifier_peers import (
    ALIMTALK_KEY,
    SENDER_KEY,
    SMS_KEY,
    SMS_SENDER,
    Peers,
    Servers,
    servers,
)
from tests.unit.test_notifier_subscribers import filed, received, started


@pytest.fixture(scope="module")
def live() -> Iterator[Servers]:
    with servers() as running_servers:
        yield running_servers


async def test_configured_providers_replace_the_outbox_and_an_unreachable_resident_is_dead_lettered(
    backends: Backends,
    mongo_db: AsyncDatabase[Document],
    tmp_path: Path,
    unique: str,
    live: Servers,
) -> None:
    peers: Peers = live.fresh()
    peers.alimtalk.refuse("010-9876-5432", "NOT_KAKAO_USER")
    peers.sms.refuse("010-9876-5432", "INVALID_NUMBER")
    settings = NotifierSettings(
        kafka=backends.kafka(topic_prefix=f"t{unique}."),
        mongo=backends.mongo(mongo_db.name),
        retry=FAST_RETRY,
        outbox_path=tmp_path / "outbox.jsonl",
        alimtalk_url=peers.alimtalk.url,
        alimtalk_api_key=ALIMTALK_KEY,
        alimtalk_sender_key=SENDER_KEY,
        sms_url=peers.sms.url,
        sms_api_key=SMS_KEY,
        sms_sender=SMS_SENDER,
    )
    async with started(settings) as state:
        cid = f"c-{unique}"
        await state.runtime.publish(topics.FILED, filed(cid))
        await state.runtime.publish(topics.LIFECYCLE, received(cid))

        assert state.lines() == [], "the outbox is only for whom no provider reaches"
        assert [(o.channel, o.outcome) for o in state.outcomes] == [
            ("alimtalk", Outcome.FAILED),
            ("sms", Outcome.FAILED),
        ]
        [letter] = state.dead_letters
        assert letter.original_topic == topic_name(settings.kafka, topics.LIFECYCLE)
        assert "NOT_KAKAO_USER" in letter.reason
        assert "INVALID_NUMBER" in letter.reason
        labels = {
            "consumer": "notifier",
            "topic": topic_name(settings.kafka, topics.LIFECYCLE),
            "cause": "undeliverable",
        }
        registry = state.runtime.registry
        assert registry.get_sample_value("sotong_dead_lettered_total", labels) == 1
