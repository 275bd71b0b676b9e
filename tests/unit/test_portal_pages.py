"""The portal's pages driven in memory (httpx's ASGI transport): intake, tracker, the
store and the chatbot are the doubles in tests/fakes/portal.py. What a browser sees on
the real stack is tests/browser/test_portal_browser.py."""

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from portal.app import create_app
from portal.handlers import COOKIE
from portal.settings import PortalSettings
from tests.fakes.portal import (
    BULKY,
    LEE,
    T0,
    WASTE,
    FakeChatbot,
    FakeIntake,
    FakePortalStore,
    FakeTracker,
    step,
)

BODY = "집 앞에 일주일째 쓰레기봉투가 쌓여 있어요"


@dataclass
class Portal:
    client: httpx.AsyncClient
    intake: FakeIntake
    tracker: FakeTracker
    store: FakePortalStore
    chatbot: FakeChatbot


@pytest.fixture
async def portal() -> AsyncIterator[Portal]:
    intake, tracker, store = FakeIntake(), FakeTracker(), FakePortalStore()
    chatbot = FakeChatbot(answers={"이불": BULKY})
    app = create_app(
        PortalSettings(),
        intake=intake,
        tracker=tracker,
        store=store,
        chatbot=chatbot,
        clock=lambda: T0,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:
        yield Portal(client, intake, tracker, store, chatbot)


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def file(portal: Portal, **fields: str) -> httpx.Response:
    form = await portal.client.get("/file")
    submission_id = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert submission_id is not None
    data = {"submission_id": submission_id.group(1), "body": BODY} | fields
    return await portal.client.post("/file", data=data)


async def test_the_filing_form_has_labelled_controls(portal: Portal) -> None:
    page = await portal.client.get("/file")
    assert page.status_code == 200
    assert '<label for="body">민원 내용</label>' in page.text
    assert re.search(r'<textarea id="body" name="body"', page.text)
    assert ">민원 신청</button>" in page.text
    for dong in ("청라1동", "가정2동", "검암경서동"):
        assert f'<option value="{dong}"' in page.text


async def test_filing_sends_what_was_typed_and_remembers_the_resident(portal: Portal) -> None:
    response = await file(
        portal,
        title="쓰레기 방치",
        address="청라커낼로 100",
        dong="청라2동",
        name="김민원",
        phone="010-2222-3333",
        consent="on",
    )
    assert response.status_code == 303
    filed = next(iter(portal.intake.by_ref.values()))
    assert response.headers["location"] == f"/complaints/{filed.complaint_id}?filed=1"
    [body] = portal.intake.filings
    assert body["channel"] == "web"
    assert body["body"] == BODY
    assert body["title"] == "쓰레기 방치"
    assert body["location"] == {"address": "청라커낼로 100", "dong": "청라2동"}
    assert body["resident"] == {
        "name": "김민원",
        "phone": "010-2222-3333",
        "notification_consent": True,
    }
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={filed.resident_token};")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on this machine
    token = await portal.store.tracking_token(filed.resident_token, filed.complaint_id)
    assert token == filed.tracking_token


async def test_the_cookie_is_secure_behind_https(portal: Portal) -> None:
    form = await portal.client.get("/file")
    submission_id = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert submission_id is not None
    response = await portal.client.post(
        "/file",
        data={"submission_id": submission_id.group(1), "body": BODY},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in response.headers["set-cookie"]


async def test_the_receipt_page_shows_the_number_then_the_department(portal: Portal) -> None:
    response = await file(portal)
    page = await portal.client.get(response.headers["location"])
    filed = next(iter(portal.intake.by_ref.values()))
    assert page.status_code == 200
    assert f"접수번호 {filed.receipt_number}" in text(page.text)
    assert "담당 부서를 정하고 있어요" in text(page.text)  # tracker has not stored it yet

    portal.tracker.received(filed)
    portal.tracker.advance(
        filed.complaint_id,
        step(2, "assigned", "assign", department=WASTE.code, department_name=WASTE.name),
        department=WASTE,
    )
    portal.tracker.advance(
        filed.complaint_id,
        step(
            3,
            "handler_assigned",
            "assign_handler",
            department=WASTE.code,
            department_name=WASTE.name,
            handler=LEE,
        ),
        handler=LEE,
    )
    page = await portal.client.get(f"/complaints/{filed.complaint_id}")
    shown = text(page.text)
    assert "담당 부서: 자원순환과" in shown
    assert "담당자: 이지우 ( 032-560-5001 )" in shown
    assert "자원순환과 배정" in shown
    assert "담당자(이지우)가 정해졌습니다." in shown


async def test_a_second_tap_files_once(portal: Portal) -> None:
    form = await portal.client.get("/file")
    submission_id = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert submission_id is not None
    data = {"submission_id": submission_id.group(1), "body": BODY}
    first, second = await asyncio.gather(
        portal.client.post("/file", data=data), portal.client.post("/file", data=data)
    )
    assert len(portal.intake.filings) == 1
    assert first.headers["location"] == second.headers["location"]


async def test_errors_sit_next_to_their_fields_and_keep_the_input(portal: Portal) -> None:
    response = await file(portal, body="", title="제목은 남아요", phone="12345", dong="없는동")
    assert response.status_code == 422
    assert portal.intake.filings == []
    html = response.text
    assert '<p class="error" id="body-error">민원 내용을 적어 주세요.</p>' in html
    assert 'id="phone-error">전화번호를 010-1234-5678처럼 적어 주세요.' in html
    assert 'id="dong-error">목록에 있는 행정동을 골라 주세요.' in html
    assert 'value="제목은 남아요"' in html
    assert 'value="12345"' in html
    assert 'aria-describedby="body-hint body-error" aria-invalid="true"' in html


async def test_a_phone_needs_consent_and_consent_needs_a_phone(portal: Portal) -> None:
    response = await file(portal, phone="010-1234-5678")
    assert 'id="consent-error">알림을 받으려면' in response.text
    response = await file(portal, consent="on")
    assert 'id="phone-error">알림을 받을 전화번호를' in response.text
    assert portal.intake.filings == []


async def test_a_returning_resident_files_with_the_same_token(portal: Portal) -> None:
    await file(portal)
    await file(portal, body="가로등이 꺼져 있어요")
    first, second = portal.intake.filings
    assert "resident_token" not in first
    assert second["resident_token"] == next(iter(portal.intake.by_ref.values())).resident_token


async def test_a_cookie_intake_never_issued_files_as_a_newcomer(portal: Portal) -> None:
    portal.client.cookies.set(COOKIE, "x" * 32)
    response = await file(portal)
    assert response.status_code == 303
    [body] = portal.intake.filings
    assert "resident_token" not in body


async def test_a_service_code_from_the_menu_goes_with_the_filing(portal: Portal) -> None:
    page = await portal.client.get("/file?service=illegal-parking")
    assert "주차관리과" in text(page.text)
    await file(portal, service="illegal-parking")
    assert portal.intake.filings[0]["service_code"] == "illegal-parking"
    unknown = await portal.client.get("/file?service=nothing")
    assert "알 수 없는 민원 종류예요" in unknown.text


async def test_my_complaints_by_cookie_and_forgetting_the_device(portal: Portal) -> None:
    empty = await portal.client.get("/my")
    assert "처음 신청할 때부터 기억해요" in text(empty.text)
    await file(portal)
    filed = next(iter(portal.intake.by_ref.values()))
    pending = await portal.client.get("/my")
    assert f"접수번호 {filed.receipt_number}" in text(pending.text)
    portal.tracker.received(filed, title="쓰레기 방치")
    listed = await portal.client.get("/my")
    assert "쓰레기 방치" in text(listed.text)
    assert text(listed.text).count(filed.receipt_number) == 1

    forget = await portal.client.post("/forget")
    assert forget.status_code == 303
    assert f'{COOKIE}=""' in forget.headers["set-cookie"]
    after = await portal.client.get("/my")
    assert filed.receipt_number not in after.text


async def test_someone_elses_complaint_is_not_found(portal: Portal) -> None:
    await file(portal)
    filed = next(iter(portal.intake.by_ref.values()))
    portal.tracker.received(filed)
    portal.client.cookies.clear()
    page = await portal.client.get(f"/complaints/{filed.complaint_id}")
    assert page.status_code == 404
    assert "신청한 기기에서 볼 수 있어요" in text(page.text)
    assert filed.receipt_number not in page.text
