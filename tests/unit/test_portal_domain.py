"""The portal's pure parts: the parcel-style timeline, the menu search, suggestions from
behaviour, sealed tracking tokens, the chat handoff's filing body."""

import pytest

from portal import chat
from portal.clients import Complaint
from portal.handlers import sse_message
from portal.menu import menu
from portal.sealing import CannotUnseal, seal, unseal
from portal.suggestions import Behaviour, Rules, met, shipped, suggest
from portal.texts import texts
from portal.timeline import build
from tests.fakes.portal import LEE, T0, WASTE, step

ASSIGNED = step(2, "assigned", "assign", department=WASTE.code, department_name=WASTE.name)
HANDLER = step(
    3,
    "handler_assigned",
    "assign_handler",
    department=WASTE.code,
    department_name=WASTE.name,
    handler=LEE,
)


def complaint(*steps: object, **fields: object) -> Complaint:
    timeline = [step(1, "received", "receive"), *steps]
    return Complaint.model_validate(
        {
            "complaint_id": "c-1",
            "receipt_number": "261202-000001",
            "filed_at": T0,
            "state": timeline[-1].state,  # type: ignore[attr-defined]
            "timeline": [s.model_dump() for s in timeline],  # type: ignore[attr-defined]
            **fields,
        }
    )


def statuses(c: Complaint) -> list[str]:
    return [s.status for s in build(c, texts()).steps]


def test_six_steps_with_the_department_in_the_second() -> None:
    view = build(complaint(ASSIGNED, HANDLER, department=WASTE, handler=LEE), texts())
    assert [s.label for s in view.steps] == [
        "접수",
        "자원순환과 배정",
        "담당자 지정",
        "현장 확인",
        "심사",
        "처리 완료",
    ]
    assert statuses(complaint(ASSIGNED, HANDLER)) == [
        "done",
        "done",
        "current",
        "todo",
        "todo",
        "todo",
    ]
    assert view.steps[2].handler == LEE
    assert view.steps[0].at == "12월 2일 09:01"  # Korean time
    assert view.events[0].text == "담당자(이지우)가 정해졌습니다."
    assert view.can_withdraw
    assert not view.can_reopen


def test_a_review_without_site_check_skips_that_step_and_a_result_shows() -> None:
    review = step(4, "reviewing", "start_review", handler=LEE)
    resolve = step(5, "resolved", "resolve", handler=LEE, note="수거 완료")
    c = complaint(ASSIGNED, HANDLER, review, resolve)
    assert statuses(c) == ["done", "done", "done", "skipped", "done", "done"]
    view = build(c, texts())
    assert view.result == "수거 완료"
    assert view.can_reopen
    assert not view.can_withdraw
    assert (view.events[0].note_label, view.events[0].note) == ("처리 결과", "수거 완료")


def test_an_info_request_keeps_the_step_and_says_what_is_asked() -> None:
    ask = step(
        4,
        "info_requested",
        "request_info",
        from_state="handler_assigned",
        note="건물 번호를 알려 주세요",
    )
    view = build(complaint(ASSIGNED, HANDLER, ask), texts())
    assert view.info_request == "건물 번호를 알려 주세요"
    assert [s.status for s in view.steps][:3] == ["done", "done", "current"]
    assert view.state_text == "보완 요청"


def test_a_transfer_and_a_withdrawal_in_plain_korean() -> None:
    transfer = step(
        4,
        "assigned",
        "transfer",
        department="environment",
        department_name="환경보호과",
        note="악취는 환경보호과 소관",
    )
    withdraw = step(5, "withdrawn", "withdraw", actor="resident")
    view = build(complaint(ASSIGNED, HANDLER, transfer, withdraw), texts())
    assert view.ended
    assert not view.can_withdraw
    assert view.events[1].text.startswith("환경보호과로 이송됐습니다.")
    assert view.events[1].note_label == "이송 사유"
    assert "current" not in [s.status for s in view.steps]


def test_the_menu_search_finds_by_keyword_with_or_without_spaces() -> None:
    assert [i.id for i in menu().search("이불")][:1] == ["bulky-waste"]
    assert "illegal-parking" in [i.id for i in menu().search("불법주차 신고")]
    assert "street-light" not in [i.id for i in menu().search("이불")]
    assert menu().search("   ") == []


def test_suggestions_follow_the_rules_kept_as_data() -> None:
    rules = shipped()
    rules.check(menu())
    parking = met(rules, Behaviour("complaint", department="parking"))
    assert parking == ["after-parking"]
    bulky = met(rules, Behaviour("question", text="이불 버리는 법"))
    assert bulky == ["after-bulky-waste"]
    assert met(rules, Behaviour("question", department="parking")) == []  # complaints only
    moved = met(rules, Behaviour("question", text="이사 왔는데 뭐 해야 돼요"))
    assert moved == ["after-move-in"]
    shown = suggest(rules, menu(), ["after-parking", "after-bulky-waste"])
    assert [s.item.id for s in shown] == [
        "bulky-waste",
        "recycling",
        "illegal-parking",
        "resident-parking",
    ]
    assert suggest(rules, menu(), []) == []


def test_a_rule_naming_an_unknown_menu_item_is_refused() -> None:
    broken = Rules.model_validate(
        shipped().model_dump()
        | {
            "rules": [
                {
                    "id": "x",
                    "when": {
                        "sources": ["question"],
                        "departments": [],
                        "service_codes": [],
                        "keywords": ["x"],
                    },
                    "suggest": ["nothing"],
                    "reason": "x",
                }
            ]
        }
    )
    with pytest.raises(ValueError, match="unknown menu items"):
        broken.check(menu())


def test_a_sealed_token_opens_only_for_its_resident_and_complaint() -> None:
    sealed = seal("4lJrTOKENtoken_0123456789abcdefg", resident_token="r" * 32, complaint_id="c-1")
    assert "4lJr" not in sealed
    assert unseal(sealed, resident_token="r" * 32, complaint_id="c-1") == (
        "4lJrTOKENtoken_0123456789abcdefg"
    )
    for resident, complaint_id in (("s" * 32, "c-1"), ("r" * 32, "c-2")):
        with pytest.raises(CannotUnseal):
            unseal(sealed, resident_token=resident, complaint_id=complaint_id)


def test_a_handoff_files_the_residents_words_on_the_chatbot_channel() -> None:
    turns = [chat.Turn("resident", "축제 일정"), chat.Turn("bot", "잘 모르겠어요")]
    body = chat.handoff_filing(
        text="축제 일정",
        turns=turns,
        channel_ref="portal-chat-1",
        resident_token=None,
        transcript_accepted=False,
    )
    assert body == {
        "channel": "chatbot",
        "channel_ref": "portal-chat-1",
        "body": "축제 일정",
        "resident": {"notification_consent": False},
    }
    with_transcript = chat.handoff_filing(
        text="축제 일정",
        turns=turns,
        channel_ref="r",
        resident_token="t" * 20,
        transcript_accepted=True,
    )
    assert with_transcript["transcript"] == [
        {"role": "resident", "text": "축제 일정"},
        {"role": "bot", "text": "잘 모르겠어요"},
    ]
    assert with_transcript["resident_token"] == "t" * 20
    assert chat.wants_person("상담원 연결해 주세요")
    assert not chat.wants_person("이불은 어떻게 버려요?")


def test_an_sse_message_carries_every_line_of_the_html() -> None:
    assert sse_message("timeline", "<p>a</p>\n<p>b</p>") == (
        "event: timeline\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
    )
