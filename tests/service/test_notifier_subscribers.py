"""The app's subscribers through FastStream's in-memory broker, with the real MongoDB:
the wiring from topics to delivery, and the shared middleware's retry and dead letter."""

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from notifier.app import create_app
from notifier.settings import NotifierSettings
from schemas import (
    Channel,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintState,
    ComplaintStatusChanged,
    DeadLetter,
    Location,
    NotificationOutcome,
    Resident,
    topics,
)
from schemas.events import AlertKind, HandlerRef, Outcome
from services.broker import topic_name
from services.mongo import Document
from services.runtime import Runtime
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

NOW = datetime(2025, 11, 25, 9, 30, tzinfo=UTC)


@dataclass
class Running:
    runtime: Runtime
    outbox: Path
    outcomes: list[NotificationOutcome] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def metric(self, name: str, topic: str) -> float:
        labels = {"consumer": "notifier", "topic": topic_name(self.runtime.settings.kafka, topic)}
        return self.runtime.registry.get_sample_value(name, labels) or 0.0

    def lines(self) -> list[dict[str, object]]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text(encoding="utf-8").splitlines()]


async def no_sleep(_: float) -> None:
    return None


@asynccontextmanager
async def started(settings: NotifierSettings) -> AsyncIterator[Running]:
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    runtime.dead_letters.sleep = no_sleep
    state = Running(runtime, settings.outbox_path)

    async def on_outcome(outcome: NotificationOutcome) -> None:
        state.outcomes.append(outcome)

    async def on_dead_letter(letter: DeadLetter) -> None:
        state.dead_letters.append(letter)

    runtime.broker.subscriber(topic_name(settings.kafka, topics.NOTIFICATIONS))(on_outcome)
    runtime.broker.subscriber(topic_name(settings.kafka, topics.DEAD_LETTER))(on_dead_letter)
    try:
        async with TestKafkaBroker(runtime.broker):
            yield state
    finally:
        await app.state.http_client.aclose()
        await runtime.mongo.close()


def settings_for(
    backends: Backends, db: str, tmp_path: Path, unique: str, **extra: Any
) -> NotifierSettings:
    return NotifierSettings(
        kafka=backends.kafka(topic_prefix=f"t{unique}."),
        mongo=backends.mongo(db),
        retry=FAST_RETRY,
        outbox_path=tmp_path / "outbox.jsonl",
        **extra,
    )


@pytest.fixture
async def running(
    backends: Backends, mongo_db: AsyncDatabase[Document], tmp_path: Path, unique: str
) -> AsyncIterator[Running]:
    async with started(settings_for(backends, mongo_db.name, tmp_path, unique)) as state:
        yield state


@pytest.fixture(scope="module")
def live() -> Iterator[Servers]:
    with servers() as running_servers:
        yield running_servers


def filed(complaint_id: str) -> ComplaintFiled:
    return ComplaintFiled(
        complaint_id=complaint_id,
        receipt_number="251125-000077",
        tracking_token_hash="0" * 64,
        channel=Channel.KAKAO,
        resident=Resident(phone="010-9876-5432"),
        body="가로등이 꺼져 있습니다.",
        location=Location(),
        submitted_at=NOW,
    )


def received(complaint_id: str) -> ComplaintStatusChanged:
    return ComplaintStatusChanged(
        complaint_id=complaint_id,
        receipt_number="251125-000077",
        sequence=1,
        from_state=None,
        to_state=ComplaintState.RECEIVED,
        trigger="file",
        actor="routing",
    )


async def test_filed_then_lifecycle_writes_one_line_and_publishes_the_outcome(
    running: Running, unique: str
) -> None:
    cid = f"c-{unique}"
    event = received(cid)
    await running.runtime.publish(topics.FILED, filed(cid))
    await running.runtime.publish(topics.LIFECYCLE, event, correlation_id="corr-7")
    await running.runtime.publish(topics.LIFECYCLE, event, correlation_id="corr-7")

    [line] = running.lines()
    assert line["delivery_id"] == f"{event.event_id}:resident:outbox"
    assert line["to"] == "010-****-5432"
    assert "민원이 접수됐습니다" in str(line["text"])
    [outcome] = running.outcomes
    assert (outcome.outcome, outcome.template) == (Outcome.SENT, "SOTONG_RECEIVED")
    assert running.dead_letters == []
    assert running.metric("sotong_duplicate_messages_total", topics.LIFECYCLE) == 1


async def test_lifecycle_without_a_recipient_waits_and_is_sent_when_it_comes(
    running: Running, unique: str
) -> None:
    cid = f"c-{unique}"
    await running.runtime.publish(topics.LIFECYCLE, received(cid))

    assert running.lines() == []
    assert running.dead_letters == [], "a race between two topics is not an error"
    assert running.metric("sotong_consume_retries_total", topics.LIFECYCLE) == 0

    await running.runtime.publish(topics.FILED, filed(cid))
    [line] = running.lines()
    assert line["state"] == "received", "the parked event is sent once its recipient is known"
    [outcome] = running.outcomes
    assert outcome.outcome is Outcome.SENT


def alert(complaint_id: str, kind: AlertKind) -> ComplaintDeadlineAlert:
    supervisor = HandlerRef(handler_id="chief", name="박과장", office_phone="032-560-5100")
    return ComplaintDeadlineAlert(
        complaint_id=complaint_id,
        receipt_number="251125-000077",
        kind=kind,
        state=ComplaintState.SITE_CHECK,
        department="roads",
        department_name="도로과",
        supervisor=supervisor,
        received_at=NOW,
        due_at=NOW + timedelta(days=7),
    )


async def test_a_deadline_alert_on_the_sla_topic_reaches_the_supervisor(
    running: Running, unique: str
) -> None:
    cid = f"c-{unique}"
    await running.runtime.publish(topics.SLA, alert(cid, AlertKind.WARNING))

    staff = running.outbox.with_name("outbox-staff.jsonl")
    [line] = [json.loads(x) for x in staff.read_text(encoding="utf-8").splitlines()]
    assert (line["recipient"], line["template_code"]) == ("supervisor", "SOTONG_SLA_WARNING")
    assert line["to"] == "032-****-5100"
    assert running.lines() == [], "the resident's outbox stays the resident's"
    [outcome] = running.outcomes
    assert (outcome.recipient, outcome.outcome) == ("supervisor", Outcome.SENT)


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
    settings = settings_for(
        backends,
        mongo_db.name,
        tmp_path,
        unique,
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
