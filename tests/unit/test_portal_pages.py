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
from portal.chatbot.bot import Classification
from portal.clients import Similar
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


async def classify(text: str) -> Classification:
    """Routing, as the unit tier sees it: rubbish is 자원순환과's, with confidence."""
    if "쓰레기" in text or "소파" in text:
        return Classification("resource-circulation", 0.9, True)
    return Classification("civil-affairs", 0.3, False)


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
        classify=classify,
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
    # a phone to tell: intake sent it a code, and the receipt page asks for it (issue 11 §11)
    assert response.headers["location"] == f"/complaints/{filed.complaint_id}?filed=1&code=1"
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


async def filed_and_assigned(portal: Portal) -> str:
    await file(portal)
    filed = next(iter(portal.intake.by_ref.values()))
    portal.tracker.received(filed)
    portal.tracker.advance(
        filed.complaint_id,
        step(
            2,
            "handler_assigned",
            "assign_handler",
            department=WASTE.code,
            department_name=WASTE.name,
            handler=LEE,
        ),
        department=WASTE,
        handler=LEE,
    )
    return filed.complaint_id


async def test_withdraw_sends_the_resident_action_with_the_kept_token(portal: Portal) -> None:
    complaint_id = await filed_and_assigned(portal)
    page = await portal.client.get(f"/complaints/{complaint_id}")
    assert "민원 취하하기" in page.text
    assert "재민원 신청" not in page.text
    response = await portal.client.post(f"/complaints/{complaint_id}/withdraw", data={})
    assert response.status_code == 303
    assert response.headers["location"] == f"/complaints/{complaint_id}?done=withdraw"
    [action] = portal.intake.actions
    assert action == {
        "complaint_id": complaint_id,
        "action": "withdraw",
        "token": portal.intake.tokens[complaint_id],
        "note": None,
    }


async def test_an_info_request_is_answered_and_an_empty_answer_is_refused(
    portal: Portal,
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(
        complaint_id,
        step(
            3,
            "info_requested",
            "request_info",
            from_state="handler_assigned",
            note="건물 번호를 알려 주세요",
        ),
    )
    page = await portal.client.get(f"/complaints/{complaint_id}")
    assert "건물 번호를 알려 주세요" in page.text
    assert '<label for="answer">보완할 내용 답하기</label>' in page.text
    empty = await portal.client.post(f"/complaints/{complaint_id}/answer", data={"note": " "})
    assert empty.status_code == 422
    assert 'id="answer-error">내용을 적어 주세요.' in empty.text
    assert portal.intake.actions == []
    sent = await portal.client.post(
        f"/complaints/{complaint_id}/answer", data={"note": "청라커낼로 100"}
    )
    assert sent.status_code == 303
    assert portal.intake.actions[0]["action"] == "provide_info"
    assert portal.intake.actions[0]["note"] == "청라커낼로 100"


async def test_reopen_needs_a_reason_and_keeps_what_was_typed_on_refusal(
    portal: Portal,
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(complaint_id, step(3, "resolved", "resolve", note="수거 완료"))
    page = await portal.client.get(f"/complaints/{complaint_id}")
    assert "처리 결과: 수거 완료" in text(page.text)
    assert "재민원 신청" in page.text
    refused = await portal.client.post(f"/complaints/{complaint_id}/reopen", data={"note": ""})
    assert refused.status_code == 422
    portal.intake.tokens[complaint_id] = "another-token"  # intake will say 404
    kept = await portal.client.post(
        f"/complaints/{complaint_id}/reopen", data={"note": "아직 그대로예요"}
    )
    assert kept.status_code == 422
    assert "아직 그대로예요</textarea>" in kept.text
    assert "신청을 받지 못했어요: no such complaint" in kept.text


async def test_another_residents_complaint_cannot_be_acted_on(portal: Portal) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.client.cookies.clear()
    await file(portal, body="다른 주민의 민원")  # a second resident on this client
    response = await portal.client.post(f"/complaints/{complaint_id}/withdraw", data={})
    assert response.status_code == 404
    assert portal.intake.actions == []


async def test_home_for_a_newcomer_and_for_a_known_resident(portal: Portal) -> None:
    newcomer = await portal.client.get("/")
    shown = text(newcomer.text)
    for label in ("민원 신청", "내 민원", "대형폐기물 배출", "불법 주정차 신고"):
        assert label in shown
    assert "처리 중인 내 민원" not in shown
    assert "이런 메뉴는 어떠세요?" not in shown  # no history, no suggestions
    assert "즐겨찾기에 넣기" not in newcomer.text

    await file(portal, service="illegal-parking", body="골목에 차가 막고 있어요")
    filed = next(iter(portal.intake.by_ref.values()))
    portal.tracker.received(filed, title="주차 민원")
    known = await portal.client.get("/")
    shown = text(known.text)
    assert "처리 중인 내 민원" in shown
    assert "주차 민원" in shown
    assert "이런 메뉴는 어떠세요?" in shown
    assert "거주자 우선주차" in shown
    assert "주차 민원을 신청하셔서 보여 드려요" in shown


async def test_favourites_toggle_and_stay_with_the_resident(portal: Portal) -> None:
    await file(portal)
    star = {"path": "/chat?q=대형폐기물은 어떻게 버려요?", "label": "대형폐기물 배출", "back": "/"}
    added = await portal.client.post("/favourites", data=star)
    assert added.headers["location"] == "/"
    page = await portal.client.get("/favourites")
    assert "대형폐기물 배출" in text(page.text)
    home = await portal.client.get("/")
    assert "대형폐기물 배출 즐겨찾기에서 빼기" in home.text
    await portal.client.post("/favourites", data=star)
    assert "대형폐기물 배출" not in text((await portal.client.get("/favourites")).text)
    outside = await portal.client.post(
        "/favourites", data={"path": "https://evil.example/", "label": "x", "back": "//evil"}
    )
    assert outside.headers["location"] == "/"
    resident = next(iter(portal.intake.by_ref.values())).resident_token
    assert await portal.store.favourites(resident) == []


async def test_search_shows_menus_and_the_chatbots_answer(portal: Portal) -> None:
    page = await portal.client.get("/", params={"q": "이불 버리기"})
    shown = text(page.text)
    assert "‘이불 버리기’ 검색 결과" in shown
    assert "대형폐기물 배출 신고 안내입니다" in shown
    assert "대형폐기물 배출" in shown
    assert portal.chatbot.asked == ["이불 버리기"]


async def test_the_large_text_switch_is_remembered(portal: Portal) -> None:
    response = await portal.client.post("/text-size", data={"back": "/my"})
    assert response.headers["location"] == "/my"
    page = await portal.client.get("/my")
    assert '<html lang="ko" class="large">' in page.text
    assert 'aria-pressed="true">큰 글씨' in page.text
    await portal.client.post("/text-size", data={"back": "https://elsewhere/"})
    assert '<html lang="ko">' in (await portal.client.get("/my")).text


async def test_chat_answers_then_hands_off_to_a_filing(portal: Portal) -> None:
    answered = await portal.client.get("/chat", params={"q": "이불은 어떻게 버려요?"})
    assert "대형폐기물 배출 신고 안내입니다" in answered.text
    assert "담당자에게 민원으로 보낼까요?" not in answered.text
    history = re.search(r'name="history" value="([^"]*)"', answered.text)
    assert history is not None
    unknown = await portal.client.post(
        "/chat",
        data={"message": "축제 일정 알려줘", "history": history.group(1).replace("&#34;", '"')},
    )
    assert "담당자에게 민원으로 보낼까요?" in unknown.text
    assert ">축제 일정 알려줘</textarea>" in unknown.text
    handoff = dict(re.findall(r'name="(history|submission_id)" value="([^"]*)"', unknown.text))
    filed = await portal.client.post(
        "/chat/handoff",
        data={
            "body": "축제 일정 알려줘",
            "history": handoff["history"].replace("&#34;", '"'),
            "submission_id": handoff["submission_id"],
        },
    )
    assert filed.status_code == 303
    [body] = portal.intake.filings
    assert body["channel"] == "chatbot"
    assert body["body"] == "축제 일정 알려줘"
    turns = body["transcript"]
    assert [t["role"] for t in turns][-2:] == ["resident", "bot"]
    assert turns[-2]["text"] == "축제 일정 알려줘"
    assert COOKIE in filed.headers["set-cookie"]


async def test_asking_for_a_person_offers_the_handoff_even_after_an_answer(
    portal: Portal,
) -> None:
    page = await portal.client.post("/chat", data={"message": "이불 말고 상담원 연결해 주세요"})
    assert "대형폐기물 배출 신고 안내입니다" in page.text
    assert "담당자에게 민원으로 보낼까요?" in page.text
    assert "예상 담당 부서: <strong>자원순환과</strong>" in page.text


async def test_without_a_chatbot_the_chat_page_offers_to_file() -> None:
    app = create_app(
        PortalSettings(chatbot_enabled=False),
        intake=FakeIntake(),
        tracker=FakeTracker(),
        store=FakePortalStore(),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:
        page = await client.get("/chat", params={"q": "여권"})
    assert "상담 챗봇을 지금 쓸 수 없어요" in page.text
    assert "담당자에게 민원으로 보낼까요?" in page.text


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_photos_go_to_intake_and_the_filing_names_them(portal: Portal) -> None:
    form = await portal.client.get("/file")
    assert 'enctype="multipart/form-data"' in form.text
    assert '<label for="photos">사진 (선택, 3장까지)</label>' in form.text
    submission_id = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert submission_id is not None
    response = await portal.client.post(
        "/file",
        data={"submission_id": submission_id.group(1), "body": BODY},
        files=[("photos", ("쓰레기.png", PNG, "image/png"))],
    )
    assert response.status_code == 303
    [body] = portal.intake.filings
    [(photo_id, data)] = portal.intake.photos.items()
    assert (body["photos"], data) == ([photo_id], PNG)
    assert "attachments" not in body
    # the portal keeps and serves no photo itself (intake serves them to whom they belong)
    assert (await portal.client.get(f"/photos/{photo_id}")).status_code == 404


async def test_a_file_that_is_not_a_photo_is_refused_and_good_photos_are_kept(
    portal: Portal,
) -> None:
    form = await portal.client.get("/file")
    submission_id = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert submission_id is not None
    response = await portal.client.post(
        "/file",
        data={"submission_id": submission_id.group(1), "body": ""},
        files=[
            ("photos", ("a.png", PNG, "image/png")),
            ("photos", ("script.png", b"<script>alert(1)</script>", "image/png")),
        ],
    )
    assert response.status_code == 422
    assert 'id="photos-error">사진은 JPG, PNG, HEIC 파일만' in response.text
    assert "사진 1장이 첨부돼 있어요." in response.text
    kept = re.findall(r'name="photo" value="([^"]+)"', response.text)
    assert len(kept) == 1
    assert portal.intake.filings == []
    again = await portal.client.post(
        "/file",
        data={"submission_id": submission_id.group(1), "body": BODY, "photo": kept[0]},
    )
    assert again.status_code == 303
    assert portal.intake.filings[0]["photos"] == kept
    assert len(portal.intake.photos) == 1  # the kept photo was not uploaded again


async def test_an_unknown_address_is_a_korean_page(portal: Portal) -> None:
    page = await portal.client.get("/no/such/page")
    assert page.status_code == 404
    assert "페이지를 찾을 수 없어요" in page.text
    assert (await portal.client.get("/static/htmx.min.js")).status_code == 200
    assert (await portal.client.get("/healthz")).json()["service"] == "portal"


async def test_any_page_can_be_starred_without_what_just_happened(portal: Portal) -> None:
    response = await file(portal)
    complaint_id = next(iter(portal.intake.by_ref.values())).complaint_id
    page = await portal.client.get(response.headers["location"])
    assert f'name="path" value="/complaints/{complaint_id}"' in page.text
    receipt = next(iter(portal.intake.by_ref.values())).receipt_number
    assert f'name="label" value="접수번호 {receipt}"' in page.text
    assert 'aria-label="이 화면 즐겨찾기에 넣기"' in page.text
    await portal.client.post(
        "/favourites",
        data={"path": f"/complaints/{complaint_id}", "label": f"접수번호 {receipt}", "back": "/"},
    )
    starred = await portal.client.get(f"/complaints/{complaint_id}")
    assert 'aria-label="이 화면 즐겨찾기에서 빼기"' in starred.text
    assert f"접수번호 {receipt}" in text((await portal.client.get("/favourites")).text)


async def test_a_post_from_another_site_is_refused(portal: Portal) -> None:
    response = await portal.client.post("/forget", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 403
    same = await portal.client.post("/forget", headers={"Origin": "http://portal.test"})
    assert same.status_code == 303


def test_links_from_answers_are_web_or_local_only() -> None:
    from portal.handlers import safe_link

    assert safe_link("https://www.seo.incheon.kr/") == "https://www.seo.incheon.kr/"
    assert safe_link("/chat?q=여권") == "/chat?q=여권"
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("//evil.example/x") is None
    assert safe_link("data:text/html,x") is None


# -- '이미 접수된 민원이 있어요' -----------------------------------------------------------

CASE_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


async def start_filing(portal: Portal, **fields: str) -> httpx.Response:
    form = await portal.client.get("/file")
    submission_id = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert submission_id is not None
    return await portal.client.post(
        "/file", data={"submission_id": submission_id.group(1), "body": BODY} | fields
    )


async def test_an_open_case_like_it_is_offered_and_the_resident_joins_it(portal: Portal) -> None:
    portal.tracker.offers[("청라2동", "resource-circulation")] = [
        Similar(
            complaint_id=CASE_ID,
            state="handler_assigned",
            department_name="자원순환과",
            dong="청라2동",
            filed_on=T0.date(),
        )
    ]
    offered = await start_filing(portal, dong="청라2동", address="청라로 1", name="김민원")
    assert offered.status_code == 200
    assert portal.intake.filings == []  # nothing filed while the resident decides
    page = text(offered.text)
    assert "이미 접수된 민원이 있어요" in page
    assert "자원순환과 · 담당자 지정" in page
    assert "청라2동 · 2026년 12월 2일 접수" in page
    assert "청라로 1" not in page  # the other reporter's place is not shown
    carried = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', offered.text))
    assert (carried["body"], carried["address"], carried["name"]) == (BODY, "청라로 1", "김민원")

    joined = await portal.client.post("/file", data=carried | {"join": CASE_ID})
    assert joined.status_code == 303
    [body] = portal.intake.filings
    assert (body["joins"], body["body"], body["location"]["dong"]) == (CASE_ID, BODY, "청라2동")


async def test_the_resident_may_file_anew_and_nothing_is_offered_without_a_match(
    portal: Portal,
) -> None:
    portal.tracker.offers[("청라2동", "resource-circulation")] = [
        Similar(complaint_id=CASE_ID, state="assigned", dong="청라2동", filed_on=T0.date())
    ]
    offered = await start_filing(portal, dong="청라2동")
    carried = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', offered.text))
    anew = await portal.client.post("/file", data=carried | {"join": "new"})
    assert anew.status_code == 303
    assert "joins" not in portal.intake.filings[0]

    elsewhere = await start_filing(portal, dong="청라3동")  # no open case there
    assert elsewhere.status_code == 303
    unsure = await start_filing(portal, dong="청라2동", body="어디에 물어봐야 할지 모르겠어요")
    assert unsure.status_code == 303  # routing not confident: no department to look in
    assert portal.tracker.lookups == [
        ("청라2동", "resource-circulation"),
        ("청라3동", "resource-circulation"),
    ]
