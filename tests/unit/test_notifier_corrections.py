"""What the notifier says of a resident's correction (정정) and rating (만족도)."""

import json

import pytest

from notifier.templates import Catalogue
from schemas import ComplaintState, ComplaintStatusChanged
from schemas.events import Correction, Rating
from tests.unit.test_notifier_audience import audience, by_recipient, change, resident


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def corrected() -> ComplaintStatusChanged:
    return change(
        ComplaintState.HANDLER_ASSIGNED,
        "correct",
        actor="resident",
        correction=Correction(fields=["address", "dong"], dong="청라3동"),
    )


def test_a_correction_tells_the_resident_what_was_changed_and_the_handler(
    catalogue: Catalogue,
) -> None:
    told = by_recipient(audience(catalogue).plan(corrected(), resident()))
    assert told["resident"].template == "SOTONG_CORRECTED"
    assert told["resident"].content is not None
    text = told["resident"].content.text
    assert "정정하신 내용(주소, 행정동)이 반영됐습니다." in text
    assert "251125-000001" in text
    assert told["handler"].template == "SOTONG_STAFF_CORRECTED"
    assert told["handler"].content is not None
    assert "정정 항목: 주소, 행정동" in told["handler"].content.text


def test_the_department_webhook_names_the_fields_and_the_dong_and_nothing_personal(
    catalogue: Catalogue,
) -> None:
    subscribed = audience(catalogue, webhooks=frozenset({"roads"}))
    hook = by_recipient(subscribed.plan(corrected(), resident()))["department:roads"]
    assert hook.cloudevent is not None
    payload = json.dumps(hook.cloudevent, ensure_ascii=False, default=str)
    assert '"청라3동"' in payload
    assert "address" in payload  # the field's name, never its value
    assert "홍길동" not in payload
    assert "010-1234-5678" not in payload


def test_a_rating_is_not_messaged_to_the_resident_who_gave_it(catalogue: Catalogue) -> None:
    rated = change(
        ComplaintState.RESOLVED, "rate", actor="resident", rating=Rating(score=5, comment="감사")
    )
    subscribed = audience(catalogue, webhooks=frozenset({"roads"}))
    told = by_recipient(subscribed.plan(rated, resident()))
    assert set(told) == {"department:roads"}


def test_every_correctable_field_has_a_name_residents_read(catalogue: Catalogue) -> None:
    assert catalogue.field_names == {
        "address": "주소",
        "dong": "행정동",
        "title": "제목",
        "photos": "사진 추가",
    }
