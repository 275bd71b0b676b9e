"""정정 and 만족도 through the processes as ``make up`` runs them: the resident corrects the
행정동 through intake, routing moves the complaint to the handler who covers it, tracker
shows both on the timeline, the notifier tells the resident and the handler; then a
rating after resolution reaches the tracker, once."""

import json
from typing import Any

import httpx
import pytest

from schemas import topics
from tests.e2e.conftest import Stack, eventually, read_topic
from tests.e2e.test_walking_skeleton import act, file, state_is, view

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NEW_ADDRESS = "인천 서구 청라라임로 77"


async def resident(
    http: httpx.AsyncClient, stack: Stack, filed: dict[str, Any], **body: object
) -> None:
    response = await http.post(
        f"{stack.intake}/v1/complaints/{filed['complaint_id']}/resident-actions",
        json={"token": filed["tracking_token"], **body},
    )
    assert response.status_code == 202, response.text


def staff_lines(stack: Stack, complaint_id: str) -> list[dict[str, Any]]:
    path = stack.outbox.with_name("outbox-staff.jsonl")
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [line for line in lines if line["complaint_id"] == complaint_id]


async def test_a_corrected_dong_reaches_a_new_handler_and_everyone_is_told(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    filed = await file(http, stack)  # 청라2동
    before = await state_is(http, stack, filed, "handler_assigned")
    complaint_id = filed["complaint_id"]

    await resident(http, stack, filed, action="correct", dong="청라3동", address=NEW_ADDRESS)

    async def reassigned() -> dict[str, Any] | None:
        current = await view(http, stack, filed)
        triggers = [t["trigger"] for t in (current or {}).get("timeline", [])]
        return current if triggers[-2:] == ["correct", "reassign"] else None

    after = await eventually(reassigned, what="the correction and the new handler")
    assert after["dong"] == "청라3동"
    assert after["timeline"][-2]["correction"] == {
        "fields": ["address", "dong"],
        "dong": "청라3동",
        "photos": [],
    }
    assert after["handler"]["name"] != before["handler"]["name"]
    assert after["department"] == before["department"]  # a correction never transfers
    lifecycle = await read_topic(stack, topics.LIFECYCLE, key=complaint_id, min_count=5)
    assert NEW_ADDRESS not in json.dumps([m["value"] for m in lifecycle], ensure_ascii=False)

    told = await eventually(
        lambda: (
            [
                line
                for line in stack.outbox_lines(complaint_id)
                if line["template_code"] in {"SOTONG_CORRECTED", "SOTONG_REASSIGNED"}
            ]
            or None
        ),
        what="the resident told",
    )
    texts = {line["template_code"]: line["text"] for line in told}
    assert "정정하신 내용(주소, 행정동)이 반영됐습니다." in texts["SOTONG_CORRECTED"]
    staff = await eventually(
        lambda: (
            [
                line
                for line in staff_lines(stack, complaint_id)
                if line["template_code"] == "SOTONG_STAFF_CORRECTED"
            ]
            or None
        ),
        what="the handler told",
    )
    assert "정정 항목: 주소, 행정동" in staff[0]["text"]
    assert NEW_ADDRESS not in json.dumps(staff, ensure_ascii=False)

    # after the site check a correction is refused with what to do instead
    await act(
        http,
        stack,
        complaint_id,
        "start_site_check",
        "현장 방문 예정",
        department="resource-circulation",
    )
    await state_is(http, stack, filed, "site_check")
    await resident(http, stack, filed, action="correct", dong="청라2동")

    async def refused() -> list[dict[str, Any]] | None:
        current = await view(http, stack, filed)
        found = [r for r in (current or {}).get("rejections", []) if r["action"] == "correct"]
        return found or None

    [refusal] = await eventually(refused, what="the late correction refused")
    assert refusal["code"] == "correction_closed"
    assert "담당자에게 알려" in refusal["reason_ko"]

    await act(http, stack, complaint_id, "resolve", "수거 완료했습니다")
    await state_is(http, stack, filed, "resolved")
    await resident(http, stack, filed, action="rate", rating=4, comment="빨리 치워 주셨어요")
    await resident(http, stack, filed, action="rate", rating=1)  # once per resolution

    async def rated() -> dict[str, Any] | None:
        current = await view(http, stack, filed)
        codes = [r["code"] for r in (current or {}).get("rejections", [])]
        return current if current and current.get("rating") and "already_rated" in codes else None

    final = await eventually(rated, what="the rating kept, the second refused")
    assert final["rating"] == 4
    assert final["timeline"][-1]["rating"] == {"score": 4, "comment": "빨리 치워 주셨어요"}
