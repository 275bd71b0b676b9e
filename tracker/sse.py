"""A complaint's timeline as Server-Sent Events, so a resident's page updates live.

The stream polls the complaint's read model (SecantusDB has no change streams, and a
poll every half second per open page is cheap next to a rebuild per event). Each
timeline entry is sent once, as ``event: timeline`` with ``id:`` its sequence, so a
browser that reconnects sends ``Last-Event-ID`` and gets only what it missed. Comment
lines keep idle connections (and the proxies in between) open.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from tracker.view import TimelineEntry

KEEP_ALIVE = ": keep-alive\n\n"


@dataclass(frozen=True)
class StreamTiming:
    poll_seconds: float
    keepalive_seconds: float

    @property
    def retry_ms(self) -> int:
        """How long a browser waits before reconnecting after the stream drops."""
        return max(1000, int(self.poll_seconds * 4000))


def sse_event(entry: TimelineEntry) -> str:
    return f"id: {entry.sequence}\nevent: timeline\ndata: {entry.model_dump_json()}\n\n"


def last_event_id(header: str | None) -> int:
    """The sequence a reconnecting client already has; 0 when absent or not ours."""
    try:
        return max(0, int(header or 0))
    except ValueError:
        return 0


async def timeline_stream(
    read: Callable[[], Awaitable[list[TimelineEntry] | None]],
    *,
    timing: StreamTiming,
    after: int = 0,
    disconnected: Callable[[], Awaitable[bool]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[str]:
    """Every timeline entry with a sequence above ``after``: first those stored, then
    each new one, until the client goes away."""
    yield f"retry: {timing.retry_ms}\n\n"
    sent: set[int] = set()
    quiet_since = clock()
    while not await disconnected():
        for entry in await read() or []:
            if entry.sequence > after and entry.sequence not in sent:
                sent.add(entry.sequence)
                quiet_since = clock()
                yield sse_event(entry)
        if clock() - quiet_since >= timing.keepalive_seconds:
            quiet_since = clock()
            yield KEEP_ALIVE
        await sleep(timing.poll_seconds)
