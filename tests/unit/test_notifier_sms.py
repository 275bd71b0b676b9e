"""SMS or LMS by the bytes Korean carriers count, shortening only what may be shortened."""

import pytest

from notifier.sms import LMS_BYTES, SMS_BYTES, carriable, compose
from notifier.templates import Catalogue, Content, Entry, Template, cp949_length
from schemas import ComplaintState
from tests.fakes.notifier import LETTERHEAD

RECEIPT = "251125-004217"
LINK = "https://sotong.example.kr/complaints/6f0c1a2b-5d1e-4c8f-9a3b-2e7d4f6a8c10"
SHORT = Entry(
    template_code="T_SITE_CHECK",
    version=1,
    text="[서구] 현장 확인 중입니다.\n접수번호: #{receipt_number}",
    with_note=Template(
        template_code="T_SITE_CHECK_NOTE",
        version=1,
        text="[서구] 현장 확인 중입니다.\n접수번호: #{receipt_number}\n안내: #{note}",
        note_optional=True,
    ),
)
"""A message short enough for an SMS (one without the tracking link)."""


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def values(note: str | None = None) -> dict[str, str]:
    letter = {"sender_name": LETTERHEAD.sender_name, "tracking_url": LINK}
    return {"receipt_number": RECEIPT} | letter | ({"note": note} if note else {})


def content(catalogue: Catalogue, state: ComplaintState, note: str | None = None) -> Content:
    return catalogue.resident_content(state, None, values(note))


def short(note: str | None = None) -> Content:
    """The words of :data:`SHORT`, chosen as the catalogue chooses."""
    if note:
        assert SHORT.with_note is not None
        return Content(SHORT.with_note, values(note), "제목", short=SHORT)
    return Content(SHORT, values(), "제목")


def test_hangul_counts_two_bytes_and_ascii_one() -> None:
    assert cp949_length("접수") == 4
    assert cp949_length("A1-") == 3
    assert cp949_length("[소통] 접수") == 1 + 4 + 1 + 1 + 4


def test_a_short_message_is_an_sms() -> None:
    composed = compose(short())
    assert composed.kind == "SMS"
    assert composed.subject is None
    assert composed.size <= SMS_BYTES
    assert composed.text == "[서구] 현장 확인 중입니다.\n접수번호: " + RECEIPT


def test_an_optional_note_is_dropped_to_stay_an_sms() -> None:
    note = "내일 오전 10시에 담당자가 현장을 방문할 예정입니다."
    words = short(note)
    assert cp949_length(words.text) > SMS_BYTES, "with the note it would be an LMS"
    composed = compose(words)
    assert composed.kind == "SMS"
    assert note not in composed.text
    assert "현장 확인 중입니다" in composed.text


def test_an_optional_note_that_fits_is_kept() -> None:
    composed = compose(short("내일 방문"))
    assert (composed.kind, composed.text.endswith("안내: 내일 방문")) == ("SMS", True)


def test_a_residents_step_with_its_tracking_link_is_an_lms(catalogue: Catalogue) -> None:
    """Sender, receipt number and link do not fit 90 bytes: the link is never dropped."""
    composed = compose(content(catalogue, ComplaintState.RECEIVED))
    assert composed.kind == "LMS"
    assert composed.text == (
        f"[인천광역시 서구] 민원이 접수됐습니다.\n접수번호: {RECEIPT}\n진행 상황: {LINK}"
    )
    assert composed.subject == "[인천광역시 서구] 민원 진행 안내"
    words = content(catalogue, ComplaintState.SITE_CHECK, "내일 오전 10시에 방문할 예정입니다.")
    assert compose(words).text.endswith(LINK), "an optional note is dropped only to reach SMS"
    assert "안내: 내일 오전 10시에 방문할 예정입니다." in compose(words).text


def test_a_result_the_resident_must_read_makes_it_an_lms(catalogue: Catalogue) -> None:
    note = "대형폐기물 스티커 안내 후 수거를 완료했습니다. 이용해 주셔서 감사합니다."
    composed = compose(content(catalogue, ComplaintState.RESOLVED, note))
    assert composed.kind == "LMS"
    assert "처리 결과: " + note in composed.text.splitlines()
    assert composed.subject == "[인천광역시 서구] 민원 진행 안내"
    assert SMS_BYTES < composed.size <= LMS_BYTES


def test_an_lms_over_2000_bytes_is_cut_between_characters(catalogue: Catalogue) -> None:
    note = "가나다라마바사아자차카타파하" * 200
    composed = compose(content(catalogue, ComplaintState.RESOLVED, note))
    assert composed.kind == "LMS"
    assert LMS_BYTES - 3 <= composed.size <= LMS_BYTES
    assert "…\n접수번호: " in composed.text, "the note is cut; the receipt and link stay whole"
    assert composed.text.endswith(LINK)
    assert "\ufffd" not in composed.text
    composed.text.encode("cp949")  # no half of a character anywhere


def test_exactly_90_bytes_is_still_an_sms() -> None:
    template = Template(template_code="T", version=1, text="#{receipt_number}")
    values = {"receipt_number": "가" * 45}
    composed = compose(Content(template, values, "제목"))
    assert (composed.kind, composed.size) == ("SMS", 90)
    values = {"receipt_number": "가" * 45 + "A"}
    assert compose(Content(template, values, "제목")).kind == "LMS"


def test_characters_carriers_cannot_carry_become_question_marks(catalogue: Catalogue) -> None:
    assert carriable("수거 완료 👍") == "수거 완료 ?"
    composed = compose(content(catalogue, ComplaintState.RESOLVED, "완료 👍"))
    assert "처리 결과: 완료 ?" in composed.text.splitlines()
    assert composed.size == len(composed.text.encode("cp949"))
