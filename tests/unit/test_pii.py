"""Masking personal data in free text (``schemas.pii``): what must be masked, in every way
people write it, and what must not be (receipt numbers, dates, amounts, codes, ids, URLs)."""

import json
import re
import uuid
from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.pii import (
    RRN_MASK,
    find,
    mask_bytes,
    mask_fields,
    mask_rrns,
    mask_text,
    rrn_birth_date,
    rrn_checksum_valid,
)

# Text around a number: Hangul, spaces and punctuation a resident writes, no digits or
# Latin letters (those may not touch a number, by design).
FILLER = st.text(
    alphabet=st.sampled_from(list("가로등이 꺼졌어요연락처번호는로으로 ,.!?:()\n")), max_size=20
)
SEPARATORS = st.sampled_from(["-", "", " ", ".", " - ", "–"])


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


def check_digit(first12: str) -> str:
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    return str((11 - sum(w * int(d) for w, d in zip(weights, first12, strict=True)) % 11) % 10)


@st.composite
def rrns(draw: st.DrawFn, *, valid_checksum: bool | None = None) -> str:
    """13 digits with a real birth date and gender digit, checksum valid or not."""
    gender = draw(st.sampled_from("12345678"))
    century = 1900 if gender in "1256" else 2000
    born = draw(st.dates(date(century, 1, 1), date(century + 99, 12, 31)))
    first12 = f"{born:%y%m%d}{gender}" + draw(_digits(5))
    good = check_digit(first12)
    if valid_checksum is None:
        last = draw(st.sampled_from("0123456789"))
    elif valid_checksum:
        last = good
    else:
        last = draw(st.sampled_from([d for d in "0123456789" if d != good]))
    return first12 + last


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str]:
    """(as written, its digits without the country code's 0)."""
    area = draw(
        st.sampled_from(["010", "011", "016", "017", "018", "019", "02", "031", "032", "051"])
        | st.sampled_from(["053", "062", "064", "070", "044", "033"])
    )
    mid = draw(_digits(4) if area == "010" else _digits(3) | _digits(4))
    last = draw(_digits(4))
    sep = draw(SEPARATORS)
    form = draw(st.sampled_from(["plain", "paren", "intl", "intl0"]))
    if form == "paren":
        written = f"({area}) {mid}{sep}{last}"
    elif form == "intl":
        written = f"+82{sep}{area[1:]}{sep}{mid}{sep}{last}"
    elif form == "intl0":
        written = f"+82 (0){area[1:]}{sep}{mid}{sep}{last}"
    else:
        written = f"{area}{sep}{mid}{sep}{last}"
    return written, area + mid + last


EMAILS = st.from_regex(
    r"[a-z0-9][a-z0-9._+\-]{0,15}[a-z0-9]@[a-z0-9][a-z0-9\-]{0,10}[a-z0-9](\.[a-z]{2,4}){1,2}",
    fullmatch=True,
)


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


@given(before=FILLER, after=FILLER, rrn=rrns(), sep=st.sampled_from(["-", "", " ", "–"]))
@example(before="주민번호 ", after="입니다", rrn="9001011234568", sep="-")
@settings(max_examples=150, deadline=None)
def test_every_rrn_shape_is_masked_whatever_its_checksum(
    before: str, after: str, rrn: str, sep: str
) -> None:
    text = f"{before}{rrn[:6]}{sep}{rrn[6:]}{after}"
    masked = mask_text(text)
    assert masked == f"{before}{RRN_MASK}{after}"
    assert rrn[6:] not in digits_of(masked)


@given(rrn=rrns(valid_checksum=True))
@settings(deadline=None)  # no timing in tests: a loaded machine is slow
def test_the_pre_2020_check_digit_is_computed(rrn: str) -> None:
    assert rrn_checksum_valid(rrn)
    assert not rrn_checksum_valid(rrn[:12] + str((int(rrn[12]) + 1) % 10))


def test_known_check_digits() -> None:
    # 900101-123456? : Σ = 2*9+3*0+4*0+5*1+6*0+7*1+8*1+9*2+2*3+3*4+4*5+5*6 = 124; 11-124%11 = 8
    assert rrn_checksum_valid("9001011234568")
    assert not rrn_checksum_valid("9001011234567")
    assert rrn_birth_date("9001011234567") == date(1990, 1, 1)
    assert rrn_birth_date("2010053123456") == date(2020, 10, 5)
    assert rrn_birth_date("9002301234567") is None, "30 February"
    assert rrn_birth_date("9001019234567") is None, "9: born in the 1800s"
    assert rrn_birth_date("900101123456") is None


@given(before=FILLER, after=FILLER, rrn=rrns(valid_checksum=False))
@settings(deadline=None)  # no timing in tests: a loaded machine is slow
def test_on_arrival_an_unseparated_run_failing_the_checksum_stays(
    before: str, after: str, rrn: str
) -> None:
    """It may be an account number (우리은행 1002…): stored as written, masked on the way out."""
    text = f"{before}{rrn}{after}"
    assert mask_rrns(text) == text
    assert mask_text(text) == f"{before}{RRN_MASK}{after}"


@given(before=FILLER, after=FILLER, rrn=rrns(), sep=st.sampled_from(["-", " ", " - ", "–"]))
@settings(deadline=None)  # no timing in tests: a loaded machine is slow
def test_on_arrival_a_separated_or_checksummed_rrn_is_masked(
    before: str, after: str, rrn: str, sep: str
) -> None:
    assert mask_rrns(f"{before}{rrn[:6]}{sep}{rrn[6:]}{after}") == f"{before}{RRN_MASK}{after}"


@given(before=FILLER, after=FILLER, rrn=rrns(valid_checksum=True))
@settings(deadline=None)  # no timing in tests: a loaded machine is slow
def test_on_arrival_a_valid_checksum_is_certain_without_separator(
    before: str, after: str, rrn: str
) -> None:
    assert mask_rrns(f"{before}{rrn}{after}") == f"{before}{RRN_MASK}{after}"


def test_arrival_masks_only_rrns() -> None:
    text = "연락처 010-1234-5678, hong@example.kr, 900101-1234567"
    assert mask_rrns(text) == f"연락처 010-1234-5678, hong@example.kr, {RRN_MASK}"


@given(before=FILLER, after=FILLER, phone=phones())
@settings(max_examples=150, deadline=None)
def test_every_phone_form_is_masked_but_its_area_and_last_four(
    before: str, after: str, phone: tuple[str, str]
) -> None:
    written, digits = phone
    masked = mask_text(f"{before}{written}{after}")
    assert masked.startswith(before)
    assert masked.endswith(after)
    shown = masked[len(before) : len(masked) - len(after)]
    assert re.fullmatch(r"(\+82-)?0?\d{1,2}-\*\*\*\*-\d{4}", shown), shown
    assert shown.endswith(digits[-4:])
    assert digits[-8:] not in digits_of(masked)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("연락처010-1234-5678로 주세요", "연락처010-****-5678로 주세요"),
        ("010.1234.5678", "010-****-5678"),
        ("01012345678", "010-****-5678"),
        ("02-123-4567", "02-****-4567"),
        ("(032)560-1234", "032-****-1234"),
        ("+82-10-1234-5678", "+82-10-****-5678"),
        ("+821012345678", "+82-10-****-5678"),
        ("+82 (0)2 123 4567", "+82-2-****-4567"),
        ("전화: 070 1234 5678.", "전화: 070-****-5678."),
    ],
)
def test_phone_examples(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@given(before=FILLER, after=FILLER, email=EMAILS)
@settings(max_examples=200, deadline=None)
def test_every_email_is_masked_to_its_first_letter_and_domain(
    before: str, after: str, email: str
) -> None:
    local, domain = email.split("@")
    masked = mask_text(f"{before}{email}{after}")
    assert masked == f"{before}{local[0]}***@{domain}{after}"


def test_email_touching_hangul() -> None:
    assert mask_text("메일hong.gildong@naver.com로 답변") == "메일h***@naver.com로 답변"


# Things with digits that are not personal data and must reach a department intact.
NOT_PERSONAL = [
    "접수번호 261202-123456 확인 부탁드립니다",  # intake's receipt number, YYMMDD-NNNNNN
    "접수번호 261202123456",
    "2026-12-02 14:30에 봤어요",
    "2026.12.02. 오전 9시",
    "12/02/2026",
    "20261202",
    "과태료 15,000원, 150000원, 1,500,000원",
    "행정동 코드 2826058000 (청라1동)",
    "주차면 3대, 02시 30분",
    "대표번호 1588-1234, 120 다산콜",
    "https://www.incheon.go.kr/seo/SEO020201?curPage=2&nttId=20261202123456",
    "https://example.kr/view?tel=01012345678&rrn=9001011234568",
    "www.seo.incheon.kr/board/9001011234568",
    "버전 1.0.2, 좌표 37.5326, 126.6434",
    "4-3번지 101동 1203호",
]


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_what_is_not_personal_is_left_alone(text: str) -> None:
    assert mask_text(text) == text
    assert find(text) == []


@given(complaint_id=st.uuids(version=4))
@settings(deadline=None)  # no timing in tests: a loaded machine is slow
def test_complaint_ids_are_left_alone(complaint_id: uuid.UUID) -> None:
    text = f"민원 {complaint_id} 건"
    assert mask_text(text) == text


@given(
    day=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    serial=st.integers(0, 999_999),
    won=st.integers(0, 10**9),
)
@settings(deadline=None)  # no timing in tests: a loaded machine is slow
def test_receipt_numbers_dates_and_amounts_are_left_alone(day: date, serial: int, won: int) -> None:
    text = f"접수 {day:%y%m%d}-{serial:06d}, {day:%Y-%m-%d} {day:%Y.%m.%d} {won:,}원 {won}원"
    assert mask_text(text) == text


@given(st.text(max_size=200))
@settings(max_examples=150, deadline=None)
def test_masking_is_idempotent_and_leaves_nothing_to_find(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once
    assert find(once) == []


def test_an_rrn_is_one_finding_not_a_phone_inside_it() -> None:
    # 010101-3012345 holds 0101 3012345; it is one RRN, masked whole
    assert [(f.kind, f.start) for f in find("번호 010101-3012345")] == [("rrn", 3)]


def test_mask_fields_touches_only_the_named_text_fields() -> None:
    values = {"note": "연락 010-1234-5678", "handler_phone": "032-560-1234", "n": 3, "remedy": None}
    assert mask_fields(values, "note", "remedy") == values | {"note": "연락 010-****-5678"}


def test_dead_letter_bytes_json_is_masked_string_by_string() -> None:
    value = json.dumps(
        {"body": "연락처\n010-1234-5678 주민번호 900101-1234568", "resident": {"email": "a@b.kr"}}
    ).encode()  # ASCII-escaped: 처 is \ucc98, right before the 0
    masked = json.loads(mask_bytes(value))
    assert masked == {
        "body": f"연락처\n010-****-5678 주민번호 {RRN_MASK}",
        "resident": {"email": "a***@b.kr"},
    }


def test_dead_letter_bytes_that_are_not_json_are_masked_as_text() -> None:
    cut = b'{"body":"\\ucc98010-1234-5678\\n900101-1234568 \xff\xfe'
    masked = mask_bytes(cut)
    assert b"1234-5678" not in masked
    assert b"1234568" not in masked
    assert masked.endswith(b"\xff\xfe"), "undecodable bytes are kept"


@pytest.mark.parametrize(
    "value", [b"", b"not json at all", b'{"body":"15,000\xec\x9b\x90"}', b"\xff"]
)
def test_dead_letter_bytes_without_personal_data_are_unchanged(value: bytes) -> None:
    assert mask_bytes(value) == value


def test_post_2020_numbers_are_masked_without_a_checksum() -> None:
    rrn = "2103043918270"  # born 2021-03-04; the last six digits are random since 2020-10
    assert not rrn_checksum_valid(rrn)
    assert mask_text(f"아이 주민번호 {rrn[:6]}-{rrn[6:]}") == f"아이 주민번호 {RRN_MASK}"


PIECES = st.lists(
    st.one_of(
        phones().map(lambda p: p[0]),
        rrns(),
        EMAILS,
        FILLER,
        _digits(3),
        st.sampled_from(["-", ".", "@", " ", "a", "+82", "https://x.kr/", "\n"]),
    ),
    max_size=8,
).map("".join)


@given(PIECES)
@settings(max_examples=200, deadline=None)
def test_masked_text_holds_nothing_left_to_mask(text: str) -> None:
    once = mask_text(text)
    assert find(once) == []
    assert mask_text(once) == once


def test_dead_letter_bytes_nested_past_the_parser_are_masked_as_text() -> None:
    deep = b"[" * 100_000 + b'"010-1234-5678"' + b"]" * 100_000
    masked = mask_bytes(deep)
    assert b"010-****-5678" in masked
    assert b"1234" not in masked
