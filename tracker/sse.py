"""A complaint's timeline as Server-Sent Events, so a resident's page updates live.

One poller per followed complaint reads its timeline (SecantusDB has no change streams),
however many pages follow it (:class:`TimelineHub`); each stream reads the poller's
latest snapshot. Each timeline entry is sent once, as ``event: timeline`` with ``id:``
its sequence, so a browser that reconnects sends ``Last-Event-ID`` and gets only what it
missed. Comment lines keep idle connections (and the proxies in between) open.

Who may open one: a browser's EventSource cannot send headers, so a page first asks for
a stream ticket (``POST …/stream-ticket`` with the tracking or resident token in a header)
and opens the stream with ``?ticket=`` (:class:`StreamTickets`): a URL that proxies and
histories keep then holds a key to one complaint's timeline for a minute, not the token.

Bounded: a stream ends with ``event: end`` when the complaint reaches a state nothing
leaves (반려, 취하: ``{"reason": "final"}``, and the page should close it) or after a
maximum lifetime (``{"reason": "lifetime"}``: the browser reconnects with
``Last-Event-ID`` and misses nothing); the routes cap the streams per complaint and in
all.
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from schemas.states import ComplaintState
from tracker.view import TimelineEntry

log = logging.getLogger("sotong.tracker.sse")

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


TICKET_VERSION = "t1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class StreamTickets:
    """Short-lived tickets for one complaint's live timeline, signed (HMAC-SHA256) rather
    than stored, so any tracker replica sharing the key accepts what another issued.

    A ticket is ``t1.<expiry, unix seconds>.<nonce>.<mac>``, the MAC over the version,
    the complaint id, the expiry and the nonce: it opens only that complaint's stream,
    only until it expires, and any changed character spoils it. It is not single-use (no
    replica would know another saw it): its lifetime is what bounds a leaked one.
    """

    def __init__(self, key: bytes, *, lifetime: timedelta, clock: Callable[[], datetime]):
        if len(key) < 32:
            raise ValueError("a stream ticket key needs at least 32 bytes")
        self._key = key
        self.lifetime = lifetime
        self._clock = clock

    def _mac(self, complaint_id: str, expiry: int, nonce: str) -> str:
        data = f"{TICKET_VERSION}|{complaint_id}|{expiry}|{nonce}".encode()
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())

    def issue(self, complaint_id: str) -> tuple[str, datetime]:
        """A ticket for ``complaint_id`` and when it expires."""
        expiry = int((self._clock() + self.lifetime).timestamp())
        nonce = _b64(secrets.token_bytes(9))
        mac = self._mac(complaint_id, expiry, nonce)
        return f"{TICKET_VERSION}.{expiry}.{nonce}.{mac}", datetime.fromtimestamp(expiry, UTC)

    def admits(self, ticket: str | None, complaint_id: str) -> bool:
        """Whether ``ticket`` was issued for this complaint and has not expired."""
        if not ticket:
            return False
        version, _, rest = ticket.partition(".")
        expiry_text, _, rest = rest.partition(".")
        nonce, _, mac = rest.partition(".")
        digits = expiry_text.isascii() and expiry_text.isdigit()
        if version != TICKET_VERSION or not digits or not nonce or not mac:
            return False
        expected = self._mac(complaint_id, int(expiry_text), nonce)
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return False
        return self._clock().timestamp() < int(expiry_text)


def stream_tickets(
    key: SecretStr | None, *, lifetime: timedelta, clock: Callable[[], datetime]
) -> StreamTickets:
    """The tickets of a tracker with ``key``; without one, a key of this process alone,
    which is right for one replica only: a ticket another replica issued is refused."""
    if key is None:
        log.warning(
            "no stream ticket key configured (SOTONG_TRACKER_STREAM_TICKET_KEY): tickets "
            "from this process only; set one shared key when several trackers serve"
        )
        return StreamTickets(secrets.token_bytes(32), lifetime=lifetime, clock=clock)
    return StreamTickets(key.get_secret_value().encode(), lifetime=lifetime, clock=clock)
