"""The receipt page's 인증번호 field (issue 11 §11): after a web filing whose phone must be
confirmed, the page offers the code field, posts it to intake through portal/clients.py,
and says what intake answered, in Korean, next to the field."""

import re

import httpx

from tests.unit.test_portal_pages import Portal, file, portal, text

__all__ = ["portal"]  # the fixture, shared with the other page tests


async def filed_with_phone(portal: Portal) -> tuple[str, httpx.Response]:
    response = await file(portal, phone="010-2222-3333", consent="on")
    assert response.status_code == 303
    receipt = await portal.client.get(response.headers["location"])
    complaint_id = response.headers["location"].split("/")[2].split("?")[0]
    return complaint_id, receipt


async def test_a_filing_with_a_phone_asks_for_the_code_on_the_receipt_page(
    portal: Portal,
) -> None:
    complaint_id, receipt = await filed_with_phone(portal)

    assert receipt.status_code == 200
    assert '<label for="code">인증번호</label>' in receipt.text
    assert 'autocomplete="one-time-code"' in receipt.text
    assert f'action="/complaints/{complaint_id}/contact"' in receipt.text


async def test_a_filing_without_a_phone_is_not_asked_for_a_code(portal: Portal) -> None:
    response = await file(portal)
    receipt = await portal.client.get(response.headers["location"])

    assert "?filed=1" in response.headers["location"]
    assert "code=1" not in response.headers["location"]
    assert "인증번호" not in receipt.text


async def test_the_right_code_confirms_and_the_page_says_so(portal: Portal) -> None:
    complaint_id, _ = await filed_with_phone(portal)
    code = portal.intake.codes[complaint_id]

    response = await portal.client.post(f"/complaints/{complaint_id}/contact", data={"code": code})

    assert response.status_code == 303
    assert response.headers["location"] == f"/complaints/{complaint_id}?done=confirmed"
    assert portal.intake.confirmed == {complaint_id}
    page = await portal.client.get(response.headers["location"])
    assert "휴대전화가 확인됐어요" in text(page.text)
    assert 'for="code"' not in page.text


async def test_a_wrong_or_malformed_code_is_said_next_to_the_field(portal: Portal) -> None:
    complaint_id, _ = await filed_with_phone(portal)
    right = portal.intake.codes[complaint_id]
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    refused = await portal.client.post(f"/complaints/{complaint_id}/contact", data={"code": wrong})
    malformed = await portal.client.post(
        f"/complaints/{complaint_id}/contact", data={"code": "12a"}
    )

    assert refused.status_code == malformed.status_code == 422
    assert re.search(r'id="code-error">인증번호가 맞지 않아요', refused.text)
    assert 'aria-invalid="true" aria-describedby="code-error"' in refused.text
    assert "숫자 6자리" in malformed.text
    assert portal.intake.confirmed == set()


async def test_a_new_code_can_be_asked_for(portal: Portal) -> None:
    complaint_id, _ = await filed_with_phone(portal)

    response = await portal.client.post(f"/complaints/{complaint_id}/contact/code")

    assert response.status_code == 303
    assert portal.intake.resent == [complaint_id]
    page = await portal.client.get(response.headers["location"])
    assert "인증번호를 다시 보냈어요" in page.text
    assert 'for="code"' in page.text


async def test_someone_elses_complaint_cannot_be_confirmed(portal: Portal) -> None:
    complaint_id, _ = await filed_with_phone(portal)
    portal.client.cookies.clear()

    response = await portal.client.post(
        f"/complaints/{complaint_id}/contact", data={"code": portal.intake.codes[complaint_id]}
    )

    assert response.status_code == 404
    assert portal.intake.confirmed == set()


async def handoff(portal: Portal, **fields: str) -> httpx.Response:
    page = await portal.client.post("/chat", data={"message": "축제 일정 알려줘"})
    carried = dict(re.findall(r'name="(history|submission_id)" value="([^"]*)"', page.text))
    carried["history"] = carried["history"].replace("&#34;", '"')
    return await portal.client.post(
        "/chat/handoff", data=carried | {"body": "축제 일정 알려줘"} | fields
    )


async def test_a_chat_handoff_with_a_phone_asks_for_the_code_as_a_filing_does(
    portal: Portal,
) -> None:
    offered = await portal.client.post("/chat", data={"message": "축제 일정 알려줘"})
    assert '<label for="handoff-phone">휴대전화 (선택)</label>' in offered.text
    assert '<label for="handoff-consent">' in offered.text

    response = await handoff(portal, phone="010-2222-3333", consent="on")

    assert response.status_code == 303
    assert response.headers["location"].endswith("?filed=1&code=1")
    [body] = portal.intake.filings
    assert body["channel"] == "chatbot"
    assert body["resident"] == {"phone": "010-2222-3333", "notification_consent": True}
    complaint_id = response.headers["location"].split("/")[2].split("?")[0]
    receipt = await portal.client.get(response.headers["location"])
    assert '<label for="code">인증번호</label>' in receipt.text
    assert f'action="/complaints/{complaint_id}/contact"' in receipt.text


async def test_a_chat_handoff_without_a_phone_asks_for_no_code(portal: Portal) -> None:
    response = await handoff(portal)

    assert response.headers["location"].endswith("?filed=1")
    [body] = portal.intake.filings
    assert body["resident"] == {"notification_consent": False}


async def test_a_chat_handoffs_phone_is_checked_before_filing(portal: Portal) -> None:
    no_consent = await handoff(portal, phone="010-2222-3333")
    bad = await handoff(portal, phone="12345", consent="on")

    assert no_consent.status_code == bad.status_code == 422
    assert "알림을 받으려면 아래 동의에 표시해 주세요." in no_consent.text
    assert "전화번호를 010-1234-5678처럼 적어 주세요." in bad.text
    assert 'value="010-2222-3333"' in no_consent.text  # what was typed is kept
    assert portal.intake.filings == []
