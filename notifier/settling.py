"""Finishing deliveries as they end, a few milliseconds apart, instead of once per batch.

A batch claims its deliveries in one write and used to finish them all in one write after
its last call; a process killed in between left every claim of the batch ``sending``, and
the redelivery resumed them all: each webhook and each message to a channel that cannot
say what it already sent went out a second time (about ten per kill in the resilience
suite). Now each notice's deliveries are handed over as soon as its chain has run and its
outcome is published, and :class:`Settler` writes what was handed over every ``every``
seconds in one bulk write (:meth:`notifier.ledger.LedgerStore.settle`), shared by every
batch of the process. A kill then resumes only the calls in flight and those that ended
within the last interval.

A batch still waits for all of its own finishes to be written (:meth:`Settler.settle`
writes at once what is queued) before it puts anything on the retry topic or lets its
offsets be committed, so nothing is acknowledged that the ledger does not hold.

A write that fails (the database away) fails every batch with a part in it, and the kit
retries those batches in place; the settler remembers what it could not write
(:meth:`Settler.sent_unrecorded`), so a retry in the same process does not send again a
message this process knows went out.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from notifier.ledger import DeliveryStatus, Finish, Mark

UNRECORDED_KEPT = 10_000
"""At most this many unrecorded sends are remembered (a long outage drops the oldest)."""

Write = Callable[[Sequence[Finish], Sequence[Mark]], Awaitable[None]]
"""One bulk write of finishes and marks: :meth:`LedgerStore.settle` at the current time."""


@dataclass
class _Queued:
    finishes: tuple[Finish, ...]
    marks: tuple[Mark, ...]
    future: "asyncio.Future[None]"


@dataclass
class Settler:
    """Coalesces finished deliveries into one write per interval."""

    write: Write
    every: float
    """Seconds a handed-over finish may wait for others to share its write."""
    _queue: list[_Queued] = field(default_factory=list)
    _writer: "asyncio.Task[None] | None" = None
    _now: asyncio.Event | None = None
    """Set when a batch waits for its finishes: the writer stops lingering. One per
    writer, made on the loop that runs it."""
    _unrecorded: dict[str, Finish] = field(default_factory=dict)
    """Deliveries sent whose finish a failed write could not record, oldest first."""

    def sent_unrecorded(self, delivery_id: str) -> Finish | None:
        """The ``sent`` finish of a delivery this process sent but could not record (the
        database away when it was written), if any: a resumed claim must not send again."""
        return self._unrecorded.get(delivery_id)

    def add(self, finishes: Iterable[Finish], marks: Iterable[Mark]) -> "asyncio.Future[None]":
        """Queue these for the next write; the future is done once they are written (or
        holds why the write failed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # a batch that failed before waiting leaves the result unread: do not warn about it
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(_Queued(tuple(finishes), tuple(marks), future))
        if self._writer is None or self._writer.done():
            self._now = asyncio.Event()
            self._writer = asyncio.create_task(self._drain(self._now))
        return future

    async def settle(self, futures: Sequence["asyncio.Future[None]"]) -> None:
        """Write what is queued now, and wait until these are written; raise the first
        failure among them."""
        if not all(f.done() for f in futures):
            assert self._now is not None, "a future not done has a writer"
            self._now.set()
            await asyncio.wait([asyncio.ensure_future(asyncio.shield(f)) for f in futures])
        for f in futures:
            if f.cancelled():
                raise asyncio.CancelledError
            if (exc := f.exception()) is not None:
                raise exc

    async def _drain(self, now: asyncio.Event) -> None:
        batch: list[_Queued] = []
        try:
            while self._queue:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(now.wait(), self.every)
                now.clear()
                batch, self._queue = self._queue, []
                try:
                    await self.write(
                        [f for q in batch for f in q.finishes], [m for q in batch for m in q.marks]
                    )
                except Exception as exc:  # every batch with a part in it hears why
                    self._remember([f for q in batch for f in q.finishes])
                    for q in batch:
                        if not q.future.done():
                            q.future.set_exception(exc)
                else:
                    for q in batch:
                        for f in q.finishes:
                            self._unrecorded.pop(f.delivery_id, None)
                        if not q.future.done():
                            q.future.set_result(None)
                batch = []
        except BaseException:  # cancelled (shutdown): nobody is left waiting forever
            for q in [*batch, *self._queue]:
                q.future.cancel()
            self._queue = []
            raise

    def _remember(self, finishes: Sequence[Finish]) -> None:
        for f in finishes:
            if f.status is DeliveryStatus.SENT:
                self._unrecorded[f.delivery_id] = f
        while len(self._unrecorded) > UNRECORDED_KEPT:
            del self._unrecorded[next(iter(self._unrecorded))]
