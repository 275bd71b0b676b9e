"""The chat that led to a complaint travels with it: a bounded ``transcript`` on the
submission, kept by intake in ``complaint.filed`` and shown to the responsible department
by the tracker, never in the resident's public view or the staff view."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from intake.api import FilingRequest
from intake.filing import file_submission
from schemas import ComplaintSubmitted
from schemas.common import MAX_TRANSCRIPT_TURNS
from tests.unit.test_tracker_projection import story
from tracker.projection import project
from tracker.view import ComplaintView, DepartmentComplaintView, StaffComplaintView

TURNS = [
    {"role": "resident", "text": "집 앞에 쓰레기가 쌓여 있어요"},
    {"role": "bot", "text": "자원순환과에서 처리하는 민원으로 보여요. 접수해 드릴까요?"},
    {"role": "resident", "text": "네, 접수할게요"},
]


def test_a_filing_request_carries_the_transcript_to_complaint_filed() -> None:
    request = FilingRequest.model_validate(
        {"channel": "kakao", "body": "집 앞에 쓰레기가 쌓여 있어요", "transcript": TURNS}
    )
    submission = ComplaintSubmitted.model_validate(
        {**dict(request), "occurred_at": datetime(2026, 12, 2, tzinfo=UTC)}
    )

    filed = file_submission(
        submission,
        complaint_id="c-1",
        receipt_number="261202-000001",
        tracking_token="t" * 32,
        resident_token="r" * 32,
        filed_at=datetime(2026, 12, 2, tzinfo=UTC),
    )

    assert [t.model_dump() for t in filed.transcript] == TURNS
    assert ComplaintSubmitted.model_validate({"channel": "web", "body": "x"}).transcript == []


@pytest.mark.parametrize(
    ("transcript", "field"),
    [
        ([{"role": "operator", "text": "안녕하세요"}], "transcript.0.role"),
        ([{"role": "bot", "text": ""}], "transcript.0.text"),
        ([{"role": "bot", "text": "가" * 1001}], "transcript.0.text"),
        ([{"role": "bot", "text": "네"}] * (MAX_TRANSCRIPT_TURNS + 1), "transcript"),
    ],
)
def test_a_transcript_out_of_bounds_is_refused_naming_the_field(
    transcript: list[dict[str, str]], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        FilingRequest.model_validate({"channel": "chatbot", "body": "x", "transcript": transcript})

    assert field in {".".join(str(p) for p in e["loc"]) for e in refused.value.errors()}


def test_the_department_sees_the_transcript_and_nobody_else() -> None:
    events = story("c-1")
    events[0] = events[0].model_copy(
        update={"transcript": FilingRequest.model_validate(
            {"channel": "kakao", "body": "x", "transcript": TURNS}
        ).transcript}
    )  # fmt: skip
    model = project(events)

    department = DepartmentComplaintView.model_validate(model, from_attributes=True)
    public = ComplaintView.model_validate(model, from_attributes=True).model_dump_json()
    staff = StaffComplaintView.model_validate(model, from_attributes=True).model_dump_json()

    assert [t.model_dump() for t in department.transcript] == TURNS
    assert "transcript" not in public
    assert "transcript" not in staff
    assert TURNS[1]["text"] not in public + staff
