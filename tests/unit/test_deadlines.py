"""Legal deadlines: working hours for short periods, working days (초일 산입) for long ones."""

from datetime import date, datetime

import pytest

from routing.deadlines import KST, Period, calendar


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("kind", "received", "due"),
    [
        # 3 working hours, crossing the weekend: 1.5 h on Friday, 1.5 h on Monday.
        ("other", "2026-11-27T16:30:00+09:00", "2026-11-30T10:30:00+09:00"),
        # received at lunch: the clock starts at 13:00.
        ("3h", "2026-11-25T12:20:00+09:00", "2026-11-25T16:00:00+09:00"),
        # received before the day starts.
        ("3h", "2026-11-25T07:00:00+09:00", "2026-11-25T12:00:00+09:00"),
        # crossing lunch: 2 h before it, 1 h after.
        ("3h", "2026-11-25T10:00:00+09:00", "2026-11-25T14:00:00+09:00"),
        # received on a Saturday: nothing counts until Monday 09:00.
        ("3h", "2026-11-28T10:00:00+09:00", "2026-11-30T12:00:00+09:00"),
        # 5 days = 40 working hours from the moment of receipt.
        ("5d", "2026-11-25T10:00:00+09:00", "2026-12-02T10:00:00+09:00"),
        # 7 days counted in working days, the day of receipt being the first.
        ("grievance", "2026-11-25T10:00:00+09:00", "2026-12-03T18:00:00+09:00"),
        ("inquiry", "2026-11-25T17:59:00+09:00", "2026-12-03T18:00:00+09:00"),
        # received on Sunday: the first day counted is Monday.
        ("7d", "2026-11-29T10:00:00+09:00", "2026-12-08T18:00:00+09:00"),
        # Chuseok 2026 (Sep 24-26) and 개천절's substitute holiday (Oct 5) are skipped.
        ("7d", "2026-09-23T10:00:00+09:00", "2026-10-06T18:00:00+09:00"),
        # 14 days over Christmas and New Year's Day.
        ("proposal", "2026-12-21T09:00:00+09:00", "2027-01-11T18:00:00+09:00"),
        # received in UTC: the Korean date decides.
        ("grievance", "2026-11-24T16:00:00+00:00", "2026-12-03T18:00:00+09:00"),
    ],
)
def test_due_times(kind: str, received: str, due: str) -> None:
    assert calendar().due(at(received), Period.parse(kind)) == at(due)


def test_a_temporary_holiday_is_skipped() -> None:
    extra = calendar([date(2026, 11, 26)])
    assert extra.due(at("2026-11-25T10:00:00+09:00"), Period.parse("grievance")) == at(
        "2026-12-04T18:00:00+09:00"
    )


def test_working_hours_between_is_the_inverse_of_adding() -> None:
    cal = calendar()
    start = at("2026-11-27T16:30:00+09:00")
    for hours in (0.5, 3, 8, 17.25, 40):
        assert cal.working_hours_between(
            start, cal.add_working_hours(start, hours)
        ) == pytest.approx(hours)


def test_due_times_are_korean_time() -> None:
    due = calendar().due(at("2026-11-25T10:00:00+09:00"), Period.parse("14d"))
    assert due.tzinfo == KST
    assert due.isoformat().endswith("+09:00")


@pytest.mark.parametrize("bad", ["", "soon", "0d", "3w", "-1d"])
def test_unknown_periods_are_refused_with_the_choices(bad: str) -> None:
    with pytest.raises(ValueError, match="grievance"):
        Period.parse(bad)
