from datetime import datetime

from routing.deadlines import KST, calendar
from routing.sla import crossed
from schemas.events import AlertKind

RECEIVED = datetime(2026, 11, 25, 10, 0, tzinfo=KST)
DUE = datetime(2026, 12, 3, 18, 0, tzinfo=KST)


def kinds(now: datetime, sent: set[str] | None = None) -> list[AlertKind]:
    found = crossed(
        now=now, received_at=RECEIVED, due_at=DUE, calendar=calendar(), sent=sent or set()
    )
    return [a.kind for a in found]


def test_thresholds_count_working_time() -> None:
    assert kinds(datetime(2026, 11, 28, 12, 0, tzinfo=KST)) == []  # a weekend uses nothing
    assert kinds(datetime(2026, 12, 2, 11, 30, tzinfo=KST)) == [AlertKind.WARNING]
    assert kinds(DUE) == [AlertKind.BREACH]


def test_sent_keys_are_not_repeated() -> None:
    [alert] = crossed(now=DUE, received_at=RECEIVED, due_at=DUE, calendar=calendar(), sent=set())
    assert kinds(DUE, {alert.key}) == []
