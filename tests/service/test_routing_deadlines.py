"""Deadline alerts: 75% warning, breach, 30-day progress notice, each once, across restarts."""

from datetime import datetime, timedelta

from routing.deadlines import KST
from routing.handlers import Routing
from schemas import ComplaintDeadlineAlert, topics
from schemas.commands import ExtendDeadline, RequestInfo
from tests.fakes.routing import RecordingPublish, SettableClock
from tests.service.test_routing_lifecycle import new, setup
from tests.service.test_routing_service import DEPT

__all__ = ["setup"]


def alerts(recorder: RecordingPublish) -> list[tuple[str, str]]:
    return [
        (e.complaint_id, e.kind.value)
        for t, e in recorder.sent
        if t == topics.SLA and isinstance(e, ComplaintDeadlineAlert)
    ]


async def test_warning_then_breach_each_once(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "d1", clock)  # Wed 2026-11-25 10:00, due Thu 12-03 18:00 (55 working h)
    assert await service.scan_deadlines() == 0
    clock.now = datetime(2026, 12, 2, 11, 0, tzinfo=KST)  # 41 h used: under 75% (41.25 h)
    assert await service.scan_deadlines() == 0
    clock.now = datetime(2026, 12, 2, 11, 30, tzinfo=KST)  # 41.5 h used: over 75%
    assert await service.scan_deadlines() == 1
    assert await service.scan_deadlines() == 0
    clock.now = datetime(2026, 12, 3, 18, 0, tzinfo=KST)
    assert await service.scan_deadlines() == 1
    assert alerts(recorder) == [("d1", "deadline_warning"), ("d1", "deadline_breached")]
    breach = recorder.sent[-1][1]
    assert isinstance(breach, ComplaintDeadlineAlert)
    assert breach.supervisor is not None
    assert breach.handler is not None


async def test_a_restarted_watcher_does_not_repeat_itself(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "d2", clock)
    clock.now = datetime(2026, 12, 4, 9, 0, tzinfo=KST)
    assert await service.scan_deadlines() == 1
    restarted = Routing(
        store=service.store,
        catalogue=service.catalogue,
        lifecycle=service.lifecycle,
        texts=service.texts,
        publish=recorder,
        metrics=service.metrics,
        calendar=service.calendar,
        classifier=service.classifier,
        on_duplicate=lambda _: None,
        clock=clock,
    )
    assert await restarted.scan_deadlines() == 0
    assert alerts(recorder) == [("d2", "deadline_breached")]


async def test_an_extension_is_a_new_clock_and_a_paused_clock_is_quiet(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "d3", clock)
    await new(service, "d4", clock)
    await service.on_command(RequestInfo(actor=DEPT, complaint_id="d4", note="사진이 필요해요"))
    clock.now = datetime(2026, 12, 2, 11, 30, tzinfo=KST)
    assert await service.scan_deadlines() == 1  # d3 warned; d4's clock is paused
    await service.on_command(
        ExtendDeadline(
            actor=DEPT,
            complaint_id="d3",
            new_due_at=datetime(2026, 12, 10, 18, 0, tzinfo=KST),
            note="조사",
        )
    )
    clock.now = datetime(2026, 12, 9, 10, 0, tzinfo=KST)
    assert await service.scan_deadlines() == 1  # the new clock's own warning
    assert alerts(recorder) == [("d3", "deadline_warning"), ("d3", "deadline_warning")]


async def test_thirty_days_open_owes_a_progress_notice(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "d5", clock)
    await service.on_command(
        ExtendDeadline(
            actor=DEPT,
            complaint_id="d5",
            new_due_at=datetime(2026, 12, 14, 18, 0, tzinfo=KST),
            note="조사",
        )
    )
    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=KST) + timedelta(days=30)
    await service.scan_deadlines()
    await service.scan_deadlines()
    assert alerts(recorder).count(("d5", "progress_notice")) == 1
