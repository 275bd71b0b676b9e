"""What the notifier says of a resident's correction (정정) and rating (만족도)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from notifier.delivery import Arrival
from notifier.outbox import OutboxChannel
from notifier.templates import Catalogue
from schemas import ComplaintState, ComplaintStatusChanged
from schemas.events import Correction, PhotoRef, Rating
from tests.fakes.notifier import InMemoryNotifierStore
from tests.unit.test_notifier_audience import audience, by_recipient, change, resident
from tests.unit.test_notifier_delivery import assigned, build, filed, new_id


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


def photo(photo_id: str) -> PhotoRef:
    return PhotoRef(photo_id=photo_id, content_type="image/jpeg", size=2048)


def photos_added() -> ComplaintStatusChanged:
    return change(
        ComplaintState.HANDLER_ASSIGNED,
        "correct",
        actor="resident",
        correction=Correction(fields=["photos"], dong="청라2동", photos=[photo("p-new")]),
    )


def test_a_photo_correction_tells_the_resident_and_links_the_photos_for_the_department(
    catalogue: Catalogue,
) -> None:
    subscribed = audience(
        catalogue, webhooks=frozenset({"roads"}), photo_base="https://intake.example/"
    )
    filed_with_one = replace(resident(), photos=("p-filed", "p-new"))

    told = by_recipient(subscribed.plan(photos_added(), filed_with_one))

    assert told["resident"].content is not None
    assert "정정하신 내용(사진 추가)이 반영됐습니다." in told["resident"].content.text
    assert told["handler"].content is not None
    assert "정정 항목: 사진 추가" in told["handler"].content.text
    hook = told["department:roads"].cloudevent
    assert hook is not None
    assert hook["data"]["photos"] == [  # the filing's and the added one, once each
        "https://intake.example/v1/photos/p-filed",
        "https://intake.example/v1/photos/p-new",
    ]
    unheard = by_recipient(subscribed.plan(photos_added(), resident()))["department:roads"]
    assert unheard.cloudevent is not None
    assert unheard.cloudevent["data"]["photos"] == ["https://intake.example/v1/photos/p-new"]


async def test_photos_a_correction_added_are_remembered_for_every_later_webhook(
    tmp_path: Path,
) -> None:
    harness = build(InMemoryNotifierStore(), OutboxChannel(tmp_path / "outbox.jsonl"))
    cid = new_id()
    await harness.delivery.remember_recipient(filed(cid))
    correction = assigned(
        cid,
        sequence=4,
        trigger="correct",
        from_state="assigned",
        actor="resident",
        correction=Correction(fields=["photos"], photos=[photo("p-1"), photo("p-2")]),
    )

    assert await harness.delivery.notify_all([Arrival(correction, None)]) == []
    assert await harness.delivery.notify_all([Arrival(correction, None)]) == []  # redelivered

    recipient = await harness.store.recipient(cid)
    assert recipient is not None
    assert recipient.photos == ("p-1", "p-2")
