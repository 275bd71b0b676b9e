"""Delivery with the in-memory store and a real outbox file: one message per
(event, recipient, channel), whatever Kafka redelivers and wherever a crash struck.

:func:`build` wires Delivery as the app does around any store; the service tier's
fallback tests use it with MongoDB and real peers.
"""

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from notifier.audience import Audience
from notifier.caps import DailyCap
from notifier.channel import Channel, Message
from notifier.handlers import Delivery
from notifier.metrics import NotifierMetrics
from notifier.outbox import OutboxChannel
from notifier.outcomes import NO_CHANNEL_NAME, NO_CONSENT, NO_CONTACT
from notifier.quiet import QuietHours
from notifier.retry import RetryPolicy
from notifier.retrying import RetryTopic
from notifier.staff import StaffDirectory
from notifier.store import Claim, DeliveryRecord, NotifierStore
from notifier.templates import Catalogue, Content
from schemas import (
    ComplaintFiled,
    ComplaintStatusChanged,
    DeadLetter,
    Location,
    Resident,
    topics,
)
from schemas.common import Channel as SubmissionChannel
from schemas.events import Outcome
from services.metrics import KitMetrics
from tests.fakes.notifier import (
    LETTERHEAD,
    STAFF,
    InMemoryNotifierStore,
    ManualClock,
    Published,
)

PHONE = "010-2345-6789"
NAME = "홍길동"
NOW = datetime(2025, 11, 25, 9, 30, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)

S = TypeVar("S", bound=NotifierStore)


@dataclass
class Harness(Generic[S]):
    delivery: Delivery
    store: S
    outbox: OutboxChannel
    recorder: Published
    registry: CollectorRegistry
    clock: ManualClock
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

    async def record(self, delivery_id: str) -> DeliveryRecord:
        record = await self.store.delivery(delivery_id)
        assert record is not None
        return record


def build(
    store: S,
    outbox: OutboxChannel,
    channels: Mapping[str, Channel] | None = None,
    *,
    webhooks: frozenset[str] = frozenset(),
    quiet: QuietHours | None = None,
    outbox_enabled: bool = True,
    later: RetryTopic | None = None,
    budget_seconds: float | None = None,
    staff: StaffDirectory = STAFF,
    cap: DailyCap | None = None,
    finish_every: float = 60.0,
) -> Harness[S]:
    """Delivery as the app builds it, with the given channels (the outbox by default).
    Its finishes are written when the batch ends (``finish_every`` is longer than any
    test's batch), so a test counting store calls counts one finishing write; a test of
    the early writes passes the app's few milliseconds."""
    registry = CollectorRegistry()
    recorder = Published()
    clock = ManualClock(NOW)
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
            letterhead=LETTERHEAD,
            webhooks=webhooks,
            staff=staff,
        ),
        publish=recorder,
        dead_letter=dead_letter,
        source_topics={"complaint.status_changed": "t.complaint.lifecycle"},
        metrics=NotifierMetrics(KitMetrics(registry), consumer="notifier", lifecycle_topic="lc"),
        retry=FAST,
        quiet=quiet,
        clock=clock,
        sleep=sleep,
        later=later,
        budget_seconds=budget_seconds,
        cap=cap,
        finish_every=finish_every,
    )
    return Harness(delivery, store, outbox, recorder, registry, clock, letters, sleeps)


Fake = Harness[InMemoryNotifierStore]


@pytest.fixture
def harness(tmp_path: Path) -> Fake:
    return build(InMemoryNotifierStore(), OutboxChannel(tmp_path / "var" / "outbox.jsonl"))


def filed(
    complaint_id: str,
    *,
    consent: bool = True,
    phone: str | None = PHONE,
    email: str | None = "hong@example.kr",
) -> ComplaintFiled:
    return ComplaintFiled(
        complaint_id=complaint_id,
        receipt_number="251125-000042",
        tracking_token_hash="0" * 64,
        channel=SubmissionChannel.WEB,
        resident=Resident(name=NAME, phone=phone, email=email, notification_consent=consent),
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
            "due_at": "2025-12-09T09:00:00Z",
            **fields,
        }
    )


def new_id() -> str:
    return str(uuid.uuid4())


async def test_one_event_one_line_and_one_outcome(harness: Fake) -> None:
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
    assert str(line["text"]).startswith("[인천광역시 서구] ")
    assert f"https://sotong.example.kr/complaints/{cid}" in str(line["text"])
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

    record = await harness.record(delivery_id)
    assert (record.status, record.outcome_published) == ("sent", True)
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="sent") == 1
    assert harness.metric("sotong_notification_delivery_seconds_count", channel="outbox") == 1


async def test_the_same_event_twice_is_still_one_line(harness: Fake) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await harness.delivery.notify(event)
    await harness.delivery.notify(event)

    assert len(harness.lines()) == 1
    assert len(harness.recorder.published) == 1
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="sent") == 1
    assert harness.metric("sotong_duplicate_messages_total", consumer="notifier", topic="lc") == 1


async def test_every_event_of_a_complaint_is_its_own_message(harness: Fake) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    await harness.delivery.notify(assigned(cid))
    await harness.delivery.notify(
        assigned(cid, sequence=3, from_state="assigned", to_state="site_check")
    )

    assert [line["state"] for line in harness.lines()] == ["assigned", "site_check"]


async def test_a_crash_after_writing_the_line_does_not_write_it_again(harness: Fake) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    delivery_id = f"{event.event_id}:resident:outbox"
    # The earlier attempt claimed, wrote the line, and died before finishing the claim.
    await harness.store.claim(
        Claim(
            delivery_id=delivery_id,
            complaint_id=cid,
            source_event_id=event.event_id,
            recipient="resident",
            channel="outbox",
            template_code="SOTONG_ASSIGNED",
        ),
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
            content=Content(template, Catalogue.load().values(event, LETTERHEAD), "제목"),
        )
    )

    await harness.delivery.notify(event)

    assert len(harness.lines()) == 1
    [outcome] = harness.recorder.outcomes
    assert (outcome.outcome, outcome.attempts) == (Outcome.SENT, 2)
    assert (await harness.record(delivery_id)).status == "sent"
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="sent") == 1


async def test_a_crash_before_writing_the_line_sends_it_once(harness: Fake) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await harness.store.claim(
        Claim(
            delivery_id=f"{event.event_id}:resident:outbox",
            complaint_id=cid,
            source_event_id=event.event_id,
            recipient="resident",
            channel="outbox",
            template_code="SOTONG_ASSIGNED",
        ),
        now=NOW,
    )

    await harness.delivery.notify(event)

    assert len(harness.lines()) == 1
    assert [o.outcome for o in harness.recorder.outcomes] == [Outcome.SENT]


async def test_a_crash_before_publishing_the_outcome_publishes_it_on_redelivery(
    harness: Fake,
) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await harness.delivery.notify(event)
    delivery_id = f"{event.event_id}:resident:outbox"
    deliveries = harness.store.deliveries
    deliveries[delivery_id] = replace(deliveries[delivery_id], outcome_published=False)

    await harness.delivery.notify(event)

    assert len(harness.lines()) == 1
    first, again = harness.recorder.outcomes
    assert again == first, "the same event id and content: a duplicate downstream"
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="sent") == 1
    assert (await harness.record(delivery_id)).outcome_published is True


async def test_without_consent_nothing_is_sent_and_the_outcome_is_skipped(harness: Fake) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid, consent=False))
    await harness.delivery.notify(assigned(cid))

    assert harness.lines() == []
    [outcome] = harness.recorder.outcomes
    assert (outcome.outcome, outcome.detail) == (Outcome.SKIPPED, NO_CONSENT)
    assert outcome.template == "SOTONG_ASSIGNED"
    assert harness.metric("sotong_notifications_total", channel="outbox", outcome="skipped") == 1


async def test_a_resident_with_only_an_address_gets_the_outbox_message(harness: Fake) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid, phone=None))
    await harness.delivery.notify(assigned(cid))

    [line] = harness.lines()
    assert line["to"] == "h***@example.kr"
    assert "hong@example.kr" not in harness.outbox.path.read_text(encoding="utf-8")


async def test_a_resident_no_one_can_reach_is_sent_nothing_and_told_why(harness: Fake) -> None:
    """Filed with neither a phone nor an address: no line "to": null recorded as sent,
    but one skipped outcome per step, saying why."""
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid, phone=None, email=None))
    await harness.delivery.notify(assigned(cid, sequence=1, from_state=None, to_state="received"))
    await harness.delivery.notify(assigned(cid))

    assert harness.lines() == []
    outcomes = harness.recorder.outcomes
    assert [(o.outcome, o.channel, o.detail) for o in outcomes] == [
        (Outcome.SKIPPED, NO_CHANNEL_NAME, NO_CONTACT)
    ] * 2
    assert [o.template for o in outcomes] == ["SOTONG_RECEIVED", "SOTONG_ASSIGNED"]
    assert harness.metric("sotong_notifications_total", channel="none", outcome="skipped") == 2
    assert harness.letters == [], "nothing failed: there was no one to tell"


async def test_a_lifecycle_event_before_its_recipient_is_parked_not_failed(
    harness: Fake,
) -> None:
    cid = new_id()
    event = assigned(cid)
    await harness.delivery.notify(event)
    assert harness.lines() == []
    assert harness.store.deliveries == {}
    assert len(await harness.store.parked(cid)) == 1

    await harness.delivery.remember_recipient(filed(cid))
    await harness.delivery.notify(event)  # a redelivery after the recipient came

    assert len(harness.lines()) == 1
    assert len(harness.recorder.outcomes) == 1
    assert len(await harness.store.parked(cid)) == 0


async def test_events_parked_while_waiting_are_sent_in_order_when_the_recipient_comes(
    harness: Fake,
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
    assert len(await harness.store.parked(cid)) == 0


async def test_a_parked_event_goes_out_before_a_later_one(harness: Fake) -> None:
    cid = new_id()
    first = assigned(cid, sequence=1, from_state=None, to_state="received")
    await harness.delivery.notify(first)
    await harness.store.remember(filed(cid))  # recipient known, nothing sent yet

    await harness.delivery.notify(assigned(cid, sequence=2))

    assert [line["state"] for line in harness.lines()] == ["received", "assigned"]
    assert len(await harness.store.parked(cid)) == 0


async def test_a_parked_event_that_cannot_be_rendered_does_not_fail_the_filing(
    harness: Fake,
) -> None:
    cid = new_id()
    broken = assigned(cid, sequence=2, department_name=None)
    fine = assigned(cid, sequence=3, from_state="assigned", to_state="site_check")
    for event in (broken, fine):
        await harness.delivery.notify(event)

    await harness.delivery.remember_recipient(filed(cid))

    assert [line["state"] for line in harness.lines()] == ["site_check"]
    assert len(await harness.store.parked(cid)) == 0


async def test_a_missing_variable_sends_nothing_and_is_a_failed_outcome_and_a_dead_letter(
    harness: Fake,
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


async def test_the_recipient_is_remembered_once(harness: Fake) -> None:
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    await harness.delivery.remember_recipient(filed(cid, consent=False))

    docs = [r for r in harness.store.recipients.values() if r.complaint_id == cid]
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
