"""정정 and 만족도 at intake's door: checked, then published as the resident's command."""

import httpx
import pytest

from schemas import topics
from schemas.commands import CorrectComplaint, RateComplaint
from tests.unit.test_intake_handlers import Harness, error_fields, intake, store  # noqa: F401


async def act(intake: Harness, **body: object) -> tuple[dict[str, str], httpx.Response]:  # noqa: F811
    filed = (await intake.file()).json()
    intake.publish.sent.clear()
    response = await intake.http.post(
        f"/v1/complaints/{filed['complaint_id']}/resident-actions",
        json={"token": filed["tracking_token"], **body},
    )
    return filed, response


async def test_a_correction_is_published_as_the_residents_command(intake: Harness) -> None:  # noqa: F811
    filed, response = await act(
        intake, action="correct", dong="청라3동", address=" 인천 서구 청라대로 99 "
    )
    assert response.status_code == 202
    [sent] = intake.publish.sent
    assert sent.topic == topics.COMMANDS
    [command] = intake.commands()
    assert isinstance(command, CorrectComplaint)
    assert (command.actor, command.dong, command.address, command.title) == (
        "resident",
        "청라3동",
        "인천 서구 청라대로 99",
        None,
    )
    assert filed["tracking_token"] not in sent.event.model_dump_json()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"action": "correct", "dong": "강남1동"}, {"dong"}),
        ({"action": "correct", "title": "가" * 201}, {"title"}),
        ({"action": "rate", "rating": 6}, {"rating"}),
        ({"action": "rate", "rating": 0}, {"rating"}),
        ({"action": "rate"}, {"rating"}),
        ({"action": "rate", "rating": 3, "comment": "가" * 501}, {"comment"}),
    ],
)
async def test_what_is_wrong_is_refused_at_the_door_naming_the_field(
    intake: Harness,  # noqa: F811
    body: dict[str, object],
    fields: set[str],
) -> None:
    _, response = await act(intake, **body)
    assert response.status_code == 422
    assert error_fields(response) == fields
    assert intake.publish.sent == []


async def test_an_empty_correction_is_refused(intake: Harness) -> None:  # noqa: F811
    _, response = await act(intake, action="correct")
    assert response.status_code == 422
    assert "at least one" in response.json()["error"]["message"]
    assert intake.publish.sent == []


async def test_a_rating_is_published_with_its_comment(intake: Harness) -> None:  # noqa: F811
    _, response = await act(intake, action="rate", rating=5, comment=" 친절했어요 ")
    assert response.status_code == 202
    [command] = intake.commands()
    assert isinstance(command, RateComplaint)
    assert (command.rating, command.comment, command.actor) == (5, "친절했어요", "resident")


async def test_the_resident_token_acts_as_well_as_the_tracking_token(intake: Harness) -> None:  # noqa: F811
    filed = (await intake.file()).json()
    other = (await intake.file(channel_ref="web-2", resident={})).json()
    intake.publish.sent.clear()
    url = f"/v1/complaints/{filed['complaint_id']}/resident-actions"
    mine = await intake.http.post(
        url, json={"action": "correct", "title": "새 제목", "token": filed["resident_token"]}
    )
    assert mine.status_code == 202
    theirs = await intake.http.post(
        url, json={"action": "correct", "title": "새 제목", "token": other["resident_token"]}
    )
    assert theirs.status_code == 404
    assert len(intake.commands()) == 1
