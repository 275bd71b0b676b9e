"""The chatbot's decisions and its KakaoTalk skill, with routing's classifier and intake's
filing replaced by in-memory stand-ins (the real ones: tests/service/test_chatbot_kakao.py)."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI

from portal.chatbot import (
    Chatbot,
    Classification,
    ClassifierUnavailable,
    CodeOutcome,
    Filing,
    FilingFailed,
    KakaoLimits,
    Receipt,
    Sessions,
    kakao_router,
)
from portal.chatbot.retrieval import Morphemes
from schemas.catalogue import catalogue
from services.ratelimit import Limits, Rate


@dataclass
class FakeRouting:
    """Answers like routing's classify: a department and whether it is sure."""

    answer: Classification | None = field(
        default_factory=lambda: Classification("resource-circulation", 0.93, True)
    )
    asked: list[str] = field(default_factory=list)
    hang: bool = False

    async def __call__(self, text: str) -> Classification:
        self.asked.append(text)
        if self.hang:
            await asyncio.Event().wait()
        if self.answer is None:
            raise ClassifierUnavailable("routing down")
        return self.answer


@dataclass
class FakeIntake:
    filings: list[Filing] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, filing: Filing) -> Receipt:
        if self.fail:
            raise FilingFailed("intake down")
        self.filings.append(filing)
        return Receipt(f"2026-{len(self.filings):06d}")


@pytest.fixture(scope="module")
def morphemes() -> Morphemes:
    return Morphemes()


@pytest.fixture
def routing() -> FakeRouting:
    return FakeRouting()


@pytest.fixture
def bot(routing: FakeRouting, morphemes: Morphemes) -> Chatbot:
    return Chatbot.load(classify=routing, morphemes=morphemes)


async def test_a_question_the_base_covers_gets_its_answer_owner_and_link(bot: Chatbot) -> None:
    reply = await bot.reply("이불은 어떻게 버려요?")

    assert reply.kind == "answer"
    assert reply.entry_id == "bulky-how"
    assert "대형폐기물" in reply.text
    assert "자원순환과 (032-560-5000)" in reply.text
    assert (reply.department, reply.department_name) == ("resource-circulation", "자원순환과")
    assert reply.links
    assert reply.links[0][1].startswith("https://")
    assert reply.suggestions[0] == "대형폐기물 수수료는 얼마인가요?"


async def test_where_to_buy_bags_typed_without_spaces_is_answered(bot: Chatbot) -> None:
    reply = await bot.reply("종량제봉투파는곳")

    assert (reply.kind, reply.entry_id) == ("answer", "bags-where")
    assert "판매소" in reply.text


async def test_a_question_the_base_does_not_cover_offers_the_department_routing_names(
    bot: Chatbot, routing: FakeRouting
) -> None:
    routing.answer = Classification("parking", 0.9, True)

    reply = await bot.reply("구청장 이름이 뭐예요?")

    assert reply.kind == "unknown"
    assert "주차관리과(032-560-5040)" in reply.text
    assert routing.asked == ["구청장 이름이 뭐예요?"]


async def test_without_a_sure_department_the_bot_shows_no_phone(
    bot: Chatbot, routing: FakeRouting
) -> None:
    routing.answer = Classification("civil-passport", 0.3, False)

    reply = await bot.reply("오늘 날씨 어때요?")

    assert reply.kind == "unknown"
    assert reply.department is None
    assert not any(d.office_phone in reply.text for d in catalogue().departments)
    assert "민원으로 접수" in reply.text


async def test_a_described_problem_is_handed_off_to_the_classifiers_department(
    bot: Chatbot, routing: FakeRouting
) -> None:
    text = "집 앞에 일주일째 쓰레기봉투가 쌓여 있어요"

    reply = await bot.reply(text)

    assert reply.kind == "handoff"
    assert (reply.department, reply.department_name) == ("resource-circulation", "자원순환과")
    assert reply.complaint_text == text
    assert "자원순환과" in reply.text


async def test_a_problem_routing_is_unsure_of_is_not_handed_off_as_a_complaint(
    bot: Chatbot, routing: FakeRouting
) -> None:
    routing.answer = Classification("civil-passport", 0.2, False)

    reply = await bot.reply("뭔가 좀 이상한 일이 있었어요")

    assert reply.kind == "unknown"


async def test_asking_for_a_person_hands_off(bot: Chatbot, routing: FakeRouting) -> None:
    routing.answer = Classification("civil-passport", 0.2, False)

    reply = await bot.reply("상담원 연결해줘")

    assert reply.kind == "handoff"
    assert reply.department == "civil-passport"  # routing's general desk below its threshold
    assert reply.complaint_text is None  # nothing to file yet: the front end asks for it


async def test_without_routing_the_bot_still_answers_and_hands_off_without_a_department(
    bot: Chatbot, routing: FakeRouting
) -> None:
    routing.answer = None

    assert (await bot.reply("여권 수수료 얼마예요?")).entry_id == "passport-fee"
    person = await bot.reply("직원 연결해 주세요")
    assert (person.kind, person.department) == ("handoff", None)
    unknown = await bot.reply("구청장 이름이 뭐예요?")
    assert (unknown.kind, unknown.department) == ("unknown", None)


async def test_an_empty_message_gets_an_example_question(bot: Chatbot) -> None:
    reply = await bot.reply("   \n ")

    assert reply.kind == "unknown"
    assert "종량제 봉투" in reply.text


# -- KakaoTalk ------------------------------------------------------------------------


def skill(utterance: str, user: str = "kakao-user-1") -> dict[str, object]:
    return {
        "intent": {"id": "fallback", "name": "폴백 블록"},
        "userRequest": {
            "utterance": utterance,
            "user": {"id": user, "type": "botUserKey", "properties": {}},
        },
        "bot": {"id": "bot", "name": "소통1번가"},
        "action": {"params": {}},
    }


@pytest.fixture
def intake() -> FakeIntake:
    return FakeIntake()


@pytest.fixture
def sessions() -> Sessions:
    return Sessions(b"test-secret", max_users=3, ttl_seconds=60)


@pytest.fixture
async def kakao(
    bot: Chatbot, intake: FakeIntake, sessions: Sessions
) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(kakao_router(bot, intake, sessions=sessions))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
        yield client


def said(answer: dict[str, object]) -> str:
    template = answer["template"]
    assert isinstance(template, dict)
    text: str = template["outputs"][0]["simpleText"]["text"]
    return text


def buttons(answer: dict[str, object]) -> list[str]:
    template = answer["template"]
    assert isinstance(template, dict)
    return [q["messageText"] for q in template["quickReplies"]]


async def test_kakao_gets_a_skill_answer_in_open_builders_format(kakao: httpx.AsyncClient) -> None:
    response = await kakao.post("/kakao/skill", json=skill("이불은 어떻게 버려요?"))

    assert response.status_code == 200
    answer = response.json()
    assert answer["version"] == "2.0"
    assert "대형폐기물" in said(answer)
    assert "https://" in said(answer)  # links travel in the text
    assert len(said(answer)) <= 1000
    for quick in answer["template"]["quickReplies"]:
        assert quick["action"] == "message"
        assert 1 <= len(quick["label"]) <= 14
        assert quick["messageText"]


async def test_a_kakao_complaint_is_filed_only_after_the_confirming_quick_reply(
    kakao: httpx.AsyncClient, intake: FakeIntake, sessions: Sessions
) -> None:
    offer = (
        await kakao.post("/kakao/skill", json=skill("집 앞에 일주일째 쓰레기봉투가 쌓여 있어요"))
    ).json()

    assert "자원순환과" in said(offer)
    assert buttons(offer) == ["네, 접수할게요", "아니요"]
    assert intake.filings == []

    filed = (await kakao.post("/kakao/skill", json=skill("네, 접수할게요"))).json()

    assert "접수번호: 2026-000001" in said(filed)
    [filing] = intake.filings
    assert filing.channel == "kakao"
    assert filing.text == "집 앞에 일주일째 쓰레기봉투가 쌓여 있어요"
    assert filing.department == "resource-circulation"
    assert [t.role for t in filing.transcript] == ["resident", "bot", "resident"]
    assert filing.transcript[0].text == filing.text
    assert filing.user_key_hash == sessions.key("kakao-user-1")
    assert "kakao-user-1" not in filing.user_key_hash
    assert "kakao-user-1" not in sessions.entries

    again = (await kakao.post("/kakao/skill", json=skill("네, 접수할게요"))).json()
    assert "접수를 기다리는 내용이 없어요" in said(again)
    assert len(intake.filings) == 1

    await kakao.post("/kakao/skill", json=skill("골목에 누가 냉장고를 버리고 갔어요 치워주세요"))
    await kakao.post("/kakao/skill", json=skill("네, 접수할게요"))
    second = intake.filings[1]
    assert second.text == "골목에 누가 냉장고를 버리고 갔어요 치워주세요"
    assert "쓰레기봉투" not in " ".join(t.text for t in second.transcript)  # the first one's
    assert second.offer_id != filing.offer_id


async def test_declining_the_offer_files_nothing(
    kakao: httpx.AsyncClient, intake: FakeIntake
) -> None:
    (await kakao.post("/kakao/skill", json=skill("골목에 누가 냉장고를 버리고 갔어요 치워주세요")))

    declined = (await kakao.post("/kakao/skill", json=skill("아니요"))).json()
    (await kakao.post("/kakao/skill", json=skill("네, 접수할게요")))

    assert "접수하지 않았어요" in said(declined)
    assert intake.filings == []


async def test_a_question_the_bot_cannot_answer_can_be_turned_into_a_complaint(
    kakao: httpx.AsyncClient, intake: FakeIntake, routing: FakeRouting
) -> None:
    routing.answer = Classification("civil-passport", 0.2, False)

    unknown = (await kakao.post("/kakao/skill", json=skill("출생신고 어떻게 해요?"))).json()
    assert buttons(unknown) == ["민원으로 접수해 주세요"]
    prompt = (await kakao.post("/kakao/skill", json=skill("민원으로 접수해 주세요"))).json()
    assert buttons(prompt) == ["네, 접수할게요", "아니요"]
    (await kakao.post("/kakao/skill", json=skill("네, 접수할게요")))

    [filing] = intake.filings
    assert filing.text == "출생신고 어떻게 해요?"


async def test_one_users_offer_is_not_anothers(
    kakao: httpx.AsyncClient, intake: FakeIntake
) -> None:
    (await kakao.post("/kakao/skill", json=skill("집 앞에 쓰레기가 쌓여 있어요", user="a")))

    other = (await kakao.post("/kakao/skill", json=skill("네, 접수할게요", user="b"))).json()

    assert "접수를 기다리는 내용이 없어요" in said(other)
    assert intake.filings == []


async def test_a_failed_filing_keeps_the_offer_to_try_again(
    kakao: httpx.AsyncClient, intake: FakeIntake
) -> None:
    (await kakao.post("/kakao/skill", json=skill("집 앞에 쓰레기가 쌓여 있어요")))
    intake.fail = True

    failed = (await kakao.post("/kakao/skill", json=skill("네, 접수할게요"))).json()
    intake.fail = False
    retried = (await kakao.post("/kakao/skill", json=skill("네, 접수할게요"))).json()

    assert "접수하지 못했어요" in said(failed)
    assert buttons(failed) == ["네, 접수할게요", "아니요"]
    assert "접수번호" in said(retried)


async def test_a_slow_answer_becomes_a_polite_apology_within_the_deadline(
    bot: Chatbot, routing: FakeRouting, intake: FakeIntake
) -> None:
    routing.hang = True
    app = FastAPI()
    app.include_router(kakao_router(bot, intake, deadline_seconds=0.05))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
        answer = (
            await client.post("/kakao/skill", json=skill("집 앞에 쓰레기가 쌓여 있어요"))
        ).json()

    assert "시간이 오래 걸리고" in said(answer)


async def test_a_payload_without_a_user_is_refused_naming_the_field(
    kakao: httpx.AsyncClient,
) -> None:
    response = await kakao.post("/kakao/skill", json={"userRequest": {"utterance": "안녕"}})

    assert response.status_code == 422
    assert "user" in response.text


def test_a_very_long_answer_is_cut_to_kakaos_limit() -> None:
    from portal.chatbot.kakao import skill_response

    answer = skill_response("가" * 1500, [("아주 긴 빠른 답장 버튼의 이름입니다", "x")])

    assert len(answer.template.outputs[0].simpleText.text) == 1000
    assert len(answer.template.quickReplies[0].label) == 14


def test_sessions_are_bounded_expire_and_keep_no_raw_user_id() -> None:
    now = [0.0]
    sessions = Sessions(b"k", max_users=2, ttl_seconds=10, clock=lambda: now[0])
    a, b, c = (sessions.key(u) for u in ("user-a", "user-b", "user-c"))

    sessions.get(a)
    sessions.get(b)
    sessions.get(c)
    assert list(sessions.entries) == [b, c]  # the least recently used went first

    now[0] = 11.0
    sessions.get(a)
    assert list(sessions.entries) == [a]  # the others expired
    assert Sessions(b"other").key("user-a") != a
    assert all("user" not in key for key in sessions.entries)


# The phone a resident types in KakaoTalk, confirmed with the code intake sends


@dataclass
class FakeIntakeWithCodes(FakeIntake):
    """Files as intake does for ``kakao`` (a code channel): a phone means a code is sent;
    the code entered is checked as intake's ``contact/confirm`` would."""

    code: str = "482913"
    tries: list[tuple[str, str, str, str]] = field(default_factory=list)
    resent: int = 0

    async def __call__(self, filing: Filing) -> Receipt:
        receipt = await super().__call__(filing)
        n = len(self.filings)
        return Receipt(
            receipt.receipt_number,
            complaint_id=f"c-{n}",
            tracking_token=f"tracking-token-{n}",
            code_pending=filing.phone is not None,
        )

    async def confirm(
        self, complaint_id: str, tracking_token: str, code: str, user_key_hash: str
    ) -> CodeOutcome:
        self.tries.append((complaint_id, tracking_token, code, user_key_hash))
        return CodeOutcome.CONFIRMED if code == self.code else CodeOutcome.WRONG

    async def resend(
        self, complaint_id: str, tracking_token: str, user_key_hash: str
    ) -> CodeOutcome:
        self.resent += 1
        return CodeOutcome.SENT


def skill_app(bot: Chatbot, intake: FakeIntakeWithCodes, **options: object) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(kakao_router(bot, intake, codes=intake, **options))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal")


async def test_a_phone_typed_in_kakao_is_filed_and_confirmed_with_the_code_in_the_chat(
    bot: Chatbot, sessions: Sessions
) -> None:
    intake = FakeIntakeWithCodes()
    async with skill_app(bot, intake, sessions=sessions) as kakao:

        async def say(text: str) -> dict[str, object]:
            answer: dict[str, object] = (await kakao.post("/kakao/skill", json=skill(text))).json()
            return answer

        offer = await say("집 앞에 일주일째 쓰레기봉투가 쌓여 있어요")
        assert "휴대전화 번호" in said(offer)  # asked for before filing, not required
        noted = await say("010 2345 6789")  # typed with spaces, as people do
        assert "010-****-6789" in said(noted)
        assert "2345" not in said(noted)
        assert buttons(noted) == ["네, 접수할게요", "아니요"]
        assert intake.filings == []  # a phone alone files nothing

        filed = await say("네, 접수할게요")
        [filing] = intake.filings
        assert filing.phone == "01023456789"
        assert "접수번호: 2026-000001" in said(filed)
        assert "인증번호 6자리" in said(filed)
        assert buttons(filed) == ["인증번호 다시 받기"]
        # the handler's transcript never holds the number
        assert all("2345" not in t.text for t in filing.transcript)
        assert any("010-****-6789" in t.text for t in filing.transcript)

        wrong = await say("111111")
        assert "맞지 않아요" in said(wrong)
        again = await say("인증번호 다시 받기")
        assert "다시 보냈어요" in said(again)
        assert intake.resent == 1
        right = await say("482913")
        assert "확인됐어요" in said(right)
        key = sessions.key("kakao-user-1")
        assert intake.tries == [
            ("c-1", "tracking-token-1", "111111", key),
            ("c-1", "tracking-token-1", "482913", key),
        ]
        # confirmed: six digits are an ordinary message again, not a code
        await say("123456")
        assert len(intake.tries) == 2
        session = sessions.entries[key]
        assert session.pending is None
        assert all(t.text not in ("111111", "482913") for t in session.turns)


async def test_without_a_phone_a_kakao_filing_asks_for_no_code(
    bot: Chatbot, sessions: Sessions
) -> None:
    intake = FakeIntakeWithCodes()
    async with skill_app(bot, intake, sessions=sessions) as kakao:
        await kakao.post(
            "/kakao/skill", json=skill("골목에 누가 냉장고를 버리고 갔어요 치워주세요")
        )
        filed = (await kakao.post("/kakao/skill", json=skill("네, 접수할게요"))).json()
        later = (await kakao.post("/kakao/skill", json=skill("482913"))).json()

    [filing] = intake.filings
    assert filing.phone is None
    assert "인증번호" not in said(filed)
    assert buttons(filed) == []
    assert intake.tries == []  # nothing pending: six digits went to the bot
    assert "확인됐어요" not in said(later)


async def test_over_its_limits_the_skill_still_answers_in_kakaos_format(
    bot: Chatbot, intake: FakeIntake, sessions: Sessions
) -> None:
    refused: list[str] = []
    limits = KakaoLimits(
        per_user=Limits.of([Rate(2, 60)]), overall=Limits.of([Rate(3, 60)]), refused=refused.append
    )
    app = FastAPI()
    app.include_router(kakao_router(bot, intake, sessions=sessions, limits=limits))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal") as kakao:
        first = [
            await kakao.post("/kakao/skill", json=skill("이불은 어떻게 버려요?", user="a"))
            for _ in range(3)
        ]
        other = await kakao.post("/kakao/skill", json=skill("이불은 어떻게 버려요?", user="b"))
        ceiling = await kakao.post("/kakao/skill", json=skill("이불은 어떻게 버려요?", user="c"))

    assert [r.status_code for r in first] == [200, 200, 200]  # Kakao shows no HTTP error
    over = first[2].json()
    assert over["version"] == "2.0"
    assert said(over) == "메시지가 너무 많이 들어오고 있어요. 잠시 후 다시 보내 주세요."
    assert "대형폐기물" in said(other.json())  # another user has a budget of their own
    assert said(ceiling.json()).startswith("메시지가 너무 많이")  # the skill's total is spent
    assert refused == ["kakao_user", "kakao_total"]
    # the refused user's conversation was not even looked up: nothing kept for "c"
    assert sessions.key("c") not in sessions.entries
