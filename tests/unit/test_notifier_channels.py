"""What every channel promises (the outbox and the fake alike), and the outbox's own file rules."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.channel import Channel, Message
from notifier.outbox import OutboxChannel
from notifier.templates import Content, Template
from schemas import ComplaintState
from services.errors import PermanentError
from tests.fakes.notifier import MemoryChannel

NOW = datetime(2025, 11, 25, 9, 30, tzinfo=UTC)


RECEIVED = Template(
    template_code="SOTONG_RECEIVED",
    version=1,
    text="[소통] 민원이 접수됐습니다.\n접수번호: #{receipt_number}",
)


def words(receipt_number: str = "251125-000001") -> Content:
    return Content(RECEIVED, {"receipt_number": receipt_number}, "[소통] 민원 진행 안내")


def message(
    delivery_id: str = "ev-1:resident:outbox",
    phone: str | None = "010-1234-5678",
    recipient: str = "resident",
) -> Message:
    return Message(
        delivery_id=delivery_id,
        complaint_id="c-1",
        receipt_number="251125-000001",
        recipient=recipient,
        state=ComplaintState.RECEIVED,
        content=words(),
        phone=phone,
        email="hong@example.kr",
    )


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(params=["outbox", "memory"])
def channel(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Channel]:
    if request.param == "outbox":
        yield OutboxChannel(tmp_path / "outbox.jsonl")
    else:
        yield MemoryChannel()


async def test_a_delivered_message_is_known_by_its_delivery_id(channel: Channel) -> None:
    assert not await channel.already_delivered("ev-1:resident:outbox")
    await channel.deliver(message())
    assert await channel.already_delivered("ev-1:resident:outbox")
    assert not await channel.already_delivered("ev-2:resident:outbox")


def test_message_repr_carries_no_contact() -> None:
    assert "010-1234-5678" not in repr(message())
    assert "hong@example.kr" not in repr(message())


async def test_outbox_writes_one_json_line_per_message_creating_its_directory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "deep" / "outbox.jsonl"
    outbox = OutboxChannel(path, clock=lambda: NOW)
    await outbox.deliver(message("ev-1:resident:outbox"))
    await outbox.deliver(message("ev-2:resident:outbox", phone=None))
    first, second = lines(path)
    assert first == {
        "delivery_id": "ev-1:resident:outbox",
        "complaint_id": "c-1",
        "receipt_number": "251125-000001",
        "recipient": "resident",
        "to": "010-****-5678",
        "channel": "outbox",
        "template_code": "SOTONG_RECEIVED",
        "template_version": 1,
        "state": "received",
        "text": "[소통] 민원이 접수됐습니다.\n접수번호: 251125-000001",
        "sent_at": NOW.isoformat(),
    }
    assert second["to"] == "h***@example.kr", "an address only, masked as the phone is"
    raw = path.read_text(encoding="utf-8")
    assert "1234-5678" not in raw
    assert "hong@example.kr" not in raw
    assert "민원이 접수됐습니다" in raw, "Korean stays readable for tail -f"


async def test_staff_messages_go_to_their_own_file_beside_the_residents(tmp_path: Path) -> None:
    outbox = OutboxChannel(tmp_path / "outbox.jsonl")
    await outbox.deliver(message("ev-1:resident:outbox"))
    await outbox.deliver(message("ev-1:handler:outbox", phone="032-560-5001", recipient="handler"))
    [resident] = lines(tmp_path / "outbox.jsonl")
    [handler] = lines(tmp_path / "outbox-staff.jsonl")
    assert (resident["recipient"], handler["recipient"]) == ("resident", "handler")
    assert await outbox.already_delivered("ev-1:handler:outbox")


def test_message_without_words_cannot_be_read_out() -> None:
    bare = Message(
        delivery_id="ev-1:department:roads:webhook",
        complaint_id="c-1",
        receipt_number="251125-000001",
        recipient="department:roads",
        state=ComplaintState.RECEIVED,
    )
    with pytest.raises(PermanentError, match="no text"):
        _ = bare.text


def test_the_idempotency_key_is_stable_per_delivery() -> None:
    assert (
        message("ev-1:resident:sms").idempotency_key == message("ev-1:resident:sms").idempotency_key
    )
    assert (
        message("ev-1:resident:sms").idempotency_key != message("ev-2:resident:sms").idempotency_key
    )


async def test_outbox_cuts_off_a_line_a_crash_left_unfinished(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_text('{"delivery_id": "ev-0:resident:outbox", "te', encoding="utf-8")
    outbox = OutboxChannel(path)
    assert not await outbox.already_delivered("ev-0:resident:outbox")
    await outbox.deliver(message())
    torn, whole = path.read_text(encoding="utf-8").splitlines()
    assert torn.startswith('{"delivery_id": "ev-0')
    assert json.loads(whole)["delivery_id"] == "ev-1:resident:outbox"
    assert await outbox.already_delivered("ev-1:resident:outbox")
