"""Confirmed contacts end to end (issue 11 §11), the processes as ``make up`` runs them: a
web filing with a phone gets exactly one code message, nothing else while routing moves
the complaint, then — once the resident enters the code — the held messages, in order
and once each."""

import re
from typing import Any

import httpx

from tests.e2e.conftest import CODE, CODE_TEMPLATE, Stack, eventually

FILING = {
    "channel": "web",
    "body": "이불이랑 매트리스 버리려면 어떻게 해요? 스티커 어디서 사요",
    "resident": {"name": "홍길동", "phone": "010-7777-1234"},
    "location": {"address": "인천 서구 청라대로 901", "dong": "청라2동"},
}


async def metric(http: httpx.AsyncClient, stack: Stack, name: str) -> float:
    text = (await http.get(f"{stack.services['notifier'].url}/metrics")).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_one_code_then_nothing_until_it_is_entered_then_the_held_messages_once(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    response = await http.post(f"{stack.intake}/v1/complaints", json=FILING)
    assert response.status_code == 201, response.text
    filed: dict[str, Any] = response.json()
    assert filed["contact"]["confirmation_required"] is True
    cid = filed["complaint_id"]

    [code_line] = await eventually(
        lambda: stack.outbox_lines(cid, codes=True), what="the contact code message"
    )
    assert code_line["template_code"] == CODE_TEMPLATE
    assert code_line["to"] == "010-****-1234"
    found = CODE.search(code_line["text"])
    assert found is not None

    # routing files, assigns and names a handler; each step's resident message is held
    async def handler_assigned() -> bool:
        view = await http.get(
            f"{stack.tracker}/v1/complaints/{cid}",
            headers={"X-Tracking-Token": filed["tracking_token"]},
        )
        return view.status_code == 200 and view.json()["state"] == "handler_assigned"

    await eventually(handler_assigned, what="the handler assigned")
    await eventually(
        lambda: metric(http, stack, "sotong_notifications_held_for_contact_total"),
        what="resident messages held",
    )
    assert await metric(http, stack, "sotong_notifications_held_for_contact_total") >= 1
    assert stack.outbox_lines(cid, codes=True) == [code_line], "nothing but the code"

    wrong = f"{(int(found.group(1)) + 1) % 1_000_000:06d}"
    url = f"{stack.intake}/v1/complaints/{cid}/contact/confirm"
    headers = {"X-Tracking-Token": filed["tracking_token"]}
    refused = await http.post(url, json={"code": wrong}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "wrong_code"

    confirmed = await http.post(url, json={"code": found.group(1)}, headers=headers)
    again = await http.post(url, json={"code": found.group(1)}, headers=headers)
    assert confirmed.status_code == again.status_code == 200

    lines = await eventually(
        lambda: (x := stack.outbox_lines(cid)) and len(x) >= 3 and x,
        what="the three held messages",
    )
    assert [line["template_code"] for line in lines] == [
        "SOTONG_RECEIVED",
        "SOTONG_ASSIGNED",
        "SOTONG_HANDLER_ASSIGNED",
    ], "in lifecycle order"
    every = stack.outbox_lines(cid, codes=True)
    assert len({line["delivery_id"] for line in every}) == len(every) == 4, "each once"
    assert every[0] == code_line
