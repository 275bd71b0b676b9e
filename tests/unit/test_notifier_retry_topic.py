"""Long retries go round the retry topic, within a time budget per batch, and claims no
attempt holds are swept back onto it (:mod:`notifier.retrying`), with the in-memory store."""

from datetime import timedelta
from pathlib import Path

import pytest

from notifier.channel import ChannelRetryable, Message
from notifier.outbox import OutboxChannel
from notifier.retrying import SWEPT, RetryTopic
from notifier.settings import NotifierSettings
from notifier.store import Claim, DeliveryStatus
from schemas import NotificationRetryScheduled, topics
from schemas.events import Outcome
from tests.fakes.notifier import InMemoryNotifierStore
from tests.unit.test_notifier_delivery import NOW, Fake, assigned, build, filed, new_id

TOPIC = RetryTopic(max_retries=2, initial_backoff_seconds=60, max_backoff_seconds=600)


class Flaky:
    """An SMS gateway that fails (retryably) ``failures`` times, then delivers; it knows
    what it delivered, as an idempotent provider would drop a repeat."""

    name = "sms"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.sent: list[Message] = []

    async def deliver(self, message: Message) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ChannelRetryable("sms gateway answered 503", retry_after=90)
        self.sent.append(message)

    async def already_delivered(self, delivery_id: str) -> bool:
        return any(m.delivery_id == delivery_id for m in self.sent)


def harness(tmp_path: Path, sms: Flaky, *, budget: float | None = 25.0) -> Fake:
    return build(
        InMemoryNotifierStore(),
        OutboxChannel(tmp_path / "outbox.jsonl"),
        {"sms": sms},
        later=TOPIC,
        budget_seconds=budget,
    )


async def retried(h: Fake) -> list[NotificationRetryScheduled]:
    """Take what went to the retry topic, and consume it as the retry subscriber does,
    once its time has come."""
    items = [event for _, event, _ in h.recorder.retries]
    assert {topic for topic, _, _ in h.recorder.retries} <= {topics.RETRY}
    h.recorder.retries.clear()
    if items:
        h.clock.now = max(i.not_before for i in items)
        await h.delivery.retry_all([(i, "corr-1") for i in items])
    return items


async def test_a_last_channel_still_failing_goes_round_the_retry_topic(tmp_path: Path) -> None:
    sms = Flaky(failures=3)  # the in-place tries (3) all fail, the retry delivers
    h = harness(tmp_path, sms)
    cid = new_id()
    await h.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await h.delivery.notify(event, correlation_id="corr-1")

    did = f"{event.event_id}:resident:sms"
    record = await h.record(did)
    assert record.status is DeliveryStatus.RETRYING
    assert (record.retries, record.attempts) == (1, 3)
    assert record.retry_at is not None
    assert record.retry_at >= NOW + timedelta(seconds=90)
    assert h.recorder.published == [], "no outcome while the delivery waits"
    assert h.letters == []
    [(topic, scheduled, correlation)] = h.recorder.retries
    assert (topic, scheduled.delivery_id, scheduled.retry, correlation) == (
        topics.RETRY,
        did,
        1,
        "corr-1",
    )
    assert scheduled.source == event
    assert scheduled.not_before == record.retry_at
    assert "503" in scheduled.reason

    await h.delivery.notify(event, correlation_id="corr-1")  # a redelivery meanwhile
    assert sms.calls == 3, "a redelivered event leaves a retrying delivery to its retry"

    await retried(h)
    assert len(sms.sent) == 1
    assert h.recorder.by("resident") == [("sms", Outcome.SENT, None)]
    record = await h.record(did)
    assert (record.status, record.attempts, record.retries) == (DeliveryStatus.SENT, 4, 1)
    assert h.metric("sotong_notification_retries_scheduled_total", channel="sms") == 1
    assert h.metric("sotong_notifications_total", channel="sms", outcome="sent") == 1

    await h.delivery.retry_all([(scheduled, None)])  # the retry itself redelivered
    assert len(sms.sent) == 1
    assert sms.calls == 4


async def test_retries_are_bounded_then_the_event_is_dead_lettered_once(tmp_path: Path) -> None:
    sms = Flaky(failures=1000)
    h = harness(tmp_path, sms)
    cid = new_id()
    await h.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await h.delivery.notify(event)

    rounds = 0
    while await retried(h):
        rounds += 1
        assert rounds <= TOPIC.max_retries, "the retry topic is not a loop"
    assert rounds == TOPIC.max_retries
    [letter] = h.letters
    assert letter.retryable is True
    assert "gave up after 2 retries from the retry topic" in letter.reason
    [(channel, outcome, detail)] = h.recorder.by("resident")
    assert (channel, outcome) == ("sms", Outcome.FAILED)
    assert detail is not None
    assert f"sms: {detail}" in letter.reason
    assert sms.calls == 3 * (1 + TOPIC.max_retries)

    await h.delivery.notify(event)
    assert len(h.letters) == 1
    assert sms.calls == 3 * (1 + TOPIC.max_retries)


async def test_what_the_budget_leaves_untried_is_not_tried_but_retried(tmp_path: Path) -> None:
    sms = Flaky(failures=0)
    h = harness(tmp_path, sms, budget=0.0)  # spent before the first attempt
    cid = new_id()
    await h.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    await h.delivery.notify(event)

    assert sms.calls == 0, "an attempt that could not end within the budget is not started"
    record = await h.record(f"{event.event_id}:resident:sms")
    assert record.status is DeliveryStatus.RETRYING
    assert record.detail == "not tried: the batch's time budget was spent"
    [(_, scheduled, _)] = h.recorder.retries
    assert scheduled.retry == 1


async def test_a_retry_not_due_waits_at_most_a_while_then_goes_round_again(
    tmp_path: Path,
) -> None:
    sms = Flaky(failures=3)
    h = harness(tmp_path, sms)
    cid = new_id()
    await h.delivery.remember_recipient(filed(cid))
    await h.delivery.notify(assigned(cid))
    [(_, scheduled, _)] = h.recorder.retries
    h.recorder.retries.clear()

    await h.delivery.retry_all([(scheduled, "corr-9")])  # the clock has not moved

    assert h.sleeps[-1] == TOPIC.wait_seconds, "waited the cap, not until it is due"
    assert sms.calls == 3, "not due: not resumed"
    assert h.recorder.retries == [(topics.RETRY, scheduled, "corr-9")], "back on the topic"


async def test_the_sweep_requeues_a_claim_no_attempt_holds_and_it_is_sent_once(
    tmp_path: Path,
) -> None:
    sms = Flaky(failures=0)
    h = harness(tmp_path, sms)
    cid = new_id()
    await h.delivery.remember_recipient(filed(cid))
    event = assigned(cid)
    did = f"{event.event_id}:resident:sms"
    # A process claimed the delivery, handed it to the provider and died.
    await h.store.claim(
        Claim(
            delivery_id=did,
            complaint_id=cid,
            source_event_id=event.event_id,
            recipient="resident",
            channel="sms",
            template_code="SOTONG_ASSIGNED",
            source=event,
            correlation_id="corr-7",
        ),
        now=NOW,
    )
    sms.sent.append(Message(did, cid, event.receipt_number, "resident", event.to_state))

    assert await h.delivery.sweep(lease_seconds=900) == 0, "within its lease: left alone"
    h.clock.now = NOW + timedelta(seconds=901)
    assert await h.delivery.sweep(lease_seconds=900) == 1
    assert (await h.record(did)).status is DeliveryStatus.RETRYING
    [(_, requeued, correlation)] = h.recorder.retries
    assert (requeued.delivery_id, requeued.reason, correlation) == (did, SWEPT, "corr-7")
    assert h.metric("sotong_notification_deliveries_swept_total", status="sending") == 1

    await retried(h)
    assert sms.calls == 0, "the channel said it had gone out: not sent again"
    assert (await h.record(did)).status is DeliveryStatus.SENT
    assert h.recorder.by("resident") == [("sms", Outcome.SENT, None)]
    assert await h.delivery.sweep(lease_seconds=900) == 0


def test_a_budget_that_could_pass_the_poll_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="max_poll_interval_ms"):
        NotifierSettings(batch_budget_seconds=120)
    with pytest.raises(ValueError, match="sweep_lease_seconds"):
        NotifierSettings(sweep_lease_seconds=60)
    assert NotifierSettings().worst_batch_seconds < 0.8 * 300
