"""Quiet hours: when a non-urgent message waits until morning instead of waking someone.

``21:00-08:00`` in Asia/Seoul means a message due at 23:10 goes out at 08:00 the next day,
and one due at 07:59 at 08:00 the same day. A period may also lie within one day
(``12:00-13:00``). Pure: the clock is passed in.
"""

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Self
from zoneinfo import ZoneInfo

_SPEC = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$")


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, spec: str, zone: str = "Asia/Seoul") -> Self:
        match = _SPEC.match(spec)
        if match is None:
            raise ValueError(f"quiet hours must look like 21:00-08:00, not {spec!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if (h1, m1) == (h2, m2):
            raise ValueError("quiet hours must not start and end at the same time")
        return cls(time(h1, m1), time(h2, m2), ZoneInfo(zone))

    def release_at(self, now: datetime) -> datetime | None:
        """When a message arriving at ``now`` may go out: None if at once."""
        local = now.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            quiet = self.start <= clock < self.end
        else:
            quiet = clock >= self.start or clock < self.end
        if not quiet:
            return None
        end = datetime.combine(local.date(), self.end, tzinfo=self.zone)
        if end <= local:
            end += timedelta(days=1)
        return end
