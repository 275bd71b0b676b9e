"""반복민원 and 중복민원 as the resident hears of them: the confirmed conclusion names the
earlier complaint, its answer, the law and the remedy; the marks themselves are not told."""

import pytest

from notifier.templates import Catalogue
from schemas import ComplaintState
from schemas.events import LinkedTo, RepeatedOf
from tests.unit.test_notifier_audience import audience, change, resident

EARLIER = RepeatedOf(
    complaint_id="c-0", receipt_number="251101-000042", similarity=0.81, answer="11월 3일 수거 완료"
)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def test_a_confirmed_repeat_names_the_earlier_complaint_its_answer_the_law_and_the_remedy(
    catalogue: Catalogue,
) -> None:
    event = change(
        ComplaintState.CLOSED,
        "conclude_repeated",
        repeated_of=EARLIER,
        note=EARLIER.answer,
        actor="roads",
    )
    [notice, *_] = audience(catalogue).plan(event, resident())
    assert notice.recipient == "resident"
    assert notice.content is not None
    text = notice.content.text
    assert "251101-000042" in text
    assert "11월 3일 수거 완료" in text
    assert "민원 처리에 관한 법률 제23조" in text
    assert "재민원" in text
    assert "251125-000001" in text


def test_without_the_earlier_answer_the_notice_still_names_the_earlier_complaint(
    catalogue: Catalogue,
) -> None:
    mark = EARLIER.model_copy(update={"answer": None})
    event = change(ComplaintState.CLOSED, "conclude_repeated", repeated_of=mark, actor="roads")
    [notice, *_] = audience(catalogue).plan(event, resident())
    assert notice.content is not None
    assert "251101-000042" in notice.content.text
    assert "앞선 답변:" not in notice.content.text


@pytest.mark.parametrize("trigger", ["mark_repeated", "dismiss_repeated", "unlink"])
def test_the_marks_are_not_told_to_the_resident(catalogue: Catalogue, trigger: str) -> None:
    event = change(ComplaintState.HANDLER_ASSIGNED, trigger, repeated_of=EARLIER)
    assert [n.recipient for n in audience(catalogue).plan(event, resident())] == []


def test_a_linked_resident_is_told_nothing_of_the_other_reporter(catalogue: Catalogue) -> None:
    link = LinkedTo(complaint_id="c-0", receipt_number="251101-000042", similarity=0.6)
    event = change(ComplaintState.HANDLER_ASSIGNED, "link", linked_to=link)
    [notice, *_] = audience(catalogue).plan(event, resident())
    assert notice.content is not None
    assert "함께 처리합니다" in notice.content.text
    assert "251101-000042" not in notice.content.text
