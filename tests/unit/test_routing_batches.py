"""Consuming in batches: one read, one classifier call and one bulk write per batch; one
complaint's messages in order; a complaint another process moved is decided again alone;
one invalid record dead-lettered alone. In memory; tests/service/test_routing_batches.py
counts the database commands a batch costs on the real server."""

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Histogram
from pydantic import ValidationError

from routing.classifier import Prediction
from routing.handlers import FILED_ADAPTER, Consumer
from routing.store import RoutingRecord, Write
from schemas import ComplaintFiled, topics
from schemas.commands import (
    COMMAND_ADAPTER,
    CloseComplaint,
    ResolveComplaint,
    StartReview,
    StartSiteCheck,
)
from schemas.common import Location
from tests.fakes.routing import InMemoryRoutingStore
from tests.unit.test_routing_handlers import CATALOGUE, DEPT, Harness, filed, harness


class CountingStore(InMemoryRoutingStore):
    """The fake store, counting the calls a batch makes and able to play a rival process
    that moves a complaint between the batch's read and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.rival: Any = None

    async def get_many(self, complaint_ids: Collection[str]) -> dict[str, RoutingRecord]:
        self.calls["get_many"] += 1
        return await super().get_many(complaint_ids)

    async def write_many(self, writes: Sequence[Write]) -> list[bool]:
        self.calls["write_many"] += 1
        if self.rival is not None:
            rival, self.rival = self.rival, None
            await rival()
        return await super().write_many(writes)

    async def clear_outboxes(self, cleared: Any) -> None:
        self.calls["clear_outboxes"] += 1
        await super().clear_outboxes(cleared)


@dataclass
class BatchClassifier:
    answer: Prediction = field(default_factory=lambda: Prediction(DEPT, 0.93, auto=True))
    batches: list[list[str]] = field(default_factory=list)

    def predict(self, text: str) -> Prediction:
        raise AssertionError("a batch is classified in one call")

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        self.batches.append(list(texts))
        return [self.answer for _ in texts]


def counting() -> tuple[Harness, CountingStore, BatchClassifier]:
    h = harness()
    store, classifier = CountingStore(), BatchClassifier()
    h.routing.store = store
    h.routing.classifier = classifier
    h.store = store
    return h, store, classifier


def at(complaint_id: str, dong: str = "청라2동", **fields: Any) -> ComplaintFiled:
    return filed(complaint_id, location=Location(dong=dong), **fields)


async def test_a_batch_is_read_classified_and_written_once() -> None:
    h, store, classifier = counting()
    await h.routing.handle([at("a"), at("b", service_code="noise"), at("c")])
    assert classifier.batches == [
        ["대형 폐기물 이불 버리려면 어떻게 해요", "대형 폐기물 이불 버리려면 어떻게 해요"]
    ]
    # New complaints are inserted without being read first: a stored one collides.
    assert store.calls == {"write_many": 1, "clear_outboxes": 1}
    for complaint_id in "abc":
        events = h.sent.lifecycle(complaint_id)
        assert [e.sequence for e in events] == [1, 2, 3]
        stored = await store.get(complaint_id)
        assert stored is not None
        assert (stored.outbox, stored.outbox_pending, stored.loads_pending) == ((), False, False)
    assert h.sent.lifecycle("b")[1].department == "environment"
    store.calls.clear()
    await h.routing.handle([at("a"), at("d")])  # a redelivered filing beside a new one
    assert store.calls == {"write_many": 2, "get_many": 1, "clear_outboxes": 2}
    assert len(h.sent.lifecycle("a")) == 3
    assert [e.sequence for e in h.sent.lifecycle("d")] == [1, 2, 3]


async def test_handlers_chosen_in_one_batch_are_the_ones_chosen_one_by_one() -> None:
    one_by_one, together = harness(), harness()
    capacity = CATALOGUE.rosters[DEPT][0].capacity
    complaints = [at(f"c{n}") for n in range(capacity + 2)]
    for complaint in complaints:
        await one_by_one.routing.on_filed(complaint)
    await together.routing.handle(complaints)

    def handlers(h: Harness) -> list[str | None]:
        return [
            e.handler.handler_id if e.handler else None
            for c in complaints
            for e in h.sent.lifecycle(c.complaint_id)[2:]
        ]

    assert handlers(together) == handlers(one_by_one)
    supervisor = CATALOGUE.departments[DEPT].supervisor.handler_id
    assert handlers(together)[capacity - 1 :] == [f"{DEPT}-1", supervisor, supervisor]


async def test_one_complaints_messages_are_decided_in_the_order_they_came() -> None:
    h, store, _ = counting()
    review = StartReview(actor=DEPT, complaint_id="a")
    await h.routing.handle(
        [
            at("a"),
            StartSiteCheck(actor=DEPT, complaint_id="a"),
            review,
            ResolveComplaint(actor=DEPT, complaint_id="a", note="수거함"),
            review,  # redelivered within the batch: already done
            CloseComplaint(actor=DEPT, complaint_id="nope"),
        ]
    )
    events = h.sent.lifecycle("a")
    assert [(e.sequence, e.to_state.value) for e in events] == [
        (1, "received"),
        (2, "assigned"),
        (3, "handler_assigned"),
        (4, "site_check"),
        (5, "reviewing"),
        (6, "resolved"),
    ]
    assert [r.code for r in h.rejections()] == ["unknown_complaint"]
    assert h.duplicates == [topics.COMMANDS]
    assert store.calls["write_many"] == 1
    stored = await store.get("a")
    assert stored is not None
    assert (stored.sequence, stored.outbox, stored.outbox_pending) == (6, (), False)


async def test_a_complaint_another_process_moved_is_read_and_decided_again_alone() -> None:
    h, store, _ = counting()
    await h.routing.handle([at("a"), at("b")])
    rival_review = StartSiteCheck(actor=DEPT, complaint_id="a")

    async def rival() -> None:  # another routing process applies a command to "a" first
        await h.routing.handle([rival_review])

    store.rival = rival
    review = StartReview(actor=DEPT, complaint_id="a")
    other = StartSiteCheck(actor=DEPT, complaint_id="b")
    await h.routing.handle([review, other])

    assert [(e.sequence, e.trigger) for e in h.sent.lifecycle("a")][3:] == [
        (4, "start_site_check"),
        (5, "start_review"),
    ]
    assert [(e.sequence, e.trigger) for e in h.sent.lifecycle("b")][3:] == [(4, "start_site_check")]
    stored = await store.get("a")
    assert stored is not None
    assert stored.has_processed(review.event_id)
    assert stored.has_processed(rival_review.event_id)
    assert (stored.sequence, stored.outbox) == (5, ())


async def test_a_redelivered_batch_publishes_what_its_crash_left_and_nothing_new() -> None:
    h, store, _ = counting()
    h.sent.fail_next = 1
    batch = [at("a"), at("b")]
    try:
        await h.routing.handle(batch)
    except ConnectionError:
        pass
    else:
        raise AssertionError("the lost broker fails the batch")
    sent_before = {e.event_id for _, e in h.sent.sent}
    await h.routing.handle(batch)  # the middleware's retry, or a redelivery
    for complaint_id in "ab":
        events = h.sent.lifecycle(complaint_id)
        assert sorted({e.sequence for e in events}) == [1, 2, 3]
        assert len({e.event_id for e in events}) == 3
    assert sent_before <= {e.event_id for _, e in h.sent.sent}
    assert await store.pending_outboxes() == []
    assert await store.pending_loads() == []


@dataclass
class Record:
    """What the batch handler reads of an aiokafka ConsumerRecord."""

    topic: str
    value: bytes
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


async def test_one_invalid_record_is_dead_lettered_alone_and_the_rest_decided() -> None:
    h = harness()
    letters: list[tuple[bytes, BaseException]] = []

    async def dead_letter(message: StreamMessage[Any], exc: BaseException, attempts: int) -> None:
        letters.append((message.body, exc))

    consumer = Consumer(
        routing=h.routing,
        adapter=FILED_ADAPTER,
        dead_letter=dead_letter,
        batch_records=Histogram("batch", "records", registry=CollectorRegistry()),
    )
    good = at("a")
    no_body = good.model_dump(mode="json") | {"complaint_id": "b", "body": None}

    await consumer.handle(
        [
            Record(topics.FILED, b"{broken", key=b"x", offset=1),
            Record(topics.FILED, good.model_dump_json().encode(), key=b"a", offset=2),
            Record(topics.FILED, json.dumps(no_body).encode(), key=b"b", offset=3),
        ]
    )
    assert [body for body, _ in letters] == [b"{broken", json.dumps(no_body).encode()]
    assert all(isinstance(exc, ValidationError) for _, exc in letters)
    assert "body" in str(letters[1][1])
    assert [e.sequence for e in h.sent.lifecycle("a")] == [1, 2, 3]
    assert h.sent.lifecycle("b") == []


async def test_commands_are_parsed_by_their_action() -> None:
    h = harness()
    await h.routing.on_filed(at("a"))
    consumer = Consumer(
        routing=h.routing,
        adapter=COMMAND_ADAPTER,
        dead_letter=_never,
        batch_records=Histogram("batch", "records", registry=CollectorRegistry()),
    )
    command = StartSiteCheck(actor=DEPT, complaint_id="a")
    await consumer.handle([Record(topics.COMMANDS, command.model_dump_json().encode())])
    assert h.sent.lifecycle("a")[-1].to_state.value == "site_check"


async def _never(message: StreamMessage[Any], exc: BaseException, attempts: int) -> None:
    raise AssertionError(f"nothing here is dead-lettered: {exc}")


async def test_load_deltas_a_crash_left_staged_are_applied_by_the_settling_loop() -> None:
    h, store, _ = counting()
    applied_before_crash = store.apply_loads

    async def crash(deltas: Any) -> None:
        raise ConnectionError("database unreachable")

    store.apply_loads = crash  # type: ignore[method-assign]
    try:
        await h.routing.handle([at("a")])
    except ConnectionError:
        pass
    else:
        raise AssertionError("the lost database fails the batch")
    store.apply_loads = applied_before_crash  # type: ignore[method-assign]
    [staged] = await store.pending_loads()
    assert [(d.handler_id, d.open, d.total) for d in staged.load_deltas] == [(f"{DEPT}-1", 1, 1)]
    assert await h.routing.settle_loads() == 1
    assert [d.key for d in store.applied] == [f"a:{staged.sequence}"]
    assert await store.pending_loads() == []
    assert await h.routing.settle_loads() == 0


async def published_but_not_cleared(h: Harness, store: CountingStore, complaint_id: str) -> None:
    """A batch that published and then failed to clear the outbox (the database went
    away): the events are out, the outbox stays staged."""
    clear = store.clear_outboxes

    async def crash(cleared: Any) -> None:
        raise ConnectionError("database unreachable")

    store.clear_outboxes = crash  # type: ignore[method-assign]
    with contextlib.suppress(ConnectionError):
        await h.routing.handle([at(complaint_id)])
    store.clear_outboxes = clear  # type: ignore[method-assign]


async def test_the_relay_leaves_a_live_batch_its_own_outbox_until_the_grace_ends() -> None:
    """After its first pass the relay takes only outboxes staged more than the grace ago:
    one a batch is still publishing is not published twice."""
    h, store, _ = counting()
    await published_but_not_cleared(h, store, "a")
    sent = len(h.sent.lifecycle("a"))
    assert sent > 0
    assert len(await store.pending_outboxes()) == 1

    assert await h.routing.settle_loads(grace=30) == 0  # staged just now: not yet
    relay = asyncio.create_task(h.routing.relay_forever(0.001, grace=30))
    try:
        await asyncio.sleep(0.05)  # the first pass (a restart's) takes everything
        assert len(h.sent.lifecycle("a")) == 2 * sent
        assert await store.pending_outboxes() == []
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


async def test_after_the_first_pass_only_outboxes_older_than_the_grace_are_relayed() -> None:
    h, store, _ = counting()
    relay = asyncio.create_task(h.routing.relay_forever(0.001, grace=30))
    try:
        await asyncio.sleep(0.02)  # the first pass, on nothing
        await published_but_not_cleared(h, store, "a")
        sent = len(h.sent.lifecycle("a"))
        await asyncio.sleep(0.05)
        assert len(h.sent.lifecycle("a")) == sent  # within the grace: left alone
        h.clock.now += timedelta(seconds=31)
        await asyncio.sleep(0.05)
        assert len(h.sent.lifecycle("a")) == 2 * sent  # a crash's leftovers, relayed
        assert await store.pending_outboxes() == []
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


async def test_a_batch_of_this_process_keeps_its_outbox_however_slow_it_is() -> None:
    """A batch slower than the grace (a saturated database) is still publishing: the relay
    and the load settler of the same process leave its complaints to it, so nothing is
    published twice and the batch's work is not done again while it runs."""
    h, store, _ = counting()
    clear = store.clear_outboxes
    release = asyncio.Event()
    reached = asyncio.Event()

    async def slow(cleared: Any) -> None:
        reached.set()
        await release.wait()
        await clear(cleared)

    store.clear_outboxes = slow  # type: ignore[method-assign]
    batch = asyncio.create_task(h.routing.handle([at("a")]))
    await asyncio.wait_for(reached.wait(), 5)
    sent = len(h.sent.lifecycle("a"))
    assert sent > 0
    assert len(await store.pending_outboxes()) == 1  # staged, not yet cleared
    h.clock.now += timedelta(seconds=31)  # older than the grace
    relay = asyncio.create_task(h.routing.relay_forever(0.001, grace=30))
    try:
        await asyncio.sleep(0.05)  # the first pass and later ones
        assert len(h.sent.lifecycle("a")) == sent
        assert await h.routing.settle_loads(grace=30) == 0
        release.set()
        await asyncio.wait_for(batch, 5)
        assert await store.pending_outboxes() == []
        await asyncio.sleep(0.02)
        assert len(h.sent.lifecycle("a")) == sent
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


async def test_what_a_failed_batch_staged_goes_to_the_relay_after_all() -> None:
    """The batch's claim ends with it: a batch that failed after staging leaves its
    outbox to the relay once the grace has passed."""
    h, store, _ = counting()
    await published_but_not_cleared(h, store, "a")
    sent = len(h.sent.lifecycle("a"))
    h.clock.now += timedelta(seconds=31)
    relay = asyncio.create_task(h.routing.relay_forever(0.001, grace=30))
    try:
        await asyncio.sleep(0.05)
        assert len(h.sent.lifecycle("a")) == 2 * sent
        assert await store.pending_outboxes() == []
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
