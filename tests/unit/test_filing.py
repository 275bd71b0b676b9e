from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from intake.filing import file_submission, new_receipt_number, new_tracking_token
from schemas import ComplaintSubmitted
from schemas.common import mask_name, mask_phone
from schemas.tokens import hash_token, token_matches


def test_the_smallest_valid_submission() -> None:
    sub = ComplaintSubmitted.model_validate({"channel": "web", "body": "이불 버리는 법"})
    assert sub.resident.notification_consent is True
    assert sub.location.dong is None


def test_bad_fields_are_named() -> None:
    with pytest.raises(ValidationError) as exc:
        ComplaintSubmitted.model_validate(
            {
                "channel": "web",
                "body": "",
                "resident": {"phone": "abc"},
                "location": {"coordinates": {"lat": 1, "lon": 2}},
            }
        )
    fields = {".".join(map(str, e["loc"])) for e in exc.value.errors()}
    assert fields == {
        "body",
        "resident.phone",
        "location.coordinates.lat",
        "location.coordinates.lon",
    }


def test_receipt_numbers_use_the_korean_date() -> None:
    receipt = new_receipt_number(datetime(2026, 11, 24, 16, 0, tzinfo=UTC))  # 01:00 KST on the 25th
    assert receipt.startswith("261125-")
    assert len(receipt) == 13


def test_tokens_are_unguessable_and_only_their_hash_travels() -> None:
    tokens = {new_tracking_token() for _ in range(1000)}
    assert len(tokens) == 1000
    token = tokens.pop()
    filed = file_submission(
        ComplaintSubmitted(channel="web", body="x"),
        complaint_id="c1",
        receipt_number="261125-000001",
        tracking_token=token,
        resident_token="r" * 32,
        filed_at=datetime.now(UTC),
    )
    assert "r" * 32 not in filed.model_dump_json()
    assert filed.resident_token_hash == hash_token("r" * 32)
    assert token not in filed.model_dump_json()
    assert filed.tracking_token_hash == hash_token(token)
    assert token_matches(token, filed.tracking_token_hash)
    assert not token_matches("wrong", filed.tracking_token_hash)
    assert not token_matches(None, filed.tracking_token_hash)


def test_masking() -> None:
    assert mask_name("홍길동") == "홍*동"
    assert mask_name("남궁민수") == "남**수"
    assert mask_name("김철") == "김*"
    assert mask_phone("010-1234-5678") == "010-****-5678"
    assert mask_phone("01012345678") == "010-****-5678"
