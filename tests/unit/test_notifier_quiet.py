"""Quiet hours in Seoul time, across midnight and within a day."""

from datetime import UTC, datetime

import pytest

from notifier.quiet import QuietHours

SEOUL_NIGHT = QuietHours.parse("21:00-08:00")


def kst(hour: int, minute: int = 0, day: int = 25) -> datetime:
    # Seoul is UTC+9 all year: 21:00 KST on the 25th is 12:00 UTC on the 25th.
    return datetime(2026, 11, day, hour, minute, tzinfo=SEOUL_NIGHT.zone).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "release"),
    [
        (kst(20, 59), None),
        (kst(21, 0), kst(8, 0, day=26)),
        (kst(23, 10), kst(8, 0, day=26)),
        (kst(0, 5), kst(8, 0)),
        (kst(7, 59), kst(8, 0)),
        (kst(8, 0), None),
        (kst(12, 0), None),
    ],
)
def test_overnight_quiet_hours(now: datetime, release: datetime | None) -> None:
    assert SEOUL_NIGHT.release_at(now) == release


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours.parse("12:00-13:00")
    assert lunch.release_at(kst(12, 30)) == kst(13, 0)
    assert lunch.release_at(kst(13, 0)) is None
    assert lunch.release_at(kst(23, 0)) is None


@pytest.mark.parametrize("spec", ["9pm-8am", "21:00", "25:00-08:00", "08:00-08:00"])
def test_a_malformed_period_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="quiet hours"):
        QuietHours.parse(spec)
