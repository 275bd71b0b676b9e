"""Abuse limits: how many requests one caller may make, and the 429 that says so.

A limit is a token bucket per key (``Buckets``): ``count`` requests at once, refilled at
``count`` per ``seconds``, so a caller within the rate never waits and a burst beyond it is
refused with how long until one more is allowed. Memory is bounded: at most ``max_keys``
keys, the least recently seen forgotten first (a flood of new addresses cannot grow it,
and a forgotten key had been idle longest). ``Limits`` takes one from several buckets
(per minute and per hour) only when every one of them allows it.

Who a caller is (``EndUsers``): the TCP client address by default. A channel that presents
its credential (``X-Api-Key``) may name the end user it acts for in ``X-End-User`` (the
portal the resident's address, the Kakao skill the Kakao user key), and is then limited
per (channel, end user); from a caller without a valid credential the header is ignored,
so nobody escapes a limit by inventing end users. A credential without ``X-End-User`` is
limited per credential, with that credential's (more generous) limit.

A refusal is the kit's error shape (``{"error": {"code": "rate_limited", "message"}}``)
with ``Retry-After``; the message starts with what was limited (``client``, ``phone``,
``key``), never with the key itself. ``RateLimitMetrics`` counts refusals by service and
limit name only: no address, end user or phone ever becomes a label.
"""

import hashlib
import hmac
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter

from services.http import ApiError
from services.keys import ApiKeys

Monotonic = Callable[[], float]


def monotonic() -> float:
    """The clock buckets count by unless given one: ``time.monotonic`` looked up on each
    call, so a test can hold this module's clock still without touching the event loop's."""
    return time.monotonic()


END_USER_HEADER = "X-End-User"
MAX_END_USER = 200
"""An ``X-End-User`` longer than this is cut: it is a key, not a message."""


@dataclass(frozen=True)
class Rate:
    """At most ``count`` in a burst, refilled at ``count`` per ``seconds``."""

    count: int
    seconds: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.seconds <= 0:
            raise ValueError("a rate needs a count of at least 1 and a positive period")

    def describe(self) -> str:
        unit = {60.0: "a minute", 3600.0: "an hour", 86400.0: "a day"}.get(float(self.seconds))
        return f"{self.count} {unit}" if unit else f"{self.count} per {self.seconds:g} s"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0
    """Seconds until one more request would be allowed (0 when this one is)."""
    rate: Rate | None = None
    """The rate that refused it."""

    @property
    def retry_after_seconds(self) -> int:
        """As ``Retry-After`` says it: whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_after))


ALLOWED = Decision(True)


@dataclass
class Buckets:
    """A token bucket per key, for at most ``max_keys`` keys (least recently seen forgotten)."""

    rate: Rate
    max_keys: int = 10_000
    clock: Monotonic = monotonic
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.rate.count), now))
        refill = (now - at) * self.rate.count / self.rate.seconds
        return min(float(self.rate.count), tokens + refill)

    def _decide(self, tokens: float) -> Decision:
        if tokens >= 1:
            return ALLOWED
        wait = (1 - tokens) * self.rate.seconds / self.rate.count
        return Decision(False, wait, self.rate)

    def peek(self, key: str) -> Decision:
        """Whether one more request would be allowed now, without taking it."""
        return self._decide(self._tokens(key, self.clock()))

    def take(self, key: str) -> Decision:
        """Take one if allowed; the decision either way. A refused request takes nothing."""
        now = self.clock()
        tokens = self._tokens(key, now)
        decision = self._decide(tokens)
        self._buckets.pop(key, None)
        self._buckets[key] = (tokens - 1 if decision.allowed else tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return decision

    def allow(self, key: str) -> bool:
        return self.take(key).allowed

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass
class Limits:
    """Several buckets over the same keys (per minute and per hour): a request is taken
    from all of them only when each allows it; refused, it waits for the slowest."""

    buckets: Sequence[Buckets]

    @classmethod
    def of(
        cls, rates: Sequence[Rate], *, max_keys: int = 10_000, clock: Monotonic = monotonic
    ) -> "Limits":
        return cls([Buckets(rate, max_keys, clock) for rate in rates])

    def take(self, key: str) -> Decision:
        refused = [d for d in (b.peek(key) for b in self.buckets) if not d.allowed]
        if refused:
            return max(refused, key=lambda d: d.retry_after)
        for bucket in self.buckets:
            bucket.take(key)
        return ALLOWED


RATE_LIMITED = "rate_limited"


def too_many(limited: str, decision: Decision, what: str = "requests") -> ApiError:
    """The 429 for a refused ``decision``: ``limited`` names what was limited (``client``,
    ``phone``, ``key``) and is the only part of the key the answer carries."""
    rate = f"at most {decision.rate.describe()} " if decision.rate else ""
    wait = decision.retry_after_seconds
    return ApiError(
        429,
        RATE_LIMITED,
        f"{limited}: too many {what} ({rate}allowed); try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )


class RateLimitMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.refused = Counter(
            "sotong_rate_limited_total",
            "Requests refused by an abuse limit (429), by service and limit name.",
            ["service", "limit"],
            registry=registry,
        )

    def count(self, limit: str) -> None:
        self.refused.labels(self.service, limit).inc()


@dataclass(frozen=True)
class Caller:
    """Who a request counts against: a channel's end user, a channel itself, or an address."""

    channel: str | None
    end_user: str | None
    address: str

    @property
    def key(self) -> str:
        if self.channel is not None and self.end_user is not None:
            return f"end-user\0{self.channel}\0{self.end_user}"
        if self.channel is not None:
            return f"channel\0{self.channel}"
        return f"address\0{self.address}"

    @property
    def per_end_user(self) -> bool:
        """Limited as one resident (an address, or an end user a channel names)."""
        return self.channel is None or self.end_user is not None


def address_key(host: str) -> str:
    """The address a limit counts: an IPv4 address as it is, an IPv6 one by its /64 (one
    subscriber's network: a single home or phone is given a whole /64, and could otherwise
    take a fresh address for every request)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_address(request: Request) -> str:
    """The TCP peer as the server saw it, as a limit counts it (``address_key``). Behind a
    proxy, the server's proxy-headers setting decides whether that is the proxy or the
    client it forwards."""
    return address_key(request.client.host) if request.client else "unknown"


class EndUsers:
    """Tells who a request is for: ``X-End-User`` only from a holder of a credential."""

    def __init__(self, credentials: ApiKeys | None = None, *, trust_end_user: bool = True) -> None:
        self.credentials = credentials
        self.trust_end_user = trust_end_user

    def of(self, request: Request) -> Caller:
        address = client_address(request)
        presented = request.headers.get("x-api-key")
        holder = self.credentials.department(presented) if self.credentials else None
        if holder is None:
            return Caller(None, None, address)
        if not self.trust_end_user:
            return Caller(holder, None, address)
        named = (request.headers.get(END_USER_HEADER) or "").strip()[:MAX_END_USER]
        return Caller(holder, named or None, address)


Check = Callable[[Request], Awaitable[None]]


@dataclass
class RouteLimit:
    """One limit on some routes: callers per end user (or address) get ``limits``; a
    credential that names no end user gets ``per_credential`` (unlimited when None)."""

    name: str
    limits: Limits | None
    per_credential: Limits | None = None
    what: str = "requests"


class RouteLimits:
    """A FastAPI dependency for a whole router (``include_router(dependencies=[...])``)
    that limits the routes named by (method, path template) and lets every other through;
    the 429 is an ``ApiError``, so it passes through the metrics and headers every answer
    gets."""

    def __init__(
        self,
        routes: Mapping[tuple[str, str], RouteLimit],
        *,
        end_users: EndUsers,
        metrics: RateLimitMetrics,
    ) -> None:
        self.routes = dict(routes)
        self.end_users = end_users
        self.metrics = metrics

    async def __call__(self, request: Request) -> None:
        route = request.scope.get("route")
        limit = self.routes.get((request.method, str(getattr(route, "path", ""))))
        if limit is None:
            return
        caller = self.end_users.of(request)
        limits = limit.limits if caller.per_end_user else limit.per_credential
        if limits is None:
            return
        decision = limits.take(f"{limit.name}\0{caller.key}")
        if not decision.allowed:
            self.metrics.count(limit.name)
            raise too_many("client" if caller.per_end_user else "key", decision, limit.what)


def phone_digest(key: bytes, phone: str) -> str | None:
    """A keyed hash (HMAC-SHA256) of a phone number's digits, as the notifier's daily cap
    and routing's 반복민원 key them: 010-1234-5678 and 01012345678 are one number, and
    without the key nobody can test a number against what is kept. None without digits."""
    digits = "".join(c for c in phone if c.isdigit())
    if not digits:
        return None
    return hmac.new(key, f"tel:{digits}".encode(), hashlib.sha256).hexdigest()
