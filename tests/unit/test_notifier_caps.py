"""At most so many messages a day to one resident's phone, however many complaints name
it; counted under a keyed hash, never the number (notifier.caps)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from notifier.caps import OVER_CAP, DailyCap
from notifier.outbox import OutboxChannel
from schemas.events import Outcome
from tests.fakes.notifier import InMemoryNotifierStore
from tests.unit.test_notifier_delivery import NOW, PHONE, Fake, assigned, build, filed, new_id

KEY = b"k" * 32


def test_a_contact_is_counted_under_a_keyed_hash_per_day_in_seoul() -> None:
    cap = DailyCap(3, KEY)
    a = cap.key_of("010-2345-6789", None, NOW)
    b = cap.key_of("01023456789", "other@example.kr", NOW)
    assert a is not None
    assert b is not None
    assert a.key == b.key, "the same number however written"
    assert "23456789" not in a.key
    assert "2345" not in a.key.split(":")[0]
    other_key = DailyCap(3, b"x" * 32).key_of("010-2345-6789", None, NOW)
    assert other_key is not None
    assert other_key.key != a.key, "without the key nobody can test a number"
    mail = cap.key_of(None, " Hong@Example.kr", NOW)
    assert mail is not None
    assert mail.key == cap.key_of(None, "hong@example.kr", NOW).key  # type: ignore[union-attr]
    assert cap.key_of(None, None, NOW) is None
    # 23:59 and 00:01 in Seoul are two days; 14:59 and 15:01 UTC straddle midnight there.
    before = cap.key_of(PHONE, None, datetime(2025, 11, 25, 14, 59, tzinfo=UTC))
    after = cap.key_of(PHONE, None, datetime(2025, 11, 25, 15, 1, tzinfo=UTC))
    assert before is not None
    assert after is not None
    assert before.key.endswith(":2025-11-25")
    assert after.key.endswith(":2025-11-26")
    assert after.expires_at > datetime(2025, 11, 26, 15, 0, tzinfo=UTC)


def capped(tmp_path: Path, limit: int) -> Fake:
    return build(
        InMemoryNotifierStore(),
        OutboxChannel(tmp_path / "outbox.jsonl"),
        cap=DailyCap(limit, KEY),
    )


async def test_past_the_cap_the_message_is_not_sent_and_the_outcome_says_so(
    tmp_path: Path,
) -> None:
    h = capped(tmp_path, 2)
    complaints = [new_id() for _ in range(3)]
    for cid in complaints:
        await h.delivery.remember_recipient(filed(cid))
    events = [assigned(cid) for cid in complaints]
    for event in events:
        await h.delivery.notify(event)
    await h.delivery.notify(events[0])  # a redelivery is not counted again

    assert len(h.lines()) == 2, "two messages to that phone today, not three"
    assert [(o.complaint_id, o.outcome, o.detail) for o in h.recorder.outcomes] == [
        (complaints[0], Outcome.SENT, None),
        (complaints[1], Outcome.SENT, None),
        (complaints[2], Outcome.SKIPPED, OVER_CAP),
    ]
    assert h.metric("sotong_notifications_capped_total") == 1
    assert h.metric("sotong_notifications_total", channel="outbox", outcome="skipped") == 1
    days = h.store.days
    assert len(days) == 1
    assert all("6789" not in key.split(":")[0] for key in days), "never the number in keys"

    other = new_id()
    await h.delivery.remember_recipient(filed(other, phone="010-1111-2222"))
    await h.delivery.notify(assigned(other))
    assert len(h.lines()) == 3, "another resident's number has its own count"

    h.clock.now = NOW + timedelta(days=1)
    tomorrow = new_id()
    await h.delivery.remember_recipient(filed(tomorrow))
    await h.delivery.notify(assigned(tomorrow))
    assert len(h.lines()) == 4, "a new day, a new count"


async def test_without_a_cap_nothing_is_counted(tmp_path: Path) -> None:
    h = build(InMemoryNotifierStore(), OutboxChannel(tmp_path / "outbox.jsonl"))
    for _ in range(3):
        cid = new_id()
        await h.delivery.remember_recipient(filed(cid))
        await h.delivery.notify(assigned(cid))
    assert len(h.lines()) == 3
    assert h.store.days == {}
