"""다른 기기에서 내 민원 찾기 (issue 12): on a browser without the filer's cookie, the
receipt number and the code sent to the phone on file make the cookie list the complaints;
errors are said next to their field in Korean, and the page never tells whether a receipt
number exists."""

import re

from portal.handlers import COOKIE
from portal.recovery import receipt_of
from tests.unit.test_portal_pages import Portal, file, portal, text

__all__ = ["portal"]  # the fixture, shared with the other page tests


async def filed_elsewhere(portal: Portal, **fields: str) -> tuple[str, str]:
    """File on 'the old phone', then forget its cookie: (complaint id, receipt number)."""
    response = await file(portal, **fields)
    assert response.status_code == 303
    filed = list(portal.intake.by_ref.values())[-1]
    portal.tracker.received(filed, title="놀이터 그네 고장")
    portal.client.cookies.clear()
    return filed.complaint_id, filed.receipt_number


async def test_home_and_my_complaints_lead_to_the_recovery_page(portal: Portal) -> None:
    home = await portal.client.get("/")
    mine = await portal.client.get("/my")
    page = await portal.client.get("/recover")

    assert 'href="/recover"' in home.text
    assert 'href="/recover"' in mine.text
    assert page.status_code == 200
    assert '<label for="receipt">접수번호</label>' in page.text
    assert ">인증번호 받기</button>" in page.text


async def test_receipt_and_code_make_this_browser_list_the_complaint(portal: Portal) -> None:
    portal.intake.on_recover = portal.tracker.bind
    complaint_id, receipt = await filed_elsewhere(portal, phone="010-2222-3333", consent="on")

    asked = await portal.client.post("/recover", data={"receipt_number": receipt})
    assert asked.status_code == 200
    assert '<label for="code">인증번호</label>' in asked.text
    assert f'name="receipt_number" value="{receipt}"' in asked.text
    code = portal.intake.recovery_codes[receipt]

    confirmed = await portal.client.post(
        "/recover/confirm", data={"receipt_number": receipt, "code": code}
    )

    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/my?recovered=1"
    cookie = confirmed.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    mine = await portal.client.get(confirmed.headers["location"])
    assert "민원을 찾았어요" in text(mine.text)
    assert receipt in mine.text
    timeline = await portal.client.get(f"/complaints/{complaint_id}")
    assert timeline.status_code == 200
    # acting on it goes to intake with this browser's (bound) resident token
    withdrawn = await portal.client.post(f"/complaints/{complaint_id}/withdraw", data={})
    assert withdrawn.status_code == 303
    [action] = portal.intake.actions
    assert (action["action"], action["token"]) == ("withdraw", cookie.split(";")[0].split("=")[1])


async def test_an_unknown_receipt_looks_the_same_and_a_wrong_code_is_said_next_to_it(
    portal: Portal,
) -> None:
    _, receipt = await filed_elsewhere(portal, phone="010-2222-3333", consent="on")

    known = await portal.client.post("/recover", data={"receipt_number": receipt})
    unknown = await portal.client.post("/recover", data={"receipt_number": "261202-999999"})
    assert known.status_code == unknown.status_code == 200
    assert text(known.text).replace(receipt, "R") == text(unknown.text).replace(
        "261202-999999", "R"
    )

    right = portal.intake.recovery_codes[receipt]
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    refused = await portal.client.post(
        "/recover/confirm", data={"receipt_number": receipt, "code": wrong}
    )
    malformed = await portal.client.post(
        "/recover/confirm", data={"receipt_number": receipt, "code": "12a"}
    )

    assert refused.status_code == malformed.status_code == 422
    assert re.search(r'id="code-error">인증번호가 맞지 않거나 입력 시간이 지났어요', refused.text)
    assert 'aria-invalid="true"' in refused.text
    assert "숫자 6자리" in malformed.text
    assert COOKIE not in refused.headers.get("set-cookie", "")


async def test_a_malformed_receipt_number_is_said_next_to_the_field(portal: Portal) -> None:
    response = await portal.client.post("/recover", data={"receipt_number": "26-1202"})

    assert response.status_code == 422
    assert re.search(r'id="receipt-error">접수번호를 261202-123456처럼', response.text)
    assert 'value="26-1202"' in response.text  # what was typed stays
    assert portal.intake.recovery_asks == []


def test_a_receipt_number_typed_without_its_hyphen_or_with_spaces_is_read() -> None:
    assert receipt_of(" 261202123456 ") == "261202-123456"
    assert receipt_of("261202 - 123456") == "261202-123456"
    assert receipt_of("26-1202") == "26-1202"


async def test_too_many_requests_are_said_in_korean(portal: Portal) -> None:
    for _ in range(5):
        await portal.client.post("/recover", data={"receipt_number": "261202-000001"})
    limited = await portal.client.post("/recover", data={"receipt_number": "261202-000001"})

    assert limited.status_code == 429
    assert "요청이 너무 잦아요" in text(limited.text)
