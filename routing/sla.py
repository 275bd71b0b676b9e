"""Which deadline thresholds a complaint has crossed: pure, from its times and the calendar.

Thresholds are counted the way the period is (working time), so "75% used" means 75%
of the working hours between receipt and the due time. Each alert has a key that names
the threshold and the clock it belongs to: a new due time (extension, reopening) is a
new clock with its own alerts; the same clock never alerts twice.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from routing.deadlines import WorkingCalendar
from schemas.events import AlertKind

WARNING_SHARE = 0.75
PROGRESS_NOTICE_AFTER = timedelta(days=30)


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    key: str


def next_alert_at(
    *, received_at: datetime, due_at: datetime, calendar: WorkingCalendar, sent: Collection[str]
) -> datetime | None:
    """When :func:`crossed` will next have something to say, so the watcher reads only the
    complaints whose time has come (an indexed query), never every open one. Once the due
    time has passed the warning is moot, as in :func:`crossed`."""
    clock = due_at.isoformat()
    times = []
    if f"{AlertKind.BREACH.value}@{clock}" not in sent:
        times.append(due_at)
        period = calendar.working_hours_between(received_at, due_at)
        if period > 0 and f"{AlertKind.WARNING.value}@{clock}" not in sent:
            times.append(calendar.add_working_hours(received_at, WARNING_SHARE * period))
    if f"{AlertKind.PROGRESS_NOTICE.value}@{received_at.isoformat()}" not in sent:
        times.append(received_at + PROGRESS_NOTICE_AFTER)
    return min(times, default=None)


def crossed(
    *,
    now: datetime,
    received_at: datetime,
    due_at: datetime,
    calendar: WorkingCalendar,
    sent: Collection[str],
) -> list[Alert]:
    clock = due_at.isoformat()
    alerts = []
    if now >= due_at:
        alerts.append(Alert(AlertKind.BREACH, f"{AlertKind.BREACH.value}@{clock}"))
    else:
        period = calendar.working_hours_between(received_at, due_at)
        used = calendar.working_hours_between(received_at, now)
        if period > 0 and used >= WARNING_SHARE * period:
            alerts.append(Alert(AlertKind.WARNING, f"{AlertKind.WARNING.value}@{clock}"))
    if now - received_at >= PROGRESS_NOTICE_AFTER:
        key = f"{AlertKind.PROGRESS_NOTICE.value}@{received_at.isoformat()}"
        alerts.append(Alert(AlertKind.PROGRESS_NOTICE, key))
    return [a for a in alerts if a.key not in sent]
