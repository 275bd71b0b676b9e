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


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("\u200c\u200d\u200b", "U+200C, U+200D"),  # joiners (the zero-width space is removed)
        (" \u200d\ufe0f ", "U+200D, U+FE0F"),  # a joiner and a variation selector
        ("\u3164\u3164", "U+3164"),  # the Hangul filler, a favourite invisible name
        ("\u00ad\u200e\U000e0041", "U+00AD, U+200E, U+E0041"),  # soft hyphen, mark, tag
        ("\u034f\u2800", "U+034F, U+2800"),
    ],
)
def test_a_text_of_only_invisible_characters_is_refused_naming_the_field(
    text: str, named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        submitted(body=text)
    [error] = caught.value.errors()
    assert error["loc"] == ("body",)
    assert f"only invisible characters ({named})" in error["msg"]
    with pytest.raises(ValidationError) as caught:
        submitted(resident={"name": text})
    assert [e["loc"] for e in caught.value.errors()] == [("resident", "name")]


@pytest.mark.parametrize(
    "text",
    [
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family: three emoji joined by ZWJ
        "\u2764\ufe0f",  # a heart with its emoji variation selector
        "\U0001f44d\U0001f3fd",  # a thumbs-up with a skin tone
        "가로등이 꺼졌어요 \U0001f62d\u200d",
    ],
)
def test_emoji_sequences_keep_their_joiners_and_selectors(text: str) -> None:
    assert submitted(body=text).body == text


def test_a_chat_turn_is_normalised_and_refused_like_any_text() -> None:
    nfd = unicodedata.normalize("NFD", "가로등이 꺼졌어요")
    transcript = [{"role": "resident", "text": nfd}]
    assert submitted(transcript=transcript).transcript[0].text == "가로등이 꺼졌어요"
    for bad in ("\u200d\u200c", "\u200b", "가\u202e"):
        with pytest.raises(ValidationError) as caught:
            submitted(transcript=[{"role": "resident", "text": bad}])
        assert [e["loc"] for e in caught.value.errors()] == [("transcript", 0, "text")]


async def test_intake_answers_422_naming_the_field_for_a_body_of_joiners() -> None:
    app = create_app(IntakeSettings(), store=InMemorySubmissionStore(), publish=RecordingPublish())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://i") as http:
        joiners = await http.post(
            "/v1/complaints", json={"channel": "web", "body": "\u200c\u200d\u200b"}
        )
        family = await http.post(
            "/v1/complaints",
            json={"channel": "web", "body": "놀이터 \U0001f468\u200d\U0001f469\u200d\U0001f467"},
        )
    assert joiners.status_code == 422
    [field] = joiners.json()["error"]["fields"]
    assert field["field"] == "body"
    assert "U+200C" in field["reason"]
    assert family.status_code == 201, family.text
