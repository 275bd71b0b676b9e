"""The notifier on the real embedded Kafka and MongoDB (issue 11 §11): a code on
``contact.codes`` is sent at once; the resident's messages of an unconfirmed filing wait
in MongoDB; ContactConfirmed (twice) sends them once, in order; a new notifier process
finds the confirmation and sends the next message at once."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from notifier.app import create_app
from notifier.settings import NotifierSettings
from notifier.store import DEFERRED, MongoNotifierStore
from schemas import ComplaintStatusChanged, topics
from schemas.events import ContactCodeIssued, ContactConfirmed, utcnow
from services.broker import publish_event
from services.mongo import Document
from tests.conftest import FAST_RETRY, Backends
from tests.unit.test_notifier_subscribers import filed, received


async def until(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    for _ in range(600):  # 30 s
        result = check()
        if await result if asyncio.iscoroutine(result) else result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def step(cid: str, sequence: int, to_state: str, trigger: str) -> ComplaintStatusChanged:
    return ComplaintStatusChanged.model_validate(
        received(cid).model_dump()
        | {
            "event_id": f"{cid}-{sequence}",
            "sequence": sequence,
            "to_state": to_state,
            "trigger": trigger,
            "department": "RES",
            "department_name": "자원순환과",
        }
    )


async def test_a_code_goes_at_once_and_held_messages_once_after_confirmation(
    backends: Backends, mongo_db: AsyncDatabase[Document], tmp_path: Path, unique: str
) -> None:
    outbox = tmp_path / "outbox.jsonl"
    settings = NotifierSettings(
        kafka=backends.kafka(topic_prefix=f"c{unique}."),
        mongo=backends.mongo(mongo_db.name),
        retry=FAST_RETRY,
        http_port=0,
        outbox_path=outbox,
    )
    cid = f"c-{unique}"
    filing = filed(cid).model_copy(update={"contact_unconfirmed": True})
    phone = filing.resident.phone
    assert phone is not None
    code = ContactCodeIssued(
        complaint_id=cid,
        receipt_number=filing.receipt_number,
        phone=phone,
        code="604218",
        expires_at=utcnow() + timedelta(minutes=10),
    )
    steps = [received(cid), step(cid, 2, "site_check", "start_site_check")]

    def lines() -> list[dict[str, Any]]:
        text = outbox.read_text(encoding="utf-8") if outbox.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line]

    async def held() -> int:
        return await mongo_db[DEFERRED].count_documents({"complaint_id": cid})

    producer = KafkaBroker(backends.kafka_bootstrap)
    await producer.connect()
    try:

        async def publish(topic: str, event: Any) -> None:
            await publish_event(producer, settings.kafka, topic, event, source="/t")

        app = create_app(settings, store=MongoNotifierStore(mongo_db))
        async with app.router.lifespan_context(app):
            await publish(topics.FILED, filing)
            await publish(topics.CONTACT_CODES, code)
            for event in steps:
                await publish(topics.LIFECYCLE, event)

            await until(lambda: len(lines()) == 1, "the code message")
            await until(lambda: _equals(held, 2), "two messages held")
            [line] = lines()
            assert line["template_code"] == "SOTONG_CONTACT_CODE"
            assert "604218" in line["text"]

            confirmed = ContactConfirmed(complaint_id=cid)
            await publish(topics.CONTACT_CODES, confirmed)
            await publish(topics.CONTACT_CODES, confirmed)  # a repeat sends nothing twice
            await until(lambda: len(lines()) >= 3, "the held messages")
            await until(lambda: _equals(held, 0), "nothing held any more")

        assert [x["template_code"] for x in lines()] == [
            "SOTONG_CONTACT_CODE",
            "SOTONG_RECEIVED",
            "SOTONG_SITE_CHECK",
        ]

        again = create_app(settings, store=MongoNotifierStore(mongo_db))  # a restart
        async with again.router.lifespan_context(again):
            await publish(topics.LIFECYCLE, step(cid, 3, "reviewing", "start_review"))
            await until(lambda: len(lines()) >= 4, "the next message, not held")
        assert [x["template_code"] for x in lines()][3:] == ["SOTONG_REVIEWING"]
        assert len({x["delivery_id"] for x in lines()}) == 4, "each message once"
    finally:
        await producer.stop()


async def _equals(count: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await count() == expected
