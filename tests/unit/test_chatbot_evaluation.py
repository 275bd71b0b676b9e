"""What ``sotong chatbot-eval`` reports and how it tunes, on cases whose outcome is known."""

import pytest

from portal.chatbot import ChatbotSettings, Classification, Thresholds
from portal.chatbot.bot import Reading
from portal.chatbot.evaluation import Case, Observed, evaluate, tune
from portal.chatbot.retrieval import Hit

SURE = Classification("parking", 0.9, True)


def seen(text: str, expect: str, key: str, score: float, *, statement: bool = False) -> Observed:
    reading = Reading(person=False, statement=statement, best=Hit(key, score, score, score))
    return Observed(Case(text=text, expect=expect), reading, SURE)


CASES = [
    seen("봉투 어디서 사요", "bags-where", "bags-where", 0.8),
    seen("봉투 값", "bags-price", "bags-price", 0.5),
    seen("봉투 종류", "bags-types", "bags-price", 0.45),  # ranked wrong
    seen("날씨 어때요", "unknown", "bags-where", 0.2),
    seen("구청장 누구", "unknown", "bags-price", 0.35),  # looks answerable, is not
    seen("차가 막고 있어요", "handoff", "parking-report", 0.3, statement=True),
]


async def test_the_report_counts_right_wrong_unknown_and_handed_off() -> None:
    report = await evaluate(CASES, Thresholds(answer=0.3, statement=0.65))

    assert report.top1 == pytest.approx(2 / 3)
    assert report.retrieval_top1 == pytest.approx(2 / 3)
    assert report.wrong_answer == pytest.approx(1 / 3)
    assert report.false_answer == pytest.approx(1 / 2)
    assert report.dont_know == pytest.approx(1 / 6)
    assert report.handed_off == 1.0
    assert "top-1 accuracy (answerable):        0.667" in report.lines()


async def test_a_higher_threshold_trades_answers_for_dont_know() -> None:
    report = await evaluate(CASES, Thresholds(answer=0.6, statement=0.65))

    assert report.top1 == pytest.approx(1 / 3)
    assert report.false_answer == 0.0
    assert report.dont_know_answerable == pytest.approx(2 / 3)


async def test_tuning_picks_the_middle_of_the_best_range() -> None:
    report = await tune(CASES, Thresholds())

    # 0.46 to 0.50 answer both right ones (0.5, 0.8) and neither the wrong-ranked one
    # (0.45) nor the uncovered one (0.35): the middle of that range is 0.48.
    assert report.thresholds.answer == pytest.approx(0.48)
    assert (report.top1, report.wrong_answer, report.false_answer) == (2 / 3, 0.0, 0.0)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOTONG_CHATBOT_ANSWER_THRESHOLD", "0.5")
    monkeypatch.setenv("SOTONG_CHATBOT_KAKAO_DEADLINE_SECONDS", "4.5")

    settings = ChatbotSettings()

    assert settings.thresholds.answer == 0.5
    assert settings.thresholds.statement == Thresholds().statement
    monkeypatch.setenv("SOTONG_CHATBOT_KAKAO_DEADLINE_SECONDS", "6")
    with pytest.raises(ValueError, match="kakao_deadline_seconds"):
        ChatbotSettings()
