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
