"""The app's subscribers through FastStream's in-memory broker, with the in-memory store:
the wiring from topics to delivery, and the shared middleware's retry and dead letter.

:func:`started` runs the app as ``create_app`` builds it, given the collaborators a test
brings; the service tier's subscriber test uses it with MongoDB and real peers.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from notifier.app import build_channels, create_app
from notifier.settings import NotifierSettings
from notifier.store import NotifierStore
from schemas import (
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
from schemas.common import Channel as SubmissionChannel
from schemas.events import AlertKind, HandlerRef, Outcome
from services.broker import topic_name
from services.runtime import Runtime
from services.settings import KafkaSettings
from tests.conftest import FAST_RETRY
from tests.fakes.notifier import (
    STAFF_FILE,
    InMemoryNotifierStore,
    ManualClock,
    MemoryChannel,
    Published,
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
async def started(
    settings: NotifierSettings, *, store: NotifierStore | None = None
) -> AsyncIterator[Running]:
    """The app's subscribers on an in-memory broker, with the channels the settings turn
    on, and outcomes and dead letters collected from their topics."""
    runtime = Runtime.build("notifier", settings)
    runtime.dead_letters.sleep = no_sleep
    client = httpx.AsyncClient(timeout=settings.http_timeout_seconds)
    channels = build_channels(settings, client)
    create_app(settings, runtime=runtime, store=store, channels=channels)
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
        await client.aclose()
        await runtime.mongo.close()


@pytest.fixture
async def running(tmp_path: Path, unique: str) -> AsyncIterator[Running]:
    directory = tmp_path / "staff-contacts.json"
    directory.write_text(json.dumps(STAFF_FILE), encoding="utf-8")
    settings = NotifierSettings(
        kafka=KafkaSettings(topic_prefix=f"t{unique}."),
        retry=FAST_RETRY,
        outbox_path=tmp_path / "outbox.jsonl",
        staff_directory_path=directory,
    )
    async with started(settings, store=InMemoryNotifierStore()) as state:
        yield state


def filed(complaint_id: str) -> ComplaintFiled:
    return ComplaintFiled(
        complaint_id=complaint_id,
        receipt_number="251125-000077",
        tracking_token_hash="0" * 64,
        channel=SubmissionChannel.KAKAO,
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
    assert line["to"] == "010-****-5100", "the work mobile from the staff directory"
    assert running.lines() == [], "the resident's outbox stays the resident's"
    [outcome] = running.outcomes
    assert (outcome.recipient, outcome.outcome) == ("supervisor", Outcome.SENT)


async def test_the_app_tells_time_and_publishes_with_what_it_is_given(
    tmp_path: Path, unique: str
) -> None:
    """Quiet hours read the clock the app was given; outcomes go to the publish it was given."""
    settings = NotifierSettings(
        kafka=KafkaSettings(topic_prefix=f"t{unique}."),
        retry=FAST_RETRY,
        quiet_hours="21:00-08:00",
        timezone="Asia/Seoul",
    )
    store = InMemoryNotifierStore()
    published = Published()
    outbox = MemoryChannel("outbox")
    runtime = Runtime.build("notifier", settings)
    create_app(
        settings,
        runtime=runtime,
        store=store,
        publish=published,
        clock=ManualClock(datetime(2026, 11, 25, 14, 0, tzinfo=UTC)),  # 23:00 in Seoul
        channels={"outbox": outbox},
    )
    cid = f"c-{unique}"
    site_check = received(cid).model_copy(
        update={"sequence": 2, "to_state": ComplaintState.SITE_CHECK, "trigger": "start"}
    )
    try:
        async with TestKafkaBroker(runtime.broker):
            await runtime.publish(topics.FILED, filed(cid))
            await runtime.publish(topics.LIFECYCLE, site_check)
            assert outbox.sent == [], "a step at 23:00 waits for the morning"
            assert [d.recipient for d in store.deferred.values()] == ["resident"]
            await runtime.publish(topics.LIFECYCLE, received(cid))
    finally:
        await runtime.mongo.close()

    assert [m.state for m in outbox.sent] == [ComplaintState.SITE_CHECK, ComplaintState.RECEIVED]
    assert [o.outcome for o in published.outcomes] == [Outcome.SENT, Outcome.SENT]
