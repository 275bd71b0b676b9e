"""Legal processing deadlines (민원 처리에 관한 법률 시행령 제19조), pure and testable.

- Periods of five days or less count in working hours from the moment of receipt, a day
  being eight working hours (09:00–18:00 Asia/Seoul without 12:00–13:00).
- Periods of six days or more count in working days, the day of receipt included
  (초일 산입), and end at 18:00 of the last one.
- Saturdays, Sundays and public holidays (substitute holidays included, from the
  ``holidays`` package) are not working days; temporary holidays can be added.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from schemas.catalogue import ComplaintKind

KST = ZoneInfo("Asia/Seoul")
DAY_START, LUNCH_START, LUNCH_END, DAY_END = time(9), time(12), time(13), time(18)
HOURS_PER_DAY = 8
HOUR_COUNTED_MAX_DAYS = 5

KINDS: dict[str, tuple[int, Literal["h", "d"]]] = {
    ComplaintKind.OTHER: (3, "h"),  # 기타민원: 즉시 → 3 working hours
    ComplaintKind.INQUIRY: (7, "d"),  # 질의민원 (제도·절차)
    ComplaintKind.INQUIRY_LAW: (14, "d"),  # 질의민원 (법령)
    ComplaintKind.PROPOSAL: (14, "d"),  # 건의민원
    ComplaintKind.GRIEVANCE: (7, "d"),  # 고충민원
}
"""The legal period of each kind the contract names (``schemas.catalogue.ComplaintKind``)."""
_PERIOD = re.compile(r"^(\d{1,3})([hd])$")


@dataclass(frozen=True)
class Period:
    amount: int
    unit: Literal["h", "d"]

    @classmethod
    def parse(cls, kind: str) -> "Period":
        """A kind name (``grievance``…) or a period like ``3h``, ``5d``, ``20d``."""
        if kind in KINDS:
            amount, unit = KINDS[kind]
            return cls(amount, unit)
        match = _PERIOD.match(kind.strip())
        if not match or int(match.group(1)) == 0:
            names = ", ".join(KINDS)
            raise ValueError(f"unknown period {kind!r}: use one of {names} or e.g. 3h, 5d, 20d")
        return cls(int(match.group(1)), "h" if match.group(2) == "h" else "d")

    @property
    def working_hours(self) -> int | None:
        """The period in working hours when it is counted in hours, else None."""
        if self.unit == "h":
            return self.amount
        return self.amount * HOURS_PER_DAY if self.amount <= HOUR_COUNTED_MAX_DAYS else None


@dataclass(frozen=True)
class WorkingCalendar:
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    @cached_property
    def _public(self) -> holidays.HolidayBase:
        return holidays.country_holidays("KR")

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._public and day not in self.extra_holidays

    def next_working_instant(self, moment: datetime) -> datetime:
        """The moment itself if the office is working then, else when it next starts."""
        t = moment.astimezone(KST)
        while True:
            if not self.is_working_day(t.date()) or t.time() >= DAY_END:
                t = datetime.combine(t.date() + timedelta(days=1), DAY_START, KST)
                if not self.is_working_day(t.date()) or t.time() >= DAY_END:
                    continue
            if t.time() < DAY_START:
                t = datetime.combine(t.date(), DAY_START, KST)
            elif LUNCH_START <= t.time() < LUNCH_END:
                t = datetime.combine(t.date(), LUNCH_END, KST)
            if self.is_working_day(t.date()):
                return t

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        remaining = timedelta(hours=hours)
        t = self.next_working_instant(start)
        while True:
            end_of_block = datetime.combine(
                t.date(), LUNCH_START if t.time() < LUNCH_START else DAY_END, KST
            )
            available = end_of_block - t
            if remaining <= available:
                return t + remaining
            remaining -= available
            t = self.next_working_instant(end_of_block)

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Working hours elapsed from start to end (0 if end is not after start)."""
        total = timedelta()
        t = self.next_working_instant(start)
        end = end.astimezone(KST)
        while t < end:
            end_of_block = datetime.combine(
                t.date(), LUNCH_START if t.time() < LUNCH_START else DAY_END, KST
            )
            total += min(end_of_block, end) - t
            t = self.next_working_instant(end_of_block)
        return total.total_seconds() / 3600

    def nth_working_day(self, first: date, n: int) -> date:
        day, counted = first, 0
        while True:
            if self.is_working_day(day):
                counted += 1
                if counted == n:
                    return day
            day += timedelta(days=1)

    def due(self, received_at: datetime, period: Period) -> datetime:
        hours = period.working_hours
        if hours is not None:
            return self.add_working_hours(received_at, hours)
        last = self.nth_working_day(received_at.astimezone(KST).date(), period.amount)
        return datetime.combine(last, DAY_END, KST)


def calendar(extra: Iterable[date] = ()) -> WorkingCalendar:
    return WorkingCalendar(frozenset(extra))
