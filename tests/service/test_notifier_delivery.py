"""Delivery against the real MongoDB server and a real outbox file: one message per
(event, recipient, channel), whatever Kafka redelivers and wherever a crash struck."""

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from notifier.audience import Audience
from notifier.channel import Channel, Message
from notifier.handlers import Delivery
from notifier.metrics import NotifierMetrics
from notifier.outbox import OutboxChannel
from notifier.outcomes import NO_CONSENT
from notifier.quiet import QuietHours
from notifier.retry import RetryPolicy
from notifier.store import DELIVERIES, PENDING, RECIPIENTS, MongoNotifierStore, NotifierStore
from notifier.templates import Catalogue, Content, variables_for
from schemas import (
    ComplaintFiled,
    ComplaintStatusChanged,
    DeadLetter,
    Location,
    NotificationOutcome,
    Resident,
    topics,
)
from schemas.common import Channel as SubmissionChannel
from schemas.events import Outcome
from services.broker import KeyedEvent
from services.metrics import KitMetrics
from services.mongo import Document

PHONE = "010-2345-6789"
NAME = "홍길동"
NOW = datetime(2025, 11, 25, 9, 30, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)


@dataclass
class Recorder:
    """The publish callable, remembering instead of talking to Kafka."""

    published: list[tuple[str, NotificationOutcome, str | None]] = field(default_factory=list)

    async def __call__(
        self, topic: str, event: KeyedEvent, correlation_id: str | None = None
    ) -> None:
        assert isinstance(event, NotificationOutcome), "notifier publishes only outcomes"
        self.published.append((topic, event, correlation_id))

    @property
    def outcomes(self) -> list[NotificationOutcome]:
        return [event for _, event, _ in self.published]

    def by(self, recipient: str) -> list[tuple[str, Outcome, str | None]]:
        """(channel, outcome, detail) of one recipient's outcomes, in publishing order."""
        return [(o.channel, o.outcome, o.detail) for o in self.outcomes if o.recipient == recipient]


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    delivery: Delivery
    store: NotifierStore
    outbox: OutboxChannel
    recorder: Recorder
    registry: CollectorRegistry
    db: AsyncDatabase[Document]
    clock: Clock
    letters: list[DeadLetter] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def lines(self, path: Path | None = None) -> list[dict[str, object]]:
        path = path or self.outbox.path
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines()]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def delivery_doc(self, delivery_id: str) -> Document:
        doc = await self.db[DELIVERIES].find_one({"_id": delivery_id})
        assert doc is not None
        return doc


def build(
    db: AsyncDatabase[Document],
    outbox: OutboxChannel,
    channels: Mapping[str, Channel] | None = None,
    *,
    webhooks: frozenset[str] = frozenset(),
    quiet: QuietHours | None = None,
    outbox_enabled: bool = True,
) -> Harness:
    """Delivery as the app builds it, with the given channels (the outbox by default)."""
    registry = CollectorRegistry()
    store = MongoNotifierStore(db)
    recorder = Recorder()
    clock = Clock()
    chosen: dict[str, Channel] = {"outbox": outbox} if outbox_enabled else {}
    chosen |= dict(channels or {})
    letters: list[DeadLetter] = []
    sleeps: list[float] = []

    async def dead_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    delivery = Delivery(
        store=store,
        channels=chosen,
        audience=Audience(
            catalogue=Catalogue.load(),
            channels=frozenset(chosen) - {"webhook"},
            webhooks=webhooks,
        ),
        publish=recorder,
        dead_letter=dead_letter,
        source_topics={"complaint.status_changed": "t.complaint.lifecycle"},
        metrics=NotifierMetrics(KitMetrics(registry), consumer="notifier", lifecycle_topic="lc"),
        retry=FAST,
        quiet=quiet,
        clock=clock,
        sleep=sleep,
    )
    return Harness(delivery, store, outbox, recorder, registry, db, clock, letters, sleeps)


@pytest.fixture
async def harness(mongo_db: AsyncDatabase[Document], tmp_path: Path) -> Harness:
    h = build(mongo_db, OutboxChannel(tmp_path / "var" / "outbox.jsonl"))
    await h.store.ensure_indexes()
    return h


def filed(complaint_id: str, *, consent: bool = True, phone: str | None = PHONE) -> ComplaintFiled:
    return ComplaintFiled(
        complaint_id=complaint_id,
        receipt_number="251125-000042",
        tracking_token_hash="0" * 64,
        channel=SubmissionChannel.WEB,
        resident=Resident(
            name=NAME, phone=phone, email="hong@example.kr", notification_consent=consent
        ),
        body="골목에 쓰레기가 무단투기되어 있습니다.",
        location=Location(address="인천광역시 서구 청라동 1-1"),
        submitted_at=NOW,
    )


def assigned(complaint_id: str, **fields: object) -> ComplaintStatusChanged:
    return ComplaintStatusChanged.model_validate(
        {
            "complaint_id": complaint_id,
            "receipt_number": "251125-000042",
            "sequence": 2,
            "from_state": "received",
            "to_state": "assigned",
            "trigger": "assign",
            "department": "RES",
            "department_name": "자원순환과",
            "actor": "routing",
            **fields,
        }
    )


def new_id() -> str:
    return str(uuid.uuid4())


async def test_one_event_one_line_and_one_outcome(harness: Harness) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await harness.delivery.notify(event, correlation_id="corr-1")

    [line] = harness.lines()
    delivery_id = f"{event.event_id}:resident:outbox"
    assert line["delivery_id"] == delivery_id
    assert line["complaint_id"] == cid
    assert line["recipient"] == "resident"
    assert line["to"] == "010-****-6789"
    assert line["template_code"] == "SOTONG_ASSIGNED"
    assert line["state"] == "assigned"
    assert "자원순환과로 배정됐습니다" in str(line["text"])
    assert "251125-000042" in str(line["text"])
    raw = harness.outbox.path.read_text(encoding="utf-8")
    assert PHONE not in raw
    assert NAME not in raw

    [(topic, outcome, correlation_id)] = harness.recorder.published
    assert topic == topics.NOTIFICATIONS
    assert correlation_id == "corr-1"
    assert outcome.event_id == str(uuid.uuid5(uuid.NAMESPACE_URL, delivery_id))
    assert outcome.outcome is Outcome.SENT
    assert outcome.template == "SOTONG_ASSIGNED"
    assert (outcome.complaint_id, outcome.source_event_id) == (cid, event.event_id)
    assert (outcome.recipient, outcome.channel, outcome.attempts) == ("resident", "outbox", 1)

    doc = await harness.delivery_doc(delivery_id)
    assert (doc["status"], doc["outcome_published"]) == ("sent", True)
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="sent") == 1
    assert harness.metric("sotong_notification_delivery_seconds_count", channel="outbox") == 1


async def test_the_same_event_twice_is_still_one_line(harness: Harness) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await harness.delivery.notify(event)
    await harness.delivery.notify(event)

    assert len(harness.lines()) == 1
    assert len(harness.recorder.published) == 1
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="sent") == 1
    assert harness.metric("sotong_duplicate_messages_total", consumer="notifier", topic="lc") == 1


async def test_every_event_of_a_complaint_is_its_own_message(harness: Harness) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    await harness.delivery.notify(assigned(cid))
    await harness.delivery.notify(
        assigned(cid, sequence=3, from_state="assigned", to_state="site_check")
    )

    assert [line["state"] for line in harness.lines()] == ["assigned", "site_check"]


async def test_a_crash_after_writing_the_line_does_not_write_it_again(harness: Harness) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    delivery_id = f"{event.event_id}:resident:outbox"
    # The earlier attempt claimed, wrote the line, and died before finishing the claim.
    await harness.store.claim(
        delivery_id,
        complaint_id=cid,
        source_event_id=event.event_id,
        recipient="resident",
        channel="outbox",
        template_code="SOTONG_ASSIGNED",
        now=NOW,
    )
    template = Catalogue.load().templates[event.to_state]
    await harness.outbox.deliver(
        Message(
            delivery_id=delivery_id,
            complaint_id=cid,
            receipt_number=event.receipt_number,
            recipient="resident",
            state=event.to_state,
            content=Content(template, variables_for(event), "제목"),
        )
    )

    await harness.delivery.notify(event)

    assert len(harness.lines()) == 1
    [outcome] = harness.recorder.outcomes
    assert (outcome.outcome, outcome.attempts) == (Outcome.SENT, 2)
    assert (await harness.delivery_doc(delivery_id))["status"] == "sent"
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="sent") == 1


async def test_a_crash_before_writing_the_line_sends_it_once(harness: Harness) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await harness.store.claim(
        f"{event.event_id}:resident:outbox",
        complaint_id=cid,
        source_event_id=event.event_id,
        recipient="resident",
        channel="outbox",
        template_code="SOTONG_ASSIGNED",
        now=NOW,
    )

    await harness.delivery.notify(event)

    assert len(harness.lines()) == 1
    assert [o.outcome for o in harness.recorder.outcomes] == [Outcome.SENT]


async def test_a_crash_before_publishing_the_outcome_publishes_it_on_redelivery(
    harness: Harness,
) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await harness.delivery.notify(event)
    delivery_id = f"{event.event_id}:resident:outbox"
    await harness.db[DELIVERIES].update_one(
        {"_id": delivery_id}, {"$set": {"outcome_published": False}}
    )

    await harness.delivery.notify(event)

    assert len(harness.lines()) == 1
    first, again = harness.recorder.outcomes
    assert again == first, "the same event id and content: a duplicate downstream"
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="sent") == 1
    assert (await harness.delivery_doc(delivery_id))["outcome_published"] is True


async def test_without_consent_nothing_is_sent_and_the_outcome_is_skipped(harness: Harness) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid, consent=False))
    await harness.delivery.notify(assigned(cid))

    assert harness.lines() == []
    [outcome] = harness.recorder.outcomes
    assert (outcome.outcome, outcome.detail) == (Outcome.SKIPPED, NO_CONSENT)
    assert outcome.template == "SOTONG_ASSIGNED"
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="skipped") == 1


async def test_a_resident_without_a_phone_still_gets_the_outbox_message(harness: Harness) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid, phone=None))
    await harness.delivery.notify(assigned(cid))

    [line] = harness.lines()
    assert line["to"] is None


async def test_a_lifecycle_event_before_its_recipient_is_parked_not_failed(
    harness: Harness,
) -> None:
    cid = new_id()
    event = assigned(cid)
    await harness.delivery.notify(event)
    assert harness.lines() == []
    assert await harness.db[DELIVERIES].count_documents({}) == 0
    assert await harness.db[PENDING].count_documents({"complaint_id": cid}) == 1

    await harness.delivery.remember_recipient(filed(cid))
    await harness.delivery.notify(event)  # a redelivery after the recipient came

    assert len(harness.lines()) == 1
    assert len(harness.recorder.outcomes) == 1
    assert await harness.db[PENDING].count_documents({"complaint_id": cid}) == 0


async def test_events_parked_while_waiting_are_sent_in_order_when_the_recipient_comes(
    harness: Harness,
) -> None:
    cid = new_id()
    steps = [
        assigned(cid, sequence=1, from_state=None, to_state="received"),
        assigned(cid, sequence=2),
        assigned(cid, sequence=3, from_state="assigned", to_state="site_check"),
    ]
    for event in steps:
        await harness.delivery.notify(event, correlation_id=f"corr-{event.sequence}")

    await harness.delivery.remember_recipient(filed(cid))

    assert [line["state"] for line in harness.lines()] == ["received", "assigned", "site_check"]
    assert [c for _, _, c in harness.recorder.published] == ["corr-1", "corr-2", "corr-3"]
    assert await harness.db[PENDING].count_documents({"complaint_id": cid}) == 0


async def test_a_parked_event_goes_out_before_a_later_one(harness: Harness) -> None:
    cid = new_id()
    first = assigned(cid, sequence=1, from_state=None, to_state="received")
    await harness.delivery.notify(first)
    await harness.store.remember(filed(cid))  # recipient known, nothing sent yet

    await harness.delivery.notify(assigned(cid, sequence=2))

    assert [line["state"] for line in harness.lines()] == ["received", "assigned"]
    assert await harness.db[PENDING].count_documents({"complaint_id": cid}) == 0


async def test_a_parked_event_that_cannot_be_rendered_does_not_fail_the_filing(
    harness: Harness,
) -> None:
    cid = new_id()
    broken = assigned(cid, sequence=2, department_name=None)
    fine = assigned(cid, sequence=3, from_state="assigned", to_state="site_check")
    for event in (broken, fine):
        await harness.delivery.notify(event)

    await harness.delivery.remember_recipient(filed(cid))

    assert [line["state"] for line in harness.lines()] == ["site_check"]
    assert await harness.db[PENDING].count_documents({"complaint_id": cid}) == 0


async def test_a_missing_variable_sends_nothing_and_is_a_failed_outcome_and_a_dead_letter(
    harness: Harness,
) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid, department_name=None)
    await harness.delivery.notify(event)
    await harness.delivery.notify(event)

    assert harness.lines() == []
    [outcome] = harness.recorder.outcomes
    assert (outcome.outcome, outcome.channel) == (Outcome.FAILED, "outbox")
    assert "missing variable(s): department_josa, department_name" in (outcome.detail or "")
    [letter] = harness.letters
    assert letter.original_topic == "t.complaint.lifecycle"
    assert letter.complaint_id == cid
    assert "resident could not be notified" in letter.reason
    assert "department_name" in letter.reason
    assert not letter.retryable
    assert (
        ComplaintStatusChanged.model_validate_json(
            __import__("base64").b64decode(letter.original_value_b64)
        )
        == event
    )
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="failed") == 1


async def test_the_recipient_is_remembered_once(harness: Harness) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    await harness.delivery.remember_recipient(filed(cid, consent=False))

    docs = await harness.db[RECIPIENTS].find({"_id": cid}).to_list()
    assert len(docs) == 1
    recipient = await harness.store.recipient(cid)
    assert recipient is not None
    assert (recipient.receipt_number, recipient.phone, recipient.notification_consent) == (
        "251125-000042",
        PHONE,
        True,
    )
    assert PHONE not in repr(recipient)
    assert NAME not in repr(recipient)
