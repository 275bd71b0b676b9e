"""Abuse limits at intake's door (issue 11 §11, §12): a script must not file thousands of
complaints, nor make the district message a victim's phone thousands of times.

- **Per end user** (``FILING``): filings per minute and per hour from one resident — the
  client address, or the end user a channel with a valid credential names in
  ``X-End-User`` (``services.ratelimit.EndUsers``). A credential naming no end user is
  limited as a whole, more generously. Counted in each process's memory.
- **Per phone number per day** (``PhoneLimit``): filings naming one phone in the district's
  day, however they arrive over HTTP (the API and Open311). Counted in MongoDB under a
  keyed hash of the number (``SubmissionStore.count_phones``, group-committed: one write
  and one read per batch of filings), so the count holds across restarts and replicas;
  the key is never the number.
- **Photo uploads** (``PHOTOS``): per end user per minute, as filings (each is up to 10 MB
  into GridFS).
- **Similar-complaints lookups** (``SIMILAR``): per end user per minute, as filings, on a
  budget of their own (each costs tracker calls; a lookup before filing spends no filing).
- **Resident actions** (``RESIDENT_ACTIONS``): 보완 답변, 취하, 재민원, 정정, 만족도 and the
  contact code (enter, re-send) per end user per minute and per hour, as filings count end
  users; and per complaint (``PerComplaint``, ``COMPLAINT_ACTIONS``), so one complaint
  cannot be hammered from many addresses (each try of a token costs a database read, each
  accepted action a command routing must refuse or apply).
- **Per department key** (``COMMANDS``): a department's commands per minute.
- **Open311** (``Open311Limits``): POSTs per (app, the end user it names), or per app; its
  tracker-reading GETs per client address (``OPEN311_READS``); refusals in GeoReport's shape.

Filings over Kafka (``complaint.submissions``) come from channels the district runs and
are not limited here.
"""

import logging
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from fastapi import Request, Response

from intake.open311.render import Format, Open311Error, error_answer
from schemas.events import ComplaintSubmitted
from services.batching import GroupCommit
from services.http import ApiError
from services.keys import ApiKeys
from services.ratelimit import (
    MAX_END_USER,
    Decision,
    EndUsers,
    Limits,
    Rate,
    RateLimitMetrics,
    RouteLimit,
    RouteLimits,
    phone_digest,
    too_many,
)
from services.runtime import Clock

log = logging.getLogger("sotong.intake.limits")

FILING = "filing"
PHONE = "phone"
COMMANDS = "commands"
FILE_ROUTE = ("POST", "/v1/complaints")
PHOTO_ROUTE = ("POST", "/v1/photos")
PHOTOS = "photos"
SIMILAR = "similar"
SIMILAR_ROUTE = ("POST", "/v1/complaints/similar")
COMMAND_ROUTE = ("POST", "/v1/complaints/{complaint_id}/commands")
RESIDENT_ACTIONS = "resident_actions"
COMPLAINT_ACTIONS = "complaint_actions"
RESIDENT_ROUTES = (
    ("POST", "/v1/complaints/{complaint_id}/resident-actions"),
    ("POST", "/v1/complaints/{complaint_id}/contact/confirm"),
    ("POST", "/v1/complaints/{complaint_id}/contact/code"),
)
"""What a resident does with a complaint of theirs, proven by its token: limited per end
user and per complaint."""
DISTRICT_TIME = ZoneInfo("Asia/Seoul")


class PhoneDays(Protocol):
    """Where filings per (phone digest, day) are counted: ``SubmissionStore.count_phones``."""

    async def count_phones(self, added: Mapping[str, tuple[int, datetime]]) -> dict[str, int]: ...


class PhoneCounts:
    """Concurrent filings' phone counts group-committed (``services.batching``): one upsert
    write and one read per batch, not one round trip per filing. Each filing gets its own
    place in its key's count, in arrival order. Two intake processes counting one key at
    the same moment may each read the other's increment too: at the limit both may refuse
    where one would have been enough, never both admit."""

    def __init__(self, days: PhoneDays) -> None:
        self.days = days
        self.batcher: GroupCommit[tuple[str, datetime], int] = GroupCommit(self._flush)

    async def count(self, key: str, expires_at: datetime) -> int:
        return await self.batcher.submit((key, expires_at))

    async def _flush(self, items: Sequence[tuple[str, datetime]]) -> list[int | Exception]:
        added: dict[str, tuple[int, datetime]] = {}
        for key, expires in items:
            n, _ = added.get(key, (0, expires))
            added[key] = (n + 1, expires)
        totals = await self.days.count_phones(added)
        seen: dict[str, int] = {}
        places: list[int | Exception] = []
        for key, _ in items:
            seen[key] = seen.get(key, 0) + 1
            places.append(totals[key] - added[key][0] + seen[key])
        return places


@dataclass(frozen=True)
class PhoneLimit:
    """At most ``per_day`` filings naming one phone number in the district's day."""

    per_day: int
    key: bytes
    counts: PhoneCounts
    clock: Clock
    metrics: RateLimitMetrics
    timezone: ZoneInfo = DISTRICT_TIME

    async def admit(self, phone: str | None, *, refuse: Callable[[Decision], Exception]) -> None:
        """Count a filing naming ``phone``; raise ``refuse(decision)`` past the day's limit.
        A filing without a phone is not counted."""
        digest = phone_digest(self.key, phone) if phone else None
        if digest is None:
            return
        now = self.clock().astimezone(self.timezone)
        midnight = datetime.combine(
            now.date() + timedelta(days=1), datetime.min.time(), self.timezone
        )
        counted = await self.counts.count(
            f"{digest}:{now.date().isoformat()}", midnight + timedelta(days=1)
        )
        if counted > self.per_day:
            self.metrics.count(PHONE)
            wait = (midnight - now).total_seconds()
            raise refuse(Decision(False, wait, Rate(self.per_day, 86400)))

    async def admit_http(self, phone: str | None) -> None:
        """``admit`` for intake's own API: the kit's 429."""
        await self.admit(phone, refuse=lambda d: too_many(PHONE, d, "filings with this number"))


@dataclass(frozen=True)
class Rates:
    """The limits as settings give them."""

    filings_per_minute: int
    filings_per_hour: int
    channel_filings_per_minute: int
    commands_per_minute: int
    photos_per_minute: int = 10
    similar_per_minute: int = 10
    max_keys: int = 100_000
    resident_actions_per_minute: int = 10
    resident_actions_per_hour: int = 60
    complaint_actions_per_minute: int = 20
    complaint_actions_per_hour: int = 100


class PerComplaint:
    """A router-wide dependency limiting the named routes per complaint (the path's
    ``complaint_id``), whoever calls: a token guessed or a command repeated from many
    addresses still meets one budget. A path id that is not a UUID is not counted (it is
    refused as such, and must not fill the table with keys)."""

    def __init__(
        self,
        routes: Sequence[tuple[str, str]],
        limits: Limits,
        *,
        metrics: RateLimitMetrics,
        name: str = COMPLAINT_ACTIONS,
    ) -> None:
        self.routes = frozenset(routes)
        self.limits = limits
        self.metrics = metrics
        self.name = name

    async def __call__(self, request: Request) -> None:
        route = request.scope.get("route")
        if (request.method, str(getattr(route, "path", ""))) not in self.routes:
            return
        try:
            complaint = uuid.UUID(str(request.path_params.get("complaint_id", "")))
        except ValueError:
            return
        decision = self.limits.take(str(complaint))
        if not decision.allowed:
            self.metrics.count(self.name)
            raise too_many("complaint", decision, "actions on this complaint")


def route_limits(
    rates: Rates,
    *,
    channels: ApiKeys,
    departments: ApiKeys,
    metrics: RateLimitMetrics,
    clock: Callable[[], float] | None = None,
) -> list[RouteLimits | PerComplaint]:
    """The router-wide dependencies limiting filings and resident actions per end user,
    resident actions per complaint and commands per key."""
    timing = {"clock": clock} if clock is not None else {}
    filing = RouteLimit(
        FILING,
        Limits.of(
            [Rate(rates.filings_per_minute, 60), Rate(rates.filings_per_hour, 3600)],
            max_keys=rates.max_keys,
            **timing,
        ),
        per_credential=Limits.of(
            [Rate(rates.channel_filings_per_minute, 60)], max_keys=64, **timing
        ),
        what="filings",
    )
    commands = RouteLimit(
        COMMANDS,
        None,  # a command without a department key is refused (401) before anything else
        per_credential=Limits.of([Rate(rates.commands_per_minute, 60)], max_keys=1024, **timing),
        what="commands",
    )
    photos = RouteLimit(
        PHOTOS,
        Limits.of([Rate(rates.photos_per_minute, 60)], max_keys=rates.max_keys, **timing),
        per_credential=Limits.of(
            [Rate(rates.channel_filings_per_minute, 60)], max_keys=64, **timing
        ),
        what="photo uploads",
    )
    similar = RouteLimit(
        SIMILAR,
        Limits.of([Rate(rates.similar_per_minute, 60)], max_keys=rates.max_keys, **timing),
        per_credential=Limits.of(
            [Rate(rates.channel_filings_per_minute, 60)], max_keys=64, **timing
        ),
        what="lookups",
    )
    resident = RouteLimit(
        RESIDENT_ACTIONS,
        Limits.of(
            [
                Rate(rates.resident_actions_per_minute, 60),
                Rate(rates.resident_actions_per_hour, 3600),
            ],
            max_keys=rates.max_keys,
            **timing,
        ),
        per_credential=Limits.of(
            [Rate(rates.channel_filings_per_minute, 60)], max_keys=64, **timing
        ),
        what="resident actions",
    )
    per_complaint = Limits.of(
        [
            Rate(rates.complaint_actions_per_minute, 60),
            Rate(rates.complaint_actions_per_hour, 3600),
        ],
        max_keys=rates.max_keys,
        **timing,
    )
    return [
        RouteLimits(
            {FILE_ROUTE: filing, PHOTO_ROUTE: photos, SIMILAR_ROUTE: similar}
            | dict.fromkeys(RESIDENT_ROUTES, resident),
            end_users=EndUsers(channels),
            metrics=metrics,
        ),
        PerComplaint(RESIDENT_ROUTES, per_complaint, metrics=metrics),
        RouteLimits(
            {COMMAND_ROUTE: commands},
            end_users=EndUsers(departments, trust_end_user=False),
            metrics=metrics,
        ),
    ]


@dataclass(frozen=True)
class Open311Limits:
    """Open311 POSTs: an app authenticates with its ``api_key`` (in the form), so the end
    user it names in X-End-User is trusted and limited as a resident; an app naming none is
    limited as a whole. Then the phone's daily count, as every HTTP filing."""

    per_end_user: Limits
    per_app: Limits
    phone: PhoneLimit
    metrics: RateLimitMetrics

    async def admit(self, app: str, end_user: str | None, submission: ComplaintSubmitted) -> None:
        named = (end_user or "").strip()[:MAX_END_USER]
        if named:
            limited, decision = "client", self.per_end_user.take(f"{app}\0{named}")
        else:
            limited, decision = "key", self.per_app.take(app)
        if not decision.allowed:
            self.metrics.count(FILING)
            raise open311_refusal(limited, decision, "filings")
        await self.phone.admit(
            submission.resident.phone,
            refuse=lambda d: open311_refusal(PHONE, d, "filings with this number"),
        )


def open311_refusal(limited: str, decision: Decision, what: str) -> Open311Error:
    """The kit's 429, in the GeoReport error shape."""
    refused = too_many(limited, decision, what)
    return Open311Error(429, refused.message, refused.headers)


def open311_limits(rates: Rates, phone: PhoneLimit, metrics: RateLimitMetrics) -> Open311Limits:
    return Open311Limits(
        per_end_user=Limits.of(
            [Rate(rates.filings_per_minute, 60), Rate(rates.filings_per_hour, 3600)],
            max_keys=rates.max_keys,
        ),
        per_app=Limits.of([Rate(rates.channel_filings_per_minute, 60)], max_keys=1024),
        phone=phone,
        metrics=metrics,
    )


OPEN311_READS = (
    "/open311/v2/requests.{extension}",
    "/open311/v2/requests/{service_request_id}.{extension}",
    "/open311/v2/tokens/{token}.{extension}",
    "/open311/v2/servicerequestupdates.{extension}",
)
"""Open311's public GETs that read the tracker: each costs a tracker call, so limited per
client (an address; Open311 GETs carry no credential)."""


def open311_read_limits(per_minute: int, max_keys: int, metrics: RateLimitMetrics) -> RouteLimits:
    reads = RouteLimit("open311_reads", Limits.of([Rate(per_minute, 60)], max_keys=max_keys))
    return RouteLimits(
        {("GET", path): reads for path in OPEN311_READS}, end_users=EndUsers(None), metrics=metrics
    )


def open311_answer(request: Request, refused: ApiError) -> Response:
    """A refusal on an Open311 path in GeoReport's error shape, in the format its extension
    names (``.xml`` or JSON), with the refusal's headers (a 429's Retry-After)."""
    extension = request.url.path.rsplit(".", 1)[-1]
    fmt = Format.XML if extension == Format.XML.value else Format.JSON
    return error_answer(Open311Error(refused.status, refused.message, refused.headers), fmt)


def hash_key(secret: bytes | None) -> bytes:
    """The phone counts' key; without one configured, a key of this process's own (the
    counts then start again on every start, and each replica counts alone: a warning)."""
    if secret:
        return secret
    log.warning(
        "SOTONG_INTAKE_PHONE_HASH_KEY is not set: filings per phone number are counted under "
        "a key of this process, so the count starts again when it restarts"
    )
    return secrets.token_bytes(32)
