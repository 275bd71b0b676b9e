"""A replay sends the bytes the failed record had: the archived whole when the letter
carries an excerpt or a masked copy (personal data), never the masked copy itself."""

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from schemas import DeadLetter
from sotong.deadletter import ReplayError, original_value

ORIGINAL = b'{"body": "010-1234-5678 \\ub85c \\uc5f0\\ub77d\\uc8fc\\uc138\\uc694"}'
MASKED = b'{"body": "010-****-5678 \\ub85c \\uc5f0\\ub77d\\uc8fc\\uc138\\uc694"}'


class Archive:
    def __init__(self, kept: dict[str, bytes]) -> None:
        self.kept = kept

    async def original(self, event_id: str) -> bytes | None:
        return self.kept.get(event_id)


def letter(carried: bytes, *, masked: bool) -> DeadLetter:
    return DeadLetter(
        complaint_id="c1",
        original_topic="complaint.submissions",
        original_partition=0,
        original_offset=1,
        original_value_b64=base64.b64encode(carried).decode(),
        original_size=len(ORIGINAL),
        original_sha256=hashlib.sha256(ORIGINAL).hexdigest(),
        original_masked=masked,
        consumer="intake",
        reason="1 invalid field(s): channel: required",
        retryable=False,
        attempts=1,
        occurred_at=datetime(2026, 12, 2, tzinfo=UTC),
    )


async def test_a_masked_letter_is_replayed_from_the_archive() -> None:
    masked = letter(MASKED, masked=True)
    value = await original_value(masked, Archive({masked.event_id: ORIGINAL}))  # type: ignore[arg-type]
    assert value == ORIGINAL


async def test_a_masked_letter_without_its_original_is_not_replayed() -> None:
    with pytest.raises(ReplayError, match="masked"):
        await original_value(letter(MASKED, masked=True), Archive({}))  # type: ignore[arg-type]


async def test_a_whole_letter_carries_its_own_value() -> None:
    assert await original_value(letter(ORIGINAL, masked=False), Archive({})) == ORIGINAL  # type: ignore[arg-type]
