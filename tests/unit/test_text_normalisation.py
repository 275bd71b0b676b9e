"""Free text from outside is NFC, loses invisible characters and refuses control ones,
with the field named, at the door (intake's HTTP API) and on the wire models alike."""

import unicodedata

import httpx
import pytest
from pydantic import ValidationError

from intake.app import create_app
from intake.settings import IntakeSettings
from schemas import ComplaintSubmitted
from schemas.commands import COMMAND_ADAPTER
from tests.fakes.intake import InMemorySubmissionStore, RecordingPublish

BODY = "석남동 골목 가로등이 꺼졌어요"


def submitted(**fields: object) -> ComplaintSubmitted:
    return ComplaintSubmitted.model_validate({"channel": "web", "body": BODY} | fields)


def test_decomposed_hangul_is_stored_composed() -> None:
    nfd = unicodedata.normalize("NFD", BODY)
    assert nfd != BODY
    assert submitted(body=nfd).body == BODY
    assert submitted(location={"dong": unicodedata.normalize("NFD", "석남1동")}).location.dong == (
        "석남1동"
    )


def test_invisible_characters_are_removed_and_a_body_of_only_them_is_empty() -> None:
    assert submitted(body="가로등\u200b이 꺼졌어요\ufeff").body == "가로등이 꺼졌어요"
    with pytest.raises(ValidationError) as caught:
        submitted(body="\u200b\u200b\u2060")
    assert [e["loc"] for e in caught.value.errors()] == [("body",)]


@pytest.mark.parametrize(
    ("text", "named"),
    [("가로등\u202e요어졌꺼", "U+202E"), ("가로등\x00", "U+0000"), ("가로등\x1b[31m", "U+001B")],
)
def test_control_characters_are_refused_with_the_field_and_the_character(
    text: str, named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        submitted(title=text)
    [error] = caught.value.errors()
    assert error["loc"] == ("title",)
    assert named in error["msg"]


def test_line_breaks_and_tabs_are_text() -> None:
    assert submitted(body="첫째 줄\n둘째 줄\t끝").body == "첫째 줄\n둘째 줄\t끝"


def test_a_command_note_is_normalised_too() -> None:
    command = COMMAND_ADAPTER.validate_python(
        {
            "complaint_id": "c-1",
            "actor": "roads",
            "action": "start_site_check",
            "note": unicodedata.normalize("NFD", "현장 확인"),
        }
    )
    assert command.note == "현장 확인"


async def test_intake_answers_422_naming_the_field_for_a_zero_width_body() -> None:
    app = create_app(IntakeSettings(), store=InMemorySubmissionStore(), publish=RecordingPublish())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://i") as http:
        response = await http.post("/v1/complaints", json={"channel": "web", "body": "\u200b"})
        bidi = await http.post(
            "/v1/complaints", json={"channel": "web", "body": BODY, "title": "\u2066제목"}
        )
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["body"]
    assert bidi.status_code == 422
    [field] = bidi.json()["error"]["fields"]
    assert field["field"] == "title"
    assert "U+2066" in field["reason"]
