"""Consuming in batches: one bad record dead-lettered alone, a handful of store calls per
batch whatever its size, complaints sent side by side and each complaint's in order.

On the in-memory broker and store; the service tier's notifier tests run the same
Delivery on MongoDB and real peers.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from pymongo.errors import AutoReconnect

from notifier.channel import Message
from notifier.handlers import Arrival
from notifier.ledger import Finish, Mark
from notifier.outbox import OutboxChannel
from notifier.settings import NotifierSettings
from schemas import ComplaintState, topics
from schemas.events import Outcome
from services.broker import topic_name
from services.settings import KafkaSettings
from tests.conftest import FAST_RETRY
from tests.fakes.notifier import InMemoryNotifierStore, MemoryChannel
from tests.unit.test_notifier_delivery import Fake, assigned, build, filed
from tests.unit.test_notifier_subscribers import Running, received, started
from tests.unit.test_notifier_subscribers import filed as filed_on_kakao


@pytest.fixture
async def running(tmp_path: Path, unique: str) -> AsyncIterator[Running]:
    settings = NotifierSettings(
        kafka=KafkaSettings(topic_prefix=f"t{unique}."),
        retry=FAST_RETRY,
        outbox_path=tmp_path / "outbox.jsonl",
    )
    async with started(settings, store=InMemoryNotifierStore()) as state:
        yield state


@pytest.fixture
def harness(tmp_path: Path) -> Fake:
    return build(InMemoryNotifierStore(), OutboxChannel(tmp_path / "outbox.jsonl"))


def new_id() -> str:
    return str(uuid.uuid4())


async def test_one_bad_record_is_dead_lettered_alone_and_the_rest_of_its_batch_is_sent(
    running: Running, unique: str
) -> None:
    one, two = f"a-{unique}", f"b-{unique}"
    for cid in (one, two):
        await running.runtime.publish(topics.FILED, filed_on_kakao(cid))
    lifecycle = topic_name(running.runtime.settings.kafka, topics.LIFECYCLE)

    await running.runtime.broker.publish_batch(
        received(one).model_dump_json().encode(),
        b"not json at all",
        b'{"event_type": "complaint.status_changed", "complaint_id": "c-x"}',
        received(two).model_dump_json().encode(),
        topic=lifecycle,
    )

    assert sorted(str(line["complaint_id"]) for line in running.lines()) == [one, two]
    assert [o.outcome for o in running.outcomes] == [Outcome.SENT, Outcome.SENT]
    letters = running.dead_letters
    assert len(letters) == 2, "each bad record on its own, the good ones not at all"
    assert {letter.original_topic for letter in letters} == {lifecycle}
    not_json, incomplete = sorted(letters, key=lambda letter: "json" not in letter.reason.lower())
    assert "json" in not_json.reason.lower()
    assert "receipt_number: Field required" in incomplete.reason, "the missing field is named"


async def test_a_batch_costs_the_same_few_store_calls_for_two_complaints_or_twenty(
    harness: Fake,
) -> None:
    async def cost(complaints: int) -> int:
        ids = [new_id() for _ in range(complaints)]
        await harness.delivery.remember_all([filed(cid) for cid in ids])
        arrivals = [Arrival(assigned(cid)) for cid in ids]
        before = harness.store.commands
        assert await harness.delivery.notify_all(arrivals) == []
        return harness.store.commands - before

    few, many = await cost(2), await cost(20)

    assert few == many == 5, "recipients, parked, ledger read, claims, finishes"
    assert len(harness.lines()) == 22
    assert len(harness.recorder.outcomes) == 22


async def test_a_redelivered_batch_reads_and_writes_nothing_more(harness: Fake) -> None:
    ids = [new_id() for _ in range(5)]
    await harness.delivery.remember_all([filed(cid) for cid in ids])
    arrivals = [Arrival(assigned(cid)) for cid in ids]
    await harness.delivery.notify_all(arrivals)
    before = harness.store.commands

    await harness.delivery.notify_all(arrivals)

    assert harness.store.commands - before == 3, "recipients, parked, ledger read"
    assert len(harness.lines()) == 5
    assert harness.metric("sotong_duplicate_messages_total", consumer="notifier", topic="lc") == 5


class Gate(MemoryChannel):
    """A channel that holds one complaint's message until another complaint's went out."""

    def __init__(self, slow: str, fast: str) -> None:
        super().__init__("outbox")
        self.slow, self.fast = slow, fast
        self.fast_sent = asyncio.Event()

    async def deliver(self, message: Message) -> None:
        if message.complaint_id == self.slow:
            await asyncio.wait_for(self.fast_sent.wait(), timeout=10)
        await super().deliver(message)
        if message.complaint_id == self.fast:
            self.fast_sent.set()


async def test_a_slow_delivery_does_not_hold_up_another_complaint_of_its_batch(
    tmp_path: Path,
) -> None:
    slow, fast = new_id(), new_id()
    gate = Gate(slow, fast)
    harness = build(InMemoryNotifierStore(), OutboxChannel(tmp_path / "o.jsonl"), {"outbox": gate})
    await harness.delivery.remember_all([filed(slow), filed(fast)])

    await harness.delivery.notify_all([Arrival(assigned(slow)), Arrival(assigned(fast))])

    assert [m.complaint_id for m in gate.sent] == [fast, slow], (
        "the second complaint went out while the first waited"
    )


async def test_one_complaints_steps_go_out_in_lifecycle_order_within_a_batch(
    harness: Fake,
) -> None:
    cid = new_id()
    await harness.delivery.remember_all([filed(cid)])
    first = assigned(cid)
    second = assigned(cid, sequence=3, from_state="assigned", to_state="site_check")

    await harness.delivery.notify_all([Arrival(second), Arrival(first), Arrival(second)])

    assert [line["state"] for line in harness.lines()] == [
        ComplaintState.ASSIGNED,
        ComplaintState.SITE_CHECK,
    ]
    assert [o.outcome for o in harness.recorder.outcomes] == [Outcome.SENT, Outcome.SENT]


class Hook(MemoryChannel):
    """A department's webhook receiver that holds one complaint's call until released. As
    every HTTP channel, it cannot tell the notifier what it received before a crash."""

    def __init__(self, held: str | None = None) -> None:
        super().__init__("webhook")
        self.held = held
        self.calling = asyncio.Event()
        self.release = asyncio.Event()

    async def deliver(self, message: Message) -> None:
        if message.complaint_id == self.held:
            self.calling.set()
            await self.release.wait()
        await super().deliver(message)

    async def already_delivered(self, delivery_id: str) -> bool:
        return False


async def test_a_kill_mid_batch_calls_again_only_the_webhook_in_flight(tmp_path: Path) -> None:
    """Each finish is written as its notice ends (a few ms later), not with the batch's
    last: a process killed while one call hangs leaves only that claim ``sending``."""
    slow, fast = new_id(), new_id()
    store = InMemoryNotifierStore()
    outbox = OutboxChannel(tmp_path / "outbox.jsonl")
    hook = Hook(held=slow)
    first = build(store, outbox, {"webhook": hook}, webhooks=frozenset({"RES"}), finish_every=0.005)
    await first.delivery.remember_all([filed(slow), filed(fast)])
    arrivals = [Arrival(assigned(slow)), Arrival(assigned(fast))]
    fast_hook = f"{arrivals[1].source.event_id}:department:RES:webhook"
    slow_hook = f"{arrivals[0].source.event_id}:department:RES:webhook"

    batch = asyncio.create_task(first.delivery.notify_all(arrivals))
    await asyncio.wait_for(hook.calling.wait(), timeout=5)

    for _ in range(1000):  # the settler writes it a few ms after the call returned
        record = await store.delivery(fast_hook)
        if record is not None and record.status == "sent":
            break
        await asyncio.sleep(0.005)
    assert (await first.record(fast_hook)).outcome_published, "one write: finished, published"
    assert (await first.record(slow_hook)).status == "sending", "still in flight"
    batch.cancel()  # the process is killed: the batch never ends
    with pytest.raises(asyncio.CancelledError):
        await batch

    again = Hook()
    restarted = build(store, outbox, {"webhook": again}, webhooks=frozenset({"RES"}))
    assert await restarted.delivery.notify_all(arrivals) == []

    assert [m.complaint_id for m in hook.sent] == [fast]
    assert [m.complaint_id for m in again.sent] == [slow], "only the call in flight, again"
    assert (await restarted.record(slow_hook)).status == "sent"
    assert sorted(str(line["complaint_id"]) for line in restarted.lines()) == sorted([slow, fast])


async def test_the_finishes_of_a_batch_share_a_write_when_they_end_together(
    tmp_path: Path,
) -> None:
    harness = build(InMemoryNotifierStore(), OutboxChannel(tmp_path / "o.jsonl"), finish_every=0.05)
    ids = [new_id() for _ in range(10)]
    await harness.delivery.remember_all([filed(cid) for cid in ids])
    before = harness.store.commands

    assert await harness.delivery.notify_all([Arrival(assigned(cid)) for cid in ids]) == []

    writes = harness.store.commands - before - 4  # recipients, parked, ledger read, claims
    assert 1 <= writes <= 3, f"{writes} finishing writes for 10 notices ending within 50 ms"
    assert len(harness.lines()) == 10


class FlakyFinish(InMemoryNotifierStore):
    """The database goes away just when a batch's finishes are written, once."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next_settle = True

    async def settle(
        self, finishes: Sequence[Finish], marks: Sequence[Mark], *, now: datetime
    ) -> None:
        if self.fail_next_settle:
            self.fail_next_settle = False
            raise AutoReconnect("the database is away")
        await super().settle(finishes, marks, now=now)


async def test_a_batch_retried_after_its_finishes_could_not_be_written_sends_nothing_again(
    tmp_path: Path,
) -> None:
    """The kit retries the batch in place (the same process): what this process sent but
    could not record is not sent again."""
    cid = new_id()
    store = FlakyFinish()
    hook = Hook()
    harness = build(
        store, OutboxChannel(tmp_path / "o.jsonl"), {"webhook": hook}, webhooks=frozenset({"RES"})
    )
    await harness.delivery.remember_all([filed(cid)])
    arrivals = [Arrival(assigned(cid))]

    with pytest.raises(AutoReconnect):
        await harness.delivery.notify_all(arrivals)
    assert await harness.delivery.notify_all(arrivals) == []

    assert [m.complaint_id for m in hook.sent] == [cid], "the webhook once"
    webhook = f"{arrivals[0].source.event_id}:department:RES:webhook"
    assert (await harness.record(webhook)).status == "sent"
    assert len(harness.lines()) == 1
