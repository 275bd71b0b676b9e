"""One complaint through intake, routing, tracker and notifier on real servers over TCP."""

import itertools
import json
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from schemas import topics
from schemas.commands import RESIDENT, StartSiteCheck, WithdrawComplaint
from tests.e2e.conftest import (
    API_KEYS,
    CALL_CENTRE_KEY,
    Stack,
    confirm_contact,
    eventually,
    produce,
    read_topic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

STEPS = ["received", "assigned", "handler_assigned", "site_check", "reviewing", "resolved"]


_HOUSES = itertools.count(1)


async def file(
    http: httpx.AsyncClient, stack: Stack, *, vouched: bool = False, **overrides: Any
) -> dict[str, Any]:
    """A filing at an address of its own: the same text at one address would join the
    complaint open there (중복민원), and the tests here follow one complaint each. On the
    web the resident then enters the code sent to their phone (issue 11 §11); ``vouched``
    files through the call centre instead, whose credential vouches for the phone."""
    body = {
        "channel": "call_center" if vouched else "web",
        "body": "이불이랑 매트리스 버리려면 어떻게 해요? 스티커 어디서 사요",
        "resident": {"name": "홍길동", "phone": "010-1234-5678"},
        "location": {"address": f"인천 서구 청라대로 {next(_HOUSES)}", "dong": "청라2동"},
    } | overrides
    headers = {"X-Api-Key": CALL_CENTRE_KEY} if vouched else {}
    response = await http.post(f"{stack.intake}/v1/complaints", json=body, headers=headers)
    assert response.status_code == 201, response.text
    filed = dict(response.json())
    await confirm_contact(http, stack.intake, filed, lambda: stack.outbox_lines(codes=True))
    return filed


async def view(
    http: httpx.AsyncClient, stack: Stack, filed: dict[str, Any]
) -> dict[str, Any] | None:
    response = await http.get(
        f"{stack.tracker}/v1/complaints/{filed['complaint_id']}",
        headers={"X-Tracking-Token": filed["tracking_token"]},
    )
    return dict(response.json()) if response.status_code == 200 else None


async def state_is(
    http: httpx.AsyncClient, stack: Stack, filed: dict[str, Any], state: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        current = await view(http, stack, filed)
        return current if current and current["state"] == state else None

    result: dict[str, Any] = await eventually(probe, what=f"state {state}")
    return result


async def act(
    http: httpx.AsyncClient,
    stack: Stack,
    complaint_id: str,
    action: str,
    note: str | None = None,
    *,
    department: str = "resource-circulation",
    **fields: object,
) -> str:
    body = {"action": action} | ({"note": note} if note else {}) | fields
    response = await http.post(
        f"{stack.intake}/v1/complaints/{complaint_id}/commands",
        json=body,
        headers={"X-Api-Key": API_KEYS[department]},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["command_id"])


async def test_a_complaint_goes_from_filing_to_resolved(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    filed = await file(http, stack)
    assert len(filed["receipt_number"]) == len("YYMMDD-NNNNNN")
    assert len(filed["tracking_token"]) >= 32
    assert filed["resident_token"] != filed["tracking_token"]

    assigned = await state_is(http, stack, filed, "handler_assigned")
    assert assigned["department"]["code"] == "resource-circulation"
    assert assigned["handler"]["name"]
    assert assigned["handler"]["office_phone"].startswith("032-")

    await act(http, stack, filed["complaint_id"], "start_site_check", "현장 방문 예정")
    await state_is(http, stack, filed, "site_check")
    await act(http, stack, filed["complaint_id"], "start_review")
    await state_is(http, stack, filed, "reviewing")
    await act(http, stack, filed["complaint_id"], "resolve", "대형폐기물 스티커 안내 후 수거 완료")
    final = await state_is(http, stack, filed, "resolved")

    assert [entry["state"] for entry in final["timeline"]] == STEPS
    assert [entry["sequence"] for entry in final["timeline"]] == [1, 2, 3, 4, 5, 6]
    assert final["timeline"][-1]["note"] == "대형폐기물 스티커 안내 후 수거 완료"
    assert "홍길동" not in json.dumps(final, ensure_ascii=False)
    assert "010-1234-5678" not in json.dumps(final)

    lines = await eventually(
        lambda: (x := stack.outbox_lines(filed["complaint_id"])) and len(x) >= 6 and x,
        what="six outbox messages",
    )
    assert [line["state"] for line in lines] == STEPS
    texts = [line["text"] for line in lines]
    handler = assigned["handler"]
    assert [text.splitlines()[0] for text in texts] == [
        "[인천광역시 서구] 민원이 접수됐습니다.",
        "[인천광역시 서구] 민원이 자원순환과로 배정됐습니다.",
        f"[인천광역시 서구] 담당자({handler['name']}, {handler['office_phone']})가 정해졌습니다.",
        "[인천광역시 서구] 현장 확인 중입니다.",
        "[인천광역시 서구] 현재 심사 중입니다.",
        "[인천광역시 서구] 민원이 처리 완료됐습니다.",
    ], "the district's own words, from the district office"
    due = datetime.fromisoformat(assigned["due_at"]).astimezone(ZoneInfo("Asia/Seoul"))
    weekday = "월화수목금토일"[due.weekday()]
    due_line = texts[1].splitlines()[1]
    assert due_line.startswith("처리기한: ")
    assert due_line.endswith("까지")
    assert f"{due.month}월 {due.day}일({weekday}) {due.hour}시" in due_line, "in plain Korean"
    link = f"http://127.0.0.1:8005/complaints/{filed['complaint_id']}"
    for text in texts:
        assert f"접수번호: {filed['receipt_number']}" in text.splitlines()
        assert text.endswith(f"진행 상황: {link}"), "the timeline, without the token"
        assert filed["tracking_token"] not in text
    assert all("010-1234-5678" not in json.dumps(line) for line in lines)

    outcomes = await eventually(
        lambda: _outcomes(http, stack, filed), what="six notification outcomes in the timeline"
    )
    assert {o["outcome"] for o in outcomes} == {"sent"}


async def _outcomes(
    http: httpx.AsyncClient, stack: Stack, filed: dict[str, Any]
) -> list[dict[str, Any]] | None:
    current = await view(http, stack, filed)
    if current and len(current.get("notifications", [])) >= 6:
        return list(current["notifications"])
    return None


async def test_resubmitting_the_same_channel_reference_files_once(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    ref = f"kakao-{uuid.uuid4()}"
    first = await file(http, stack, channel="kakao", channel_ref=ref)
    again = await http.post(
        f"{stack.intake}/v1/complaints",
        json={"channel": "kakao", "channel_ref": ref, "body": "이불 버리는 법 알려주세요"},
    )
    assert again.status_code == 200
    assert again.json()["complaint_id"] == first["complaint_id"]
    assert "tracking_token" not in again.json()  # issue 11 §1: a duplicate gets no token
    assert again.json()["duplicate"] is True
    current = await state_is(http, stack, first, "handler_assigned")
    assert [e["state"] for e in current["timeline"]] == STEPS[:3]
    filed_events = await read_topic(stack, topics.FILED, key=first["complaint_id"])
    assert len({e["value"]["event_id"] for e in filed_events}) == 1


async def test_a_returning_resident_keeps_one_resident_token(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    first = await file(http, stack)
    second = await file(http, stack, resident_token=first["resident_token"])
    assert second["resident_token"] == first["resident_token"]
    assert second["complaint_id"] != first["complaint_id"]
    forged = await http.post(
        f"{stack.intake}/v1/complaints",
        json={"channel": "web", "body": "테스트", "resident_token": "f" * 32},
    )
    assert forged.status_code == 422
    assert "resident_token" in forged.json()["error"]["message"]


async def test_invalid_http_input_names_each_field(stack: Stack, http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{stack.intake}/v1/complaints",
        json={"channel": "fax", "resident": {"phone": "12345"}},
    )
    assert response.status_code == 422
    fields = {f["field"] for f in response.json()["error"]["fields"]}
    assert fields == {"channel", "body", "resident.phone"}
    assert "12345" not in response.text


async def test_invalid_kafka_submission_is_dead_lettered_with_reasons(stack: Stack) -> None:
    key = f"bad-{uuid.uuid4()}"
    await produce(stack, topics.SUBMISSIONS, b'{"channel": "web", "title": "no body"}', key)
    await produce(stack, topics.SUBMISSIONS, b"not json at all", key)
    letters = await read_topic(stack, topics.DEAD_LETTER, key=key, min_count=2, within=60)
    assert len(letters) == 2
    by_reason = {letter["value"]["reason"] for letter in letters}
    assert any("body" in reason for reason in by_reason)
    assert all(
        letter["value"]["original_topic"] == stack.topic(topics.SUBMISSIONS) for letter in letters
    )
    assert all(
        letter["headers"]["ce_type"] == b"kr.go.sotong.dead_lettered.v1" for letter in letters
    )


async def test_a_command_written_to_the_topic_past_intake_is_dead_lettered(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """Anything that can write ``complaint.commands`` could withdraw anyone's complaint or
    act as any department; routing acts only on commands intake signed."""
    filed = await file(http, stack)
    await state_is(http, stack, filed, "handler_assigned")
    cid = filed["complaint_id"]
    spoofed = WithdrawComplaint(actor=RESIDENT, complaint_id=cid)
    as_department = StartSiteCheck(actor="resource-circulation", complaint_id=cid)
    for command in (spoofed, as_department):
        await produce(stack, topics.COMMANDS, command.model_dump_json().encode(), cid)
    letters = await read_topic(stack, topics.DEAD_LETTER, key=cid, min_count=2, within=60)
    assert len(letters) == 2
    assert all("only intake may publish commands" in x["value"]["reason"] for x in letters)
    await act(http, stack, cid, "start_site_check")  # through intake: signed, applied
    current = await state_is(http, stack, filed, "site_check")
    assert "withdrawn" not in [e["state"] for e in current["timeline"]]


async def test_a_valid_kafka_submission_is_filed(stack: Stack, http: httpx.AsyncClient) -> None:
    ref = f"chatbot-{uuid.uuid4()}"
    payload = {
        "channel": "chatbot",
        "channel_ref": ref,
        "body": "집앞에 차좀 빼주세요 며칠째 주차돼있어요",
        "location": {"dong": "가정1동"},
    }
    await produce(stack, topics.SUBMISSIONS, json.dumps(payload).encode(), ref)
    await produce(stack, topics.SUBMISSIONS, json.dumps(payload).encode(), ref)
    filed = await read_topic(stack, topics.FILED, min_count=1, within=60)
    mine = [f for f in filed if f["value"].get("channel_ref") == ref]
    assert len({f["value"]["complaint_id"] for f in mine}) == 1


async def test_illegal_commands_change_nothing_and_say_why(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    filed = await file(http, stack)
    await state_is(http, stack, filed, "handler_assigned")
    # what can be judged without the complaint is refused at the door...
    no_result = await http.post(
        f"{stack.intake}/v1/complaints/{filed['complaint_id']}/commands",
        json={"action": "resolve"},
        headers={"X-Api-Key": API_KEYS["resource-circulation"]},
    )
    assert no_result.status_code == 422
    assert [f["field"] for f in no_result.json()["error"]["fields"]] == ["note"]
    # ...what depends on its state, or on whether it exists, is refused by routing
    too_early = await act(http, stack, filed["complaint_id"], "close")
    unknown_id = str(uuid.uuid4())
    unknown = await act(http, stack, unknown_id, "start_review")

    rejections = await read_topic(stack, topics.REJECTIONS, key=filed["complaint_id"])
    assert rejections[0]["value"]["command_id"] == too_early
    assert rejections[0]["value"]["code"] == "illegal_transition"
    assert rejections[0]["value"]["reason_ko"]
    unknown_rejections = await read_topic(stack, topics.REJECTIONS, key=unknown_id)
    assert unknown_rejections[0]["value"]["command_id"] == unknown
    assert unknown_rejections[0]["value"]["code"] == "unknown_complaint"

    current = await eventually(
        lambda: _with_rejection(http, stack, filed), what="the rejection in the tracker"
    )
    assert current["state"] == "handler_assigned"
    assert [e["state"] for e in current["timeline"]] == STEPS[:3]


async def _with_rejection(
    http: httpx.AsyncClient, stack: Stack, filed: dict[str, Any]
) -> dict[str, Any] | None:
    current = await view(http, stack, filed)
    return current if current and current.get("rejections") else None


async def test_wrong_token_and_unknown_id_look_the_same(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    filed = await file(http, stack)
    await state_is(http, stack, filed, "handler_assigned")
    wrong = await http.get(
        f"{stack.tracker}/v1/complaints/{filed['complaint_id']}",
        headers={"X-Tracking-Token": "x" * 32},
    )
    unknown = await http.get(
        f"{stack.tracker}/v1/complaints/{uuid.uuid4()}", headers={"X-Tracking-Token": "x" * 32}
    )
    missing = await http.get(f"{stack.tracker}/v1/complaints/{filed['complaint_id']}")
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()
    assert missing.status_code == 404
