"""Confirmed contacts at the notifier (issue 11 §11): the code goes at once (quiet hours
or not, counted against the daily cap, once per code); every other message to the
resident of an anonymous web filing waits until ContactConfirmed, then goes in order,
once; held messages of a phone never confirmed are dropped and counted after a while."""

from datetime import timedelta
from pathlib import Path

import pytest

from notifier.caps import OVER_CAP, DailyCap
from notifier.contacts import CodeSender, ContactMetrics, Contacts, awaits_confirmation
from notifier.outbox import OutboxChannel
from notifier.quiet import QuietHours
from notifier.recipients import Recipient
from schemas import ComplaintFiled, ComplaintStatusChanged
from schemas.events import ContactCodeIssued, ContactConfirmed, Outcome
from tests.fakes.notifier import InMemoryConfirmations, InMemoryNotifierStore
from tests.unit.test_notifier_delivery import NOW, PHONE, Fake, assigned, build, filed, new_id

HOLD = timedelta(days=7)


def with_contacts(h: Fake) -> InMemoryConfirmations:
    """The harness's Delivery with contacts, as notifier/app.py builds it."""
    confirmations = InMemoryConfirmations()
    d = h.delivery
    metrics = ContactMetrics(h.registry)
    d.contacts = Contacts(
        store=confirmations,
        sender=CodeSender(
            store=d.store,
            channels=d.channels,
            audience=d.audience,
            publish=d.publish,
            metrics=d.metrics,
            contact_metrics=metrics,
            clock=d.clock,
            retry=d.retry,
            cap=d.cap,
            sleep=d.sleep,
        ),
        hold=HOLD,
        metrics=metrics,
    )
    return confirmations


@pytest.fixture
def h(tmp_path: Path) -> Fake:
    harness = build(
        InMemoryNotifierStore(),
        OutboxChannel(tmp_path / "outbox.jsonl"),
        quiet=QuietHours.parse("21:00-08:00"),
        cap=DailyCap(20, b"k" * 32),
    )
    with_contacts(harness)
    return harness


def unconfirmed(cid: str) -> ComplaintFiled:
    return filed(cid).model_copy(update={"contact_unconfirmed": True})


def code(cid: str, digits: str = "482915", **fields: object) -> ContactCodeIssued:
    return ContactCodeIssued.model_validate(
        {
            "complaint_id": cid,
            "receipt_number": "251125-000042",
            "phone": PHONE,
            "code": digits,
            "occurred_at": NOW,
            "expires_at": NOW + timedelta(minutes=10),
            **fields,
        }
    )


def steps(cid: str) -> list[ComplaintStatusChanged]:
    return [
        assigned(cid, sequence=1, from_state=None, to_state="received", trigger="file"),
        assigned(cid, sequence=2),
        assigned(
            cid,
            sequence=3,
            from_state="assigned",
            to_state="resolved",
            trigger="resolve",
            note="수거했습니다.",
        ),
    ]


def test_only_an_unconfirmed_filings_resident_waits() -> None:
    waiting = Recipient("c1", "r", True, contact_unconfirmed=True)
    vouched = Recipient("c2", "r", True)
    assert awaits_confirmation(waiting, set())
    assert not awaits_confirmation(waiting, {"c1"})
    assert not awaits_confirmation(vouched, set())
    assert not awaits_confirmation(None, set())


async def test_the_code_goes_at_once_even_in_quiet_hours_and_once_per_code(h: Fake) -> None:
    h.clock.now = NOW.replace(hour=14)  # 23:00 in Seoul: quiet
    cid = new_id()
    event = code(cid, occurred_at=h.clock.now, expires_at=h.clock.now + timedelta(minutes=10))

    await h.delivery.send_codes([event])
    await h.delivery.send_codes([event])  # redelivered

    [line] = h.lines()
    assert line["template_code"] == "SOTONG_CONTACT_CODE"
    assert "인증번호는 482915입니다. 10분 안에 입력해 주시기 바랍니다." in str(line["text"])
    assert "http" not in str(line["text"])  # no link in a code message
    assert line["to"] == "010-****-6789"
    assert h.recorder.by("resident") == [("outbox", Outcome.SENT, None)]
    assert h.metric("sotong_contact_code_messages_total", outcome="sent") == 1
    [counted] = h.store.days.values()
    assert len(counted) == 1  # against the phone's daily cap


async def test_a_code_past_the_daily_cap_is_not_sent(tmp_path: Path) -> None:
    h = build(
        InMemoryNotifierStore(), OutboxChannel(tmp_path / "o.jsonl"), cap=DailyCap(2, b"k" * 32)
    )
    with_contacts(h)
    await h.delivery.send_codes([code(new_id()) for _ in range(3)])

    assert len(h.lines()) == 2
    assert [o.detail for o in h.recorder.outcomes] == [None, None, OVER_CAP]


async def test_a_code_already_expired_is_not_sent(h: Fake) -> None:
    h.clock.now = NOW + timedelta(minutes=11)
    await h.delivery.send_codes([code(new_id())])

    assert h.lines() == []
    assert h.metric("sotong_contact_code_messages_total", outcome="expired") == 1


async def test_messages_wait_for_the_code_then_go_in_order_once(h: Fake) -> None:
    cid = new_id()
    await h.delivery.remember_all([unconfirmed(cid)])
    for event in steps(cid):
        await h.delivery.notify(event)

    assert h.lines() == []  # held: not sent, not dropped
    assert len(h.store.deferred) == 3
    assert h.metric("sotong_notifications_held_for_contact_total") == 3

    await h.delivery.confirm_all([ContactConfirmed(complaint_id=cid)])
    await h.delivery.confirm_all([ContactConfirmed(complaint_id=cid)])  # again: nothing more

    assert [line["template_code"] for line in h.lines()] == [
        "SOTONG_RECEIVED",
        "SOTONG_ASSIGNED",
        "SOTONG_RESOLVED_NOTE",
    ]
    assert h.store.deferred == {}

    later = assigned(cid, sequence=4, from_state="resolved", to_state="closed", trigger="close")
    await h.delivery.notify(later)
    assert len(h.lines()) == 4  # confirmed: the next one goes as usual


async def test_a_confirmation_before_the_filing_arrives_holds_nothing(h: Fake) -> None:
    cid = new_id()
    await h.delivery.confirm_all([ContactConfirmed(complaint_id=cid)])
    await h.delivery.remember_all([unconfirmed(cid)])
    await h.delivery.notify(steps(cid)[1])

    assert [line["template_code"] for line in h.lines()] == ["SOTONG_ASSIGNED"]


async def test_held_messages_of_a_phone_never_confirmed_expire_counted(h: Fake) -> None:
    cid = new_id()
    await h.delivery.remember_all([unconfirmed(cid)])
    for event in steps(cid)[:2]:
        await h.delivery.notify(event)

    h.clock.now = NOW + HOLD - timedelta(seconds=1)
    assert await h.delivery.release_due() == 0
    h.clock.now = NOW + HOLD
    assert await h.delivery.release_due() == 2

    assert h.lines() == []
    assert h.store.deferred == {}
    assert h.metric("sotong_notifications_held_expired_total") == 2
    assert h.letters == []  # counted, not dead-lettered


async def test_a_filing_with_a_vouched_contact_is_told_at_once(h: Fake) -> None:
    cid = new_id()
    await h.delivery.remember_all([filed(cid)])
    await h.delivery.notify(steps(cid)[1])

    assert len(h.lines()) == 1
    assert h.store.deferred == {}


async def test_a_repeated_confirmation_does_not_send_what_quiet_hours_hold(h: Fake) -> None:
    cid = new_id()
    await h.delivery.remember_all([unconfirmed(cid)])
    await h.delivery.confirm_all([ContactConfirmed(complaint_id=cid)])
    h.clock.now = NOW.replace(hour=14)  # 23:00 in Seoul
    await h.delivery.notify(steps(cid)[1])  # not urgent: waits for the morning
    await h.delivery.confirm_all([ContactConfirmed(complaint_id=cid)])  # the resident again

    assert h.lines() == []
    assert len(h.store.deferred) == 1
    h.clock.now = NOW.replace(hour=23)  # 08:00 in Seoul
    assert await h.delivery.release_due() == 1
    assert [line["template_code"] for line in h.lines()] == ["SOTONG_ASSIGNED"]
