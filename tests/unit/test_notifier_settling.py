"""The settler: finished deliveries coalesced into one write per interval, written at once
when a batch asks, and a failed write heard by every batch with a part in it."""

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from pymongo.errors import AutoReconnect

from notifier.ledger import DeliveryStatus, Finish, Mark
from notifier.settling import Settler

AT = datetime(2026, 12, 2, tzinfo=UTC)


def finish(did: str) -> Finish:
    return Finish(delivery_id=did, status=DeliveryStatus.SENT, at=AT, published=True)


class Writes:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []
        self.fail = fail

    async def __call__(self, finishes: Sequence[Finish], marks: Sequence[Mark]) -> None:
        self.calls.append(([f.delivery_id for f in finishes], [m.delivery_id for m in marks]))
        if self.fail:
            raise AutoReconnect("the database is away")


async def test_finishes_handed_over_within_an_interval_share_one_write() -> None:
    writes = Writes()
    settler = Settler(writes, every=0.05)
    first = settler.add([finish("a")], [])
    await asyncio.sleep(0.01)
    second = settler.add([finish("b")], [Mark(delivery_id="c", published=True)])

    await asyncio.wait_for(asyncio.gather(first, second), timeout=2)

    assert writes.calls == [(["a", "b"], ["c"])]


async def test_a_batch_that_ends_has_its_finishes_written_at_once() -> None:
    writes = Writes()
    settler = Settler(writes, every=60)
    handed = [settler.add([finish("a")], []), settler.add([finish("b")], [])]

    started = time.monotonic()
    await settler.settle(handed)

    assert time.monotonic() - started < 5, "not the interval's 60 s"
    assert writes.calls == [(["a", "b"], [])]
    await settler.settle(handed)  # written already: nothing more
    assert len(writes.calls) == 1


async def test_a_failed_write_fails_the_batch_that_waits_for_it() -> None:
    settler = Settler(Writes(fail=True), every=0.001)
    handed = settler.add([finish("a")], [])

    with pytest.raises(AutoReconnect):
        await settler.settle([handed])
