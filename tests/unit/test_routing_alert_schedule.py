"""The deadline watcher reads only complaints whose next threshold has come: the time kept
with each complaint (``next_alert_at``) agrees with what ``crossed`` says at every moment."""

from datetime import datetime, timedelta

from routing.deadlines import KST, calendar
from routing.sla import crossed, next_alert_at
from schemas.commands import ResolveComplaint
from schemas.events import AlertKind
from tests.unit.test_routing_handlers import DEPT, Harness, filed, harness

RECEIVED = datetime(2026, 11, 25, 10, 0, tzinfo=KST)
DUE = datetime(2026, 12, 3, 18, 0, tzinfo=KST)
CALENDAR = calendar()


def walk(sent: set[str]) -> list[tuple[datetime, AlertKind]]:
    """Step through time every 15 minutes as a watcher would, for 40 days: when the kept
    time says to look, look; record what was crossed and mark it sent."""
    seen = []
    now = RECEIVED
    while now < RECEIVED + timedelta(days=40):
        due = next_alert_at(received_at=RECEIVED, due_at=DUE, calendar=CALENDAR, sent=sent)
        found = crossed(now=now, received_at=RECEIVED, due_at=DUE, calendar=CALENDAR, sent=sent)
        if due is None or now < due:
            assert found == [], f"crossed at {now} before the kept time {due}"
        for alert in found:
            seen.append((now, alert.kind))
            sent.add(alert.key)
        now += timedelta(minutes=15)
    return seen


def test_the_kept_time_is_never_late_and_every_threshold_is_seen() -> None:
    seen = walk(set())
    assert [kind for _, kind in seen] == [
        AlertKind.WARNING,
        AlertKind.BREACH,
        AlertKind.PROGRESS_NOTICE,
    ]
    assert seen[0][0] == datetime(2026, 12, 2, 11, 15, tzinfo=KST)  # 41.25 of 55 working h
    assert seen[1][0] == DUE
    assert (
        next_alert_at(
            received_at=RECEIVED, due_at=DUE, calendar=CALENDAR, sent={k for k in _keys()}
        )
        is None
    )


def _keys() -> list[str]:
    clock = DUE.isoformat()
    return [
        f"{AlertKind.WARNING.value}@{clock}",
        f"{AlertKind.BREACH.value}@{clock}",
        f"{AlertKind.PROGRESS_NOTICE.value}@{RECEIVED.isoformat()}",
    ]


def test_after_the_due_time_the_warning_is_not_waited_for() -> None:
    breach = {f"{AlertKind.BREACH.value}@{DUE.isoformat()}"}
    assert next_alert_at(
        received_at=RECEIVED, due_at=DUE, calendar=CALENDAR, sent=breach
    ) == RECEIVED + timedelta(days=30)


async def test_a_complaint_is_scheduled_when_decided_and_unscheduled_when_its_clock_stops() -> None:
    h: Harness = harness()
    await h.routing.on_filed(filed())
    stored = await h.store.get("c1")
    assert stored is not None
    warning = datetime(2026, 12, 2, 11, 14, 45, tzinfo=KST)  # filed 09:59 KST: 75% of 55 h
    assert stored.next_alert_at == warning
    assert await h.store.alerts_due(warning - timedelta(seconds=1)) == []
    h.clock.now = warning
    assert [r.complaint_id for r in await h.store.alerts_due(h.clock.now)] == ["c1"]
    assert await h.routing.scan_deadlines() == 1
    stored = await h.store.get("c1")
    assert stored is not None
    assert stored.next_alert_at == DUE
    assert await h.store.alerts_due(h.clock.now) == []
    await h.routing.on_command(ResolveComplaint(actor=DEPT, complaint_id="c1", note="수거함"))
    resolved = await h.store.get("c1")
    assert resolved is not None
    assert resolved.next_alert_at is None
