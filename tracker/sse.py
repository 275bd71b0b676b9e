"""A complaint's timeline as Server-Sent Events, so a resident's page updates live.

One poller per followed complaint reads its timeline (SecantusDB has no change streams),
however many pages follow it (:class:`TimelineHub`); each stream reads the poller's
latest snapshot. Each timeline entry is sent once, as ``event: timeline`` with ``id:``
its sequence, so a browser that reconnects sends ``Last-Event-ID`` and gets only what it
missed. Comment lines keep idle connections (and the proxies in between) open.

Bounded: a stream ends with ``event: end`` when the complaint reaches a state nothing
leaves (반려, 취하: ``{"reason": "final"}``, and the page should close it) or after a
maximum lifetime (``{"reason": "lifetime"}``: the browser reconnects with
``Last-Event-ID`` and misses nothing); the routes cap the streams per complaint and in
all.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from schemas.states import ComplaintState
from tracker.view import TimelineEntry

KEEP_ALIVE = ": keep-alive\n\n"

END_STATES = frozenset({ComplaintState.REJECTED.value, ComplaintState.WITHDRAWN.value})
"""States no transition leaves: a stream that shows one has nothing more to say."""

Read = Callable[[], Awaitable[list[TimelineEntry] | None]]


@dataclass(frozen=True)
class StreamTiming:
    poll_seconds: float
    keepalive_seconds: float
    max_seconds: float = 600.0

    @property
    def retry_ms(self) -> int:
        """How long a browser waits before reconnecting after the stream drops."""
        return max(1000, int(self.poll_seconds * 4000))


def end_event(reason: str, state: str | None = None) -> str:
    data = json.dumps({"reason": reason} | ({"state": state} if state else {}))
    return f"event: end\ndata: {data}\n\n"


def sse_event(entry: TimelineEntry) -> str:
    return f"id: {entry.sequence}\nevent: timeline\ndata: {entry.model_dump_json()}\n\n"


def last_event_id(header: str | None) -> int:
    """The sequence a reconnecting client already has; 0 when absent or not ours."""
    try:
        return max(0, int(header or 0))
    except ValueError:
        return 0


async def timeline_stream(
    read: Read,
    *,
    timing: StreamTiming,
    after: int = 0,
    disconnected: Callable[[], Awaitable[bool]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[str]:
    """Every timeline entry with a sequence above ``after``: first those stored, then
    each new one, until the client goes away, the complaint ends or the lifetime does."""
    yield f"retry: {timing.retry_ms}\n\n"
    sent: set[int] = set()
    started = quiet_since = clock()
    while not await disconnected():
        entries = await read() or []
        for entry in entries:
            if entry.sequence > after and entry.sequence not in sent:
                sent.add(entry.sequence)
                quiet_since = clock()
                yield sse_event(entry)
        if entries and entries[-1].state in END_STATES:
            yield end_event("final", entries[-1].state)
            return
        if clock() - started >= timing.max_seconds:
            yield end_event("lifetime")
            return
        if clock() - quiet_since >= timing.keepalive_seconds:
            quiet_since = clock()
            yield KEEP_ALIVE
        await sleep(timing.poll_seconds)


@dataclass
class _Followed:
    followers: int = 0
    latest: list[TimelineEntry] | None = None
    first: asyncio.Event = field(default_factory=asyncio.Event)
    poller: "asyncio.Task[None] | None" = None


class TimelineHub:
    """One poller per followed complaint: a hundred pages on one complaint cost the
    database what one does."""

    def __init__(
        self,
        read: Callable[[str], Awaitable[list[TimelineEntry] | None]],
        *,
        poll_seconds: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._read = read
        self._poll = poll_seconds
        self._sleep = sleep
        self._followed: dict[str, _Followed] = {}

    def followers(self, complaint_id: str) -> int:
        followed = self._followed.get(complaint_id)
        return followed.followers if followed else 0

    def total(self) -> int:
        return sum(f.followers for f in self._followed.values())

    @contextlib.asynccontextmanager
    async def follow(self, complaint_id: str) -> AsyncIterator[Read]:
        """A reader of the complaint's latest timeline, polled once for all followers."""
        followed = self._followed.setdefault(complaint_id, _Followed())
        followed.followers += 1
        if followed.poller is None:
            followed.poller = asyncio.create_task(self._poll_loop(complaint_id, followed))

        async def latest() -> list[TimelineEntry] | None:
            await followed.first.wait()
            return followed.latest

        try:
            yield latest
        finally:
            followed.followers -= 1
            if followed.followers == 0:
                del self._followed[complaint_id]
                followed.poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await followed.poller

    async def _poll_loop(self, complaint_id: str, followed: _Followed) -> None:
        while True:
            with contextlib.suppress(Exception):  # a failed read keeps the last snapshot
                followed.latest = await self._read(complaint_id)
            followed.first.set()
            await self._sleep(self._poll)
