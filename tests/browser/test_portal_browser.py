"""A resident on a phone, on the real stack: file in one screen, read the receipt number,
watch the timeline move while the department acts through the API, come back with the
cookie, answer a 보완 요청, correct the 행정동 and see a new handler, rate the result, keep
favourites, and the chat page's handoff to a filing.

Every page is checked by axe-core (no serious or critical violation), for horizontal
scrolling at 360 px, and photographed at 390×844 into docs/screenshots/."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, FilePayload, Page, expect

from portal.app import create_app
from portal.settings import PortalSettings
from tests.browser.conftest import (
    API_KEYS,
    PHONE,
    InProcessServer,
    Stack,
    accessible,
    fits_narrow_phone,
    screenshot,
    wait_until,
)
from tests.fakes.portal import BULKY, FakeChatbot

# the first test pays for starting the stack (and the classifier's warm-up)
pytestmark = pytest.mark.timeout(300)

BODY = "집 앞에 일주일째 쓰레기봉투가 쌓여 있어요"
RECEIPT = re.compile(r"접수번호\s*(\d{6}-\d{6})")
TRACKING = re.compile(r"진행 상황: http://127\.0\.0\.1:8005(/complaints/[0-9a-f-]+)")
CODE = re.compile(r"인증번호는 ([0-9]{6})입니다")
RECOVERY_CODE = re.compile(r"민원을 찾는 인증번호는 ([0-9]{6})입니다")


def checked(page: Page, name: str) -> None:
    accessible(page, name)
    fits_narrow_phone(page, name)
    screenshot(page, name)


def file_complaint(page: Page, stack: Stack, body: str = BODY, **fields: str) -> str:
    page.goto(f"{stack.portal}/file")
    page.get_by_label("민원 내용").fill(body)
    if "dong" in fields:
        page.get_by_label("행정동").select_option(fields["dong"])
    page.get_by_role("button", name="민원 신청", exact=True).click()
    expect(page.get_by_role("heading", name="민원이 접수됐습니다")).to_be_visible()
    return page.url.split("/complaints/")[1].split("?")[0]


def receipt_of(page: Page) -> str:
    found = RECEIPT.search(page.locator("main").inner_text())
    assert found, page.locator("main").inner_text()
    return found.group(1)


def test_file_in_one_screen_and_watch_it_move_live(stack: Stack, phone: BrowserContext) -> None:
    page = phone.new_page()
    page.goto(f"{stack.portal}/file")
    expect(page.get_by_role("heading", name="민원 신청")).to_be_visible()
    page.get_by_label("민원 내용").fill(BODY)
    page.get_by_label("행정동").select_option("청라2동")
    photo = page.screenshot(type="png")  # any real PNG will do
    page.get_by_label("사진 (선택, 3장까지)").set_input_files(
        files=[FilePayload(name="쓰레기.png", mimeType="image/png", buffer=photo)]
    )
    page.get_by_label("이름").fill("김민원")
    page.get_by_label("휴대전화").fill("010-2222-3333")
    page.get_by_label("진행 상황을 문자·알림톡으로 받겠습니다").check()
    checked(page, "file")

    page.get_by_role("button", name="민원 신청", exact=True).click()
    expect(page.get_by_role("heading", name="민원이 접수됐습니다")).to_be_visible()
    receipt = receipt_of(page)
    complaint_id = page.url.split("/complaints/")[1].split("?")[0]

    # the phone is confirmed with the code the notifier sent to it (issue 11 §11)
    codes = wait_until(
        lambda: [m for t in stack.outbox_texts(complaint_id) for m in CODE.findall(t)],
        within=60,
        what="a contact code in the outbox",
    )
    checked(page, "contact-code")
    page.get_by_label("인증번호").fill(codes[0])
    page.get_by_role("button", name="확인", exact=True).click()
    expect(page.get_by_text("휴대전화가 확인됐어요")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    # routing assigns it; the page learns it over SSE, without a reload
    progress = page.locator("#progress")
    expect(progress).to_contain_text("담당 부서: 자원순환과", timeout=60_000)
    expect(progress).to_contain_text("담당자:", timeout=60_000)
    expect(page.get_by_text("민원 취하하기")).to_be_visible()  # the actions arrive live too
    assert page.evaluate("window.__notReloaded") is True
    assert receipt_of(page) == receipt
    checked(page, "receipt")

    stack.act(
        complaint_id, "resource-circulation", action="start_site_check", note="내일 오전 현장 방문"
    )
    expect(progress).to_contain_text("현장 확인 중", timeout=30_000)
    expect(progress).to_contain_text("내일 오전 현장 방문")
    stack.act(
        complaint_id,
        "resource-circulation",
        action="transfer",
        to_department="environment",
        note="악취는 환경보호과 소관입니다",
    )
    expect(progress).to_contain_text("환경보호과로 이송됐습니다", timeout=30_000)
    expect(progress).to_contain_text("이송 사유: 악취는 환경보호과 소관입니다")
    assert page.evaluate("window.__notReloaded") is True
    checked(page, "timeline")

    # the link in what the notifier sent lands on this timeline
    links = wait_until(
        lambda: [m for t in stack.outbox_texts(complaint_id) for m in TRACKING.findall(t)],
        within=60,
        what="a tracking link in the outbox",
    )
    assert links[0] == f"/complaints/{complaint_id}"
    page.goto(f"{stack.portal}{links[0]}")
    assert receipt_of(page) == receipt
    expect(page.locator("#progress")).to_contain_text("환경보호과")


def test_errors_beside_fields_and_one_filing_for_a_double_tap(
    stack: Stack, phone: BrowserContext
) -> None:
    page = phone.new_page()
    page.goto(f"{stack.portal}/file")
    page.get_by_label("제목 (선택)").fill("남아 있어야 할 제목")
    page.get_by_label("휴대전화").fill("12345")
    page.get_by_role("button", name="민원 신청", exact=True).click()
    expect(page.locator("#body-error")).to_have_text("민원 내용을 적어 주세요.")
    expect(page.locator("#phone-error")).to_contain_text("010-1234-5678")
    expect(page.get_by_label("제목 (선택)")).to_have_value("남아 있어야 할 제목")
    expect(page.get_by_label("휴대전화")).to_have_value("12345")
    checked(page, "file-errors")

    page.get_by_label("민원 내용").fill("가로등이 사흘째 꺼져 있어요")
    page.get_by_label("휴대전화").fill("")
    page.get_by_role("button", name="민원 신청", exact=True).dblclick()
    expect(page.get_by_role("heading", name="민원이 접수됐습니다")).to_be_visible()
    page.goto(f"{stack.portal}/my")
    expect(page.locator("main")).to_contain_text("접수번호")
    assert page.locator("main").inner_text().count("접수번호") == 1


def test_come_back_on_the_same_phone_and_forget_it(stack: Stack, phone: BrowserContext) -> None:
    page = phone.new_page()
    complaint_id = file_complaint(page, stack, "공원 놀이터 그네가 부서졌어요")
    receipt = receipt_of(page)
    cookie = next(c for c in phone.cookies() if c["name"] == "sotong_resident")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"

    again = phone.new_page()  # a new page: only the cookie carries the resident
    again.goto(f"{stack.portal}/my")
    expect(again.locator("main")).to_contain_text(receipt)
    checked(again, "my")
    again.goto(f"{stack.portal}/")
    expect(again.get_by_role("heading", name="처리 중인 내 민원")).to_be_visible()

    stranger = phone.browser
    assert stranger is not None
    other = stranger.new_context(viewport=PHONE)
    try:
        elsewhere = other.new_page()
        elsewhere.goto(f"{stack.portal}/complaints/{complaint_id}")
        expect(elsewhere.get_by_role("heading", name="민원을 찾을 수 없어요")).to_be_visible()
        assert receipt not in elsewhere.content()
    finally:
        other.close()

    again.goto(f"{stack.portal}/my")
    again.get_by_role("button", name="이 기기에서 로그아웃").click()
    expect(again.get_by_text("이 기기에서 로그아웃했어요")).to_be_visible()
    assert receipt not in again.locator("main").inner_text()


def test_find_ones_complaint_on_another_phone_with_the_receipt_and_a_code(
    stack: Stack, phone: BrowserContext
) -> None:
    """Issue 12: filed on one phone (with its number), found on another with the receipt
    number and the code the notifier sent to the number on file."""
    old = phone.new_page()
    old.goto(f"{stack.portal}/file")
    old.get_by_label("민원 내용").fill("버스정류장 의자가 부서졌어요")
    old.get_by_label("휴대전화").fill("010-4444-5555")
    old.get_by_label("진행 상황을 문자·알림톡으로 받겠습니다").check()
    old.get_by_role("button", name="민원 신청", exact=True).click()
    expect(old.get_by_role("heading", name="민원이 접수됐습니다")).to_be_visible()
    receipt = receipt_of(old)
    complaint_id = old.url.split("/complaints/")[1].split("?")[0]

    browser = phone.browser
    assert browser is not None
    new_phone = browser.new_context(viewport=PHONE, locale="ko-KR", timezone_id="Asia/Seoul")
    new_phone.set_default_timeout(20_000)
    try:
        page = new_phone.new_page()
        page.goto(f"{stack.portal}/my")
        page.get_by_role("link", name="다른 기기에서 내 민원 찾기").click()
        page.get_by_label("접수번호").fill("26-12")
        page.get_by_role("button", name="인증번호 받기").click()
        expect(page.locator("#receipt-error")).to_contain_text("261202-123456처럼")
        page.get_by_label("접수번호").fill(receipt)
        page.get_by_role("button", name="인증번호 받기").click()
        expect(page.get_by_text("인증번호를 보냈어요")).to_be_visible()
        codes = wait_until(
            lambda: [m for t in stack.outbox_texts(complaint_id) for m in RECOVERY_CODE.findall(t)],
            within=60,
            what="a recovery code in the outbox",
        )
        page.get_by_label("인증번호").fill(codes[-1])
        checked(page, "recover")
        wrong = f"{(int(codes[-1]) + 1) % 1_000_000:06d}"
        page.get_by_label("인증번호").fill(wrong)
        page.get_by_role("button", name="내 민원 찾기").click()
        expect(page.locator("#code-error")).to_contain_text("인증번호가 맞지 않거나")
        page.get_by_label("인증번호").fill(codes[-1])
        page.get_by_role("button", name="내 민원 찾기").click()

        expect(page.get_by_text("민원을 찾았어요")).to_be_visible()
        expect(page.locator("main")).to_contain_text(receipt)
        accessible(page, "recovered")
        page.goto(f"{stack.portal}/complaints/{complaint_id}")
        assert receipt_of(page) == receipt
        cookie = next(c for c in new_phone.cookies() if c["name"] == "sotong_resident")
        assert cookie["httpOnly"] is True
    finally:
        new_phone.close()
    # the old phone still lists it
    old.goto(f"{stack.portal}/my")
    expect(old.locator("main")).to_contain_text(receipt)


def test_answer_an_info_request_then_withdraw(stack: Stack, phone: BrowserContext) -> None:
    page = phone.new_page()
    complaint_id = file_complaint(page, stack)
    expect(page.locator("#progress")).to_contain_text("담당자:", timeout=60_000)
    stack.act(
        complaint_id,
        "resource-circulation",
        action="request_info",
        note="정확한 건물 번호를 알려 주세요",
    )
    expect(page.locator("#progress")).to_contain_text("보완을 요청했어요", timeout=30_000)
    page.get_by_role("button", name="보완 내용 보내기").click()
    expect(page.locator("#answer-error")).to_have_text("내용을 적어 주세요.")
    page.get_by_label("보완할 내용 답하기").fill("청라커낼로 100번지 앞입니다")
    page.get_by_role("button", name="보완 내용 보내기").click()
    expect(page.get_by_text("보완 내용을 보냈어요.")).to_be_visible()
    expect(page.locator("#progress")).to_contain_text(
        "보낸 내용: 청라커낼로 100번지 앞입니다", timeout=30_000
    )
    checked(page, "info-answered")

    page.get_by_text("민원 취하하기").click()
    page.get_by_role("button", name="취하하기").click()
    expect(page.locator("#progress")).to_contain_text("지금 단계: 취하", timeout=30_000)


def test_correct_the_dong_see_a_new_handler_then_rate(stack: Stack, phone: BrowserContext) -> None:
    page = phone.new_page()
    complaint_id = file_complaint(
        page, stack, "아파트 분리수거장 옆에 헌 소파가 버려져 있어요", dong="청라2동"
    )
    progress, actions = page.locator("#progress"), page.locator("#actions")
    expect(progress).to_contain_text("담당 부서: 자원순환과", timeout=60_000)
    expect(progress).to_contain_text("담당자: 이지우", timeout=60_000)  # 청라2동's handler

    page.get_by_text("접수 내용 정정하기").click()
    page.get_by_label("행정동").select_option("청라3동")
    page.get_by_label("주소 (바뀐 경우에만)").fill("인천 서구 청라라임로 77")
    photo = page.screenshot(type="png")  # any real PNG will do
    page.get_by_label("사진 추가 (선택, 3장 더 올릴 수 있어요)").set_input_files(
        files=[FilePayload(name="소파.png", mimeType="image/png", buffer=photo)]
    )
    page.get_by_role("button", name="정정 내용 보내기").click()
    expect(page.get_by_text("정정 내용을 보냈어요.")).to_be_visible()
    expect(progress).to_contain_text("접수 내용을 정정했습니다.", timeout=30_000)
    expect(progress).to_contain_text("정정한 항목: 주소, 행정동(청라3동), 사진 추가(1장)")
    expect(actions).to_contain_text("사진 추가 (선택, 2장 더 올릴 수 있어요)")
    expect(progress).to_contain_text("담당자가 바뀌었습니다.", timeout=30_000)
    expect(progress).to_contain_text("담당자: 조현우")  # 청라3동's, same department
    expect(progress).to_contain_text("담당 부서: 자원순환과")
    checked(page, "corrected")

    stack.act(complaint_id, "resource-circulation", action="start_site_check")
    expect(actions).to_contain_text("이제는 이 화면에서 정정할 수 없어요", timeout=30_000)
    expect(actions).to_contain_text("담당자 조현우")
    expect(page.get_by_text("접수 내용 정정하기")).to_have_count(0)

    stack.act(complaint_id, "resource-circulation", action="resolve", note="수거했습니다")
    expect(page.get_by_text("처리 결과에 얼마나 만족하시나요?")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="평가 보내기").click()
    expect(page.locator("#rating-error")).to_have_text("만족도를 1점부터 5점 사이에서 골라 주세요.")
    # by keyboard: focus the first choice (5점), move down one to 4점
    page.get_by_label("5점 · 매우 만족").focus()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_label("4점 · 만족")).to_be_checked()
    page.get_by_label("의견 (선택)").fill("빨리 치워 주셔서 고맙습니다")
    page.get_by_role("button", name="평가 보내기").click()
    expect(page.get_by_text("평가를 보냈어요.")).to_be_visible()
    expect(actions).to_contain_text("이번 처리 결과에 4점을 주셨어요.", timeout=30_000)
    expect(progress).to_contain_text("만족도: 4점 · 빨리 치워 주셔서 고맙습니다")
    expect(progress).to_contain_text("처리 결과: 수거했습니다")
    checked(page, "rated")


def test_home_search_favourites_and_large_text(stack: Stack, phone: BrowserContext) -> None:
    page = phone.new_page()
    page.goto(f"{stack.portal}/")
    expect(page.get_by_role("link", name=re.compile("대형폐기물 배출"))).to_be_visible()
    checked(page, "home-new")

    file_complaint(page, stack, "골목에 불법 주차된 차 때문에 못 지나가요")
    page.goto(f"{stack.portal}/")
    suggested = page.get_by_role("region", name="이런 메뉴는 어떠세요?")
    expect(suggested).to_contain_text("거주자 우선주차")
    page.get_by_role("button", name="대형폐기물 배출 즐겨찾기에 넣기").first.click()
    page.get_by_role("link", name="즐겨찾기 열기").click()
    expect(page.locator("main")).to_contain_text("대형폐기물 배출")
    checked(page, "favourites")

    page.goto(f"{stack.portal}/?q=이불")
    expect(page.get_by_role("heading", name="‘이불’ 검색 결과")).to_be_visible()
    expect(page.locator("main")).to_contain_text("대형폐기물 배출")
    page.get_by_role("button", name="큰 글씨").click()
    expect(page.get_by_role("button", name="큰 글씨")).to_have_attribute("aria-pressed", "true")
    checked(page, "home-large-text")


@pytest.fixture(scope="module")
def chat_portal(stack: Stack) -> Iterator[InProcessServer]:
    """The portal with a chatbot double (the real bot is portal.chatbot), filing through
    the real intake and reading the real tracker."""
    settings = PortalSettings.model_validate(
        {
            "intake_url": stack.intake,
            "tracker_url": stack.tracker,
            "mongo": {
                "uri": stack.env["SOTONG_MONGO_URI"],
                "database": stack.env["SOTONG_MONGO_DATABASE"],
            },
        }
    )
    app = create_app(settings, chatbot=FakeChatbot(answers={"이불": BULKY}))
    with InProcessServer(app) as server:
        yield server


def test_chat_answers_and_hands_off_to_a_filed_complaint(
    chat_portal: InProcessServer, stack: Stack, phone: BrowserContext
) -> None:
    page = phone.new_page()
    page.goto(f"{chat_portal.url}/chat")
    page.get_by_label("질문").fill("이불은 어떻게 버려요?")
    page.get_by_role("button", name="보내기").click()
    expect(page.locator(".chat")).to_contain_text("대형폐기물 배출 신고 안내")
    checked(page, "chat")

    page.get_by_label("질문").fill("우리 동네 축제 일정 알려줘")
    page.get_by_role("button", name="보내기").click()
    expect(page.get_by_role("heading", name="담당자에게 민원으로 보낼까요?")).to_be_visible()
    expect(page.get_by_label("민원 내용")).to_have_value("우리 동네 축제 일정 알려줘")
    page.get_by_label("휴대전화 (선택)").fill("010-4444-5555")
    page.get_by_label("진행 상황을 문자·알림톡으로 받겠습니다").check()
    checked(page, "chat-handoff")
    page.get_by_role("button", name="이 내용으로 민원 신청").click()
    expect(page.get_by_role("heading", name="민원이 접수됐습니다")).to_be_visible()
    assert RECEIPT.search(page.locator("main").inner_text())

    # the handoff relays a typed phone as the filing form does: it is confirmed with a code
    complaint_id = page.url.split("/complaints/")[1].split("?")[0]
    codes = wait_until(
        lambda: [m for t in stack.outbox_texts(complaint_id) for m in CODE.findall(t)],
        within=60,
        what="a contact code for the chat handoff's phone in the outbox",
    )
    page.get_by_label("인증번호").fill(codes[0])
    page.get_by_role("button", name="확인", exact=True).click()
    expect(page.get_by_text("휴대전화가 확인됐어요")).to_be_visible()


def test_filing_with_the_keyboard_alone(stack: Stack, phone: BrowserContext) -> None:
    page = phone.new_page()
    page.goto(f"{stack.portal}/file")
    for _ in range(30):  # Tab from the top of the page to the complaint text
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "body":
            break
    assert page.evaluate("document.activeElement.id") == "body"
    page.keyboard.type("횡단보도 신호등이 고장 났어요")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "submit":
            break
    assert page.evaluate("document.activeElement.id") == "submit"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="민원이 접수됐습니다")).to_be_visible()
    assert RECEIPT.search(page.locator("main").inner_text())


def test_an_open_case_at_the_same_place_is_offered_and_joined(
    stack: Stack, phone: BrowserContext
) -> None:
    page = phone.new_page()
    first = file_complaint(page, stack, BODY, dong="청라3동")
    page.goto(f"{stack.portal}/complaints/{first}")
    expect(page.locator("#progress")).to_contain_text("담당자:", timeout=60_000)

    page.goto(f"{stack.portal}/file")
    page.get_by_label("민원 내용").fill(BODY)
    page.get_by_label("행정동").select_option("청라3동")
    page.get_by_role("button", name="민원 신청", exact=True).click()
    expect(page.get_by_role("heading", name="이미 접수된 민원이 있어요")).to_be_visible()
    expect(page.get_by_role("listitem")).to_contain_text("자원순환과")
    checked(page, "similar")

    page.get_by_role("button", name="이 민원에 함께하기").first.click()
    expect(page.get_by_text("민원이 접수됐습니다")).to_be_visible()
    joined = page.url.split("/complaints/")[1].split("?")[0]
    assert joined != first

    def linked() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{stack.tracker}/v1/staff/complaints/{joined}",
            headers={"X-Api-Key": API_KEYS["resource-circulation"]},
            timeout=10,
        )
        found: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        return found if found.get("linked_to") else None

    view = wait_until(linked, within=60, what="the joined complaint linked to the case")
    assert view["linked_to"]["complaint_id"] == first
