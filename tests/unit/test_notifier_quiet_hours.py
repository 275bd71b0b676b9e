"""Quiet hours with the in-memory store: held, not dropped; sent when they end; results at once."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.outbox import OutboxChannel
from notifier.quiet import QuietHours
from schemas import ComplaintStatusChanged
from schemas.events import HandlerRef, Outcome
from tests.fakes.notifier import InMemoryNotifierStore
from tests.unit.test_notifier_delivery import Fake, build, filed, new_id

NIGHT = QuietHours.parse("21:00-08:00", "Asia/Seoul")
AT_23 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 23:00 in Seoul
AT_0759 = datetime(2026, 11, 25, 22, 59, tzinfo=UTC)  # 07:59 in Seoul, the next day
AT_0800 = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # 08:00 in Seoul
HANDLER = HandlerRef(handler_id="h-1", name="이지우", office_phone="032-560-5001")


@pytest.fixture
def night(tmp_path: Path) -> Fake:
    h = build(InMemoryNotifierStore(), OutboxChannel(tmp_path / "outbox.jsonl"), quiet=NIGHT)
    h.clock.now = AT_23
    return h


def held(h: Fake, cid: str) -> int:
    """How many messages are held for a complaint, whoever they are for."""
    return sum(1 for d in h.store.deferred.values() if d.complaint_id == cid)


def step(
    cid: str, sequence: int, to_state: str, trigger: str, **fields: object
) -> ComplaintStatusChanged:
    return ComplaintStatusChanged.model_validate(
        {
            "complaint_id": cid,
            "receipt_number": "251125-000042",
            "sequence": sequence,
            "from_state": None,
            "to_state": to_state,
            "trigger": trigger,
            "actor": "routing",
            "department": "resource-circulation",
            "department_name": "자원순환과",
            "handler": HANDLER,
            "due_at": AT_23 + timedelta(days=7),
            **fields,
        }
    )


async def test_a_step_at_night_waits_until_eight_and_is_sent_once(night: Fake) -> None:
    cid = new_id()
    await night.delivery.remember_recipient(filed(cid))
    event = step(cid, 4, "site_check", "start_site_check")
    await night.delivery.notify(event)
    await night.delivery.notify(event)  # redelivered while held

    assert night.lines() == []
    assert night.recorder.outcomes == [], "nothing happened yet, so nothing is reported"
    assert held(night, cid) == 1
    assert night.metric("sotong_notifications_deferred_total") == 1

    night.clock.now = AT_0759
    assert await night.delivery.release_due() == 0
    assert night.lines() == []

    night.clock.now = AT_0800
    assert await night.delivery.release_due() == 1
    [line] = night.lines()
    assert line["state"] == "site_check"
    assert [o.outcome for o in night.recorder.outcomes] == [Outcome.SENT]
    assert held(night, cid) == 0
    assert await night.delivery.release_due() == 0
    await night.delivery.notify(event)  # a late redelivery after the release
    assert len(night.lines()) == 1


async def test_a_result_goes_at_once_after_what_was_held_for_the_same_person(
    night: Fake,
) -> None:
    cid = new_id()
    await night.delivery.remember_recipient(filed(cid))
    await night.delivery.notify(step(cid, 4, "site_check", "start_site_check"))
    await night.delivery.notify(step(cid, 5, "reviewing", "start_review"))
    await night.delivery.notify(step(cid, 6, "resolved", "resolve", note="수거 완료"))

    assert [line["state"] for line in night.lines()] == ["site_check", "reviewing", "resolved"]
    assert len(night.store.deferred) == 0
    night.clock.now = AT_0800
    assert await night.delivery.release_due() == 0
    assert len(night.lines()) == 3


async def test_staff_are_not_woken_either(night: Fake) -> None:
    cid = new_id()
    await night.delivery.remember_recipient(filed(cid))
    await night.delivery.notify(step(cid, 3, "handler_assigned", "assign_handler"))
    staff = night.outbox.staff_path
    assert night.lines(staff) == []
    night.clock.now = AT_0800
    assert await night.delivery.release_due() == 2
    [line] = night.lines(staff)
    assert (line["recipient"], line["template_code"]) == ("handler", "SOTONG_STAFF_ASSIGNED")
    assert [line["state"] for line in night.lines()] == ["handler_assigned"]


async def test_during_the_day_nothing_is_held(night: Fake) -> None:
    night.clock.now = AT_0800 + timedelta(hours=4)
    cid = new_id()
    await night.delivery.remember_recipient(filed(cid))
    await night.delivery.notify(step(cid, 4, "site_check", "start_site_check"))
    assert len(night.lines()) == 1
    assert night.metric("sotong_notifications_deferred_total") == 0
