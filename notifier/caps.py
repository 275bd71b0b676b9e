"""The daily cap per recipient: at most so many messages to one phone number (or e-mail
address) per day, however many complaints name it. Pure; :mod:`notifier.mongo.caps`
keeps the counts.

A script filing thousands of complaints with someone else's number would otherwise make
the district send them thousands of messages. Messages to a resident count against
their contact for the day (in the district's time zone); past the cap the message is not
sent and its outcome is ``skipped`` with :data:`OVER_CAP` (and a metric counts it). Staff
notices are not capped: their contacts come from the district's own directory.

A contact is counted under a keyed hash (HMAC-SHA256 with a secret key) of its digits or
its lower-cased address, so neither the counts' keys nor logs nor metric labels carry
the number; without the key nobody can test a number against the counts. What is
counted is the delivery id of the notice's first channel, so a redelivered or resumed
notice is not counted twice, and a fallback channel is the same message.
"""

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

OVER_CAP = "daily message cap reached for this recipient"


@dataclass(frozen=True)
class Count:
    """One contact's day: its key, and the messages counted so far."""

    key: str
    expires_at: datetime


@dataclass(frozen=True)
class DailyCap:
    limit: int
    key: bytes
    timezone: str = "Asia/Seoul"

    def key_of(self, phone: str | None, email: str | None, now: datetime) -> Count | None:
        """The day's count key of the contact a message goes to (the phone if there is
        one), or None if there is no contact."""
        if phone:
            contact = "tel:" + "".join(c for c in phone if c.isdigit())
        elif email:
            contact = "mailto:" + email.strip().lower()
        else:
            return None
        digest = hmac.new(self.key, contact.encode(), hashlib.sha256).hexdigest()
        local = now.astimezone(ZoneInfo(self.timezone))
        next_day = datetime.combine(
            local.date() + timedelta(days=1), datetime.min.time(), local.tzinfo
        )
        return Count(f"{digest}:{local.date().isoformat()}", next_day + timedelta(days=1))

    def decide(
        self,
        asks: Sequence[tuple[Count, str]],
        counted: Mapping[str, frozenset[str]],
    ) -> tuple[set[str], dict[str, list[str]]]:
        """Which of these (key, delivery id) asks, in order, go over the cap, given what
        each key counted already; and the ids newly counted per key."""
        over: set[str] = set()
        added: dict[str, list[str]] = {}
        so_far = {key: set(ids) for key, ids in counted.items()}
        for count, delivery in asks:
            seen = so_far.setdefault(count.key, set())
            if delivery in seen:
                continue
            if len(seen) >= self.limit:
                over.add(delivery)
                continue
            seen.add(delivery)
            added.setdefault(count.key, []).append(delivery)
        return over, added


class CapStore(Protocol):
    """Where the day's counts are kept."""

    async def counted(self, keys: Sequence[str]) -> dict[str, frozenset[str]]:
        """The delivery ids counted under these keys, in one read."""
        ...

    async def count_many(
        self, added: Mapping[str, Sequence[str]], expires: Mapping[str, datetime]
    ) -> None:
        """Count these delivery ids under their keys, in one write; counting one again
        changes nothing. A key's count goes away after ``expires``."""
        ...
