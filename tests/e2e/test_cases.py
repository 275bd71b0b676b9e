"""중복민원 through the stack as ``make up`` runs it: two residents report the same broken
street light at one address; the second joins the first, is offered it by the tracker's
public lookup, and is told the result when the case is resolved."""

import httpx

from tests.e2e.conftest import API_KEYS, Stack, eventually
from tests.e2e.test_walking_skeleton import file, state_is, view

ADDRESS = {"address": "인천 서구 청라커낼로 77", "dong": "청라1동"}


async def test_two_residents_one_street_light_one_case_one_result(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    first = await file(
        http,
        stack,
        body="청라커낼로 77 앞 가로등이 나갔어요. 밤에 너무 어두워요.",
        service_code="street-light",
        location=ADDRESS,
    )
    await state_is(http, stack, first, "handler_assigned")

    offered = await http.get(
        f"{stack.tracker}/v1/complaints/similar",
        params={"service_code": "street-light", "dong": "청라1동", "text": "가로등이 나갔어요"},
    )
    assert offered.status_code == 200
    assert [i["complaint_id"] for i in offered.json()["items"]] == [first["complaint_id"]]
    assert "홍길동" not in offered.text

    second = await file(
        http,
        stack,
        body="가로등 나갔어요 청라커낼로 77",
        service_code="street-light",
        resident={"name": "김주민", "phone": "010-9876-5432"},
        location=ADDRESS,
    )

    async def linked() -> dict[str, object] | None:
        current = await view(http, stack, second)
        triggers = [e["trigger"] for e in (current or {}).get("timeline", [])]
        return current if "link" in triggers else None

    await eventually(linked, what="the second complaint linked to the first")

    resolved = await http.post(
        f"{stack.intake}/v1/complaints/{first['complaint_id']}/commands",
        json={"action": "resolve", "note": "가로등 전구를 교체했습니다"},
        headers={"X-Api-Key": API_KEYS["roads"]},
    )
    assert resolved.status_code == 202, resolved.text
    done = await state_is(http, stack, second, "resolved")
    assert done["timeline"][-1]["note"] == "가로등 전구를 교체했습니다"
