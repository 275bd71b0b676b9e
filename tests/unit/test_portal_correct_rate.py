"""정정 and 만족도 on the timeline page, driven in memory (tests/fakes/portal.py)."""

from portal.clients import Complaint, PhotoOnFile, StepCorrection, StepRating
from portal.texts import texts
from portal.timeline import build
from tests.fakes.portal import LEE, T0, WASTE, step
from tests.unit.test_portal_pages import (  # noqa: F401
    PNG,
    Portal,
    filed_and_assigned,
    portal,
    text,
)


async def test_the_correction_form_is_offered_before_the_site_check(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    page = await portal.client.get(f"/complaints/{complaint_id}")
    assert "접수 내용 정정하기" in page.text
    assert '<label for="correct-dong">행정동</label>' in page.text
    assert '<label for="correct-address">주소 (바뀐 경우에만)</label>' in page.text
    assert '<label for="correct-title">제목</label>' in page.text
    assert '<option value="청라3동"' in page.text


async def test_a_correction_sends_only_what_changed(portal: Portal) -> None:  # noqa: F811
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(complaint_id, step(3, "handler_assigned", "other"), dong="청라2동")
    sent = await portal.client.post(
        f"/complaints/{complaint_id}/correct",
        data={"dong": "청라3동", "address": " 인천 서구 청라대로 99 ", "title": ""},
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/complaints/{complaint_id}?done=correct"
    [action] = portal.intake.actions
    assert action == {
        "complaint_id": complaint_id,
        "action": "correct",
        "token": portal.intake.tokens[complaint_id],
        "note": None,
        "dong": "청라3동",
        "address": "인천 서구 청라대로 99",
    }


async def test_a_correction_that_changes_nothing_or_names_an_unknown_dong_is_refused_in_place(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(complaint_id, step(3, "handler_assigned", "other"), dong="청라2동")
    same = await portal.client.post(f"/complaints/{complaint_id}/correct", data={"dong": "청라2동"})
    assert same.status_code == 422
    assert 'id="correct-error" role="alert">고칠 내용을 하나 이상' in same.text
    unknown = await portal.client.post(
        f"/complaints/{complaint_id}/correct", data={"dong": "강남1동", "address": "어딘가 1"}
    )
    assert unknown.status_code == 422
    assert 'id="correct-dong-error">목록에 있는 행정동을 골라 주세요.' in unknown.text
    assert 'value="어딘가 1"' in unknown.text  # what was typed stays
    assert portal.intake.actions == []


async def test_after_the_site_check_the_page_offers_to_tell_the_handler(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(complaint_id, step(3, "site_check", "start_site_check"))
    page = await portal.client.get(f"/complaints/{complaint_id}")
    shown = text(page.text)
    assert "접수 내용 정정하기" not in shown
    assert "이제는 이 화면에서 정정할 수 없어요" in shown
    assert f"담당자 {LEE.name}( {LEE.office_phone} )에게 알려 주세요" in shown  # a tel: link


async def test_the_timeline_shows_the_correction_and_the_new_handler(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    other = LEE.model_copy(update={"name": "조현우", "office_phone": "032-560-5002"})
    corrected = step(3, "handler_assigned", "correct", actor="resident")
    corrected = corrected.model_copy(
        update={"correction": StepCorrection(fields=["address", "dong"], dong="청라3동")}
    )
    portal.tracker.advance(complaint_id, corrected, dong="청라3동")
    reassigned = step(
        4,
        "handler_assigned",
        "reassign",
        department=WASTE.code,
        department_name=WASTE.name,
        handler=other,
    )
    portal.tracker.advance(complaint_id, reassigned, handler=other)
    shown = text((await portal.client.get(f"/complaints/{complaint_id}")).text)
    assert "접수 내용을 정정했습니다." in shown
    assert "정정한 항목: 주소, 행정동(청라3동)" in shown
    assert "담당자가 바뀌었습니다." in shown
    assert "조현우" in shown


async def test_rating_after_resolution_once(portal: Portal) -> None:  # noqa: F811
    complaint_id = await filed_and_assigned(portal)
    before = await portal.client.get(f"/complaints/{complaint_id}")
    assert "처리 결과에 얼마나 만족하시나요?" not in before.text
    portal.tracker.advance(complaint_id, step(3, "resolved", "resolve", note="수거 완료"))
    page = await portal.client.get(f"/complaints/{complaint_id}")
    assert "<legend>처리 결과에 얼마나 만족하시나요?</legend>" in page.text
    assert '<label for="rating-5">5점 · 매우 만족</label>' in page.text
    none = await portal.client.post(f"/complaints/{complaint_id}/rate", data={"comment": "음"})
    assert none.status_code == 422
    assert 'id="rating-error">만족도를 1점부터 5점 사이에서 골라 주세요.' in none.text
    assert "음</textarea>" in none.text
    long = await portal.client.post(
        f"/complaints/{complaint_id}/rate", data={"rating": "4", "comment": "가" * 501}
    )
    assert long.status_code == 422
    assert portal.intake.actions == []
    sent = await portal.client.post(
        f"/complaints/{complaint_id}/rate", data={"rating": "4", "comment": " 빨랐어요 "}
    )
    assert sent.status_code == 303
    assert portal.intake.actions[-1] | {"token": ""} == {
        "complaint_id": complaint_id,
        "action": "rate",
        "token": "",
        "note": None,
        "rating": 4,
        "comment": "빨랐어요",
    }
    rated = step(4, "resolved", "rate", actor="resident")
    rated = rated.model_copy(update={"rating": StepRating(score=4, comment="빨랐어요")})
    portal.tracker.advance(complaint_id, rated, rating=4)
    after = text((await portal.client.get(f"/complaints/{complaint_id}")).text)
    assert "처리 결과에 얼마나 만족하시나요?" not in after
    assert "이번 처리 결과에 4점을 주셨어요." in after
    assert "만족도: 4점 · 빨랐어요" in after


def test_a_rating_before_a_reopening_does_not_rate_the_next_resolution() -> None:
    rated = step(3, "resolved", "rate").model_copy(update={"rating": StepRating(score=2)})
    timeline = [
        step(1, "received", "receive"),
        step(2, "resolved", "resolve", note="끝"),
        rated,
    ]
    complaint = Complaint(
        complaint_id="c1", receipt_number="261202-000001", state="resolved", filed_at=T0
    )
    once = build(complaint.model_copy(update={"timeline": timeline}), texts())
    assert (once.can_rate, once.rating, once.result) == (False, 2, "끝")
    timeline += [
        step(4, "handler_assigned", "reopen", note="아직"),
        step(5, "resolved", "resolve", note="다시 끝"),
    ]
    again = build(complaint.model_copy(update={"timeline": timeline}), texts())
    assert (again.can_rate, again.rating, again.result) == (True, None, "다시 끝")


# -- 사진 추가: photos added by a correction ---------------------------------------------


def on_file(*ids: str) -> list[PhotoOnFile]:
    return [PhotoOnFile(photo_id=i.ljust(22, "x")) for i in ids]


async def test_a_correction_uploads_a_photo_to_intake_and_sends_its_id(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(complaint_id, step(3, "handler_assigned", "other"), dong="청라2동")
    page = await portal.client.get(f"/complaints/{complaint_id}")
    assert 'enctype="multipart/form-data"' in page.text
    assert (
        '<label for="correct-photos">사진 추가 (선택, 3장 더 올릴 수 있어요)</label>' in page.text
    )

    sent = await portal.client.post(
        f"/complaints/{complaint_id}/correct",
        data={"dong": "청라2동", "address": "", "title": ""},  # only the photo changes
        files=[("photos", ("현장.png", PNG, "image/png"))],
    )

    assert sent.status_code == 303, sent.text
    [(photo_id, data)] = portal.intake.photos.items()
    assert data == PNG
    [action] = portal.intake.actions
    assert action == {
        "complaint_id": complaint_id,
        "action": "correct",
        "token": portal.intake.tokens[complaint_id],
        "note": None,
        "photos": [photo_id],
    }


async def test_photos_past_the_complaints_limit_are_refused_next_to_the_field(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(
        complaint_id, step(3, "handler_assigned", "other"), dong="청라2동", photos=on_file("a", "b")
    )
    page = await portal.client.get(f"/complaints/{complaint_id}")
    assert "사진 추가 (선택, 1장 더 올릴 수 있어요)" in page.text

    over = await portal.client.post(
        f"/complaints/{complaint_id}/correct",
        data={"dong": "청라2동"},
        files=[("photos", ("1.png", PNG, "image/png")), ("photos", ("2.png", PNG, "image/png"))],
    )

    assert over.status_code == 422
    assert 'id="correct-photos-error">사진은 3장까지 올릴 수 있어요.' in over.text
    assert 'aria-describedby="correct-photos-kept correct-photos-error" aria-invalid="true"' in (
        over.text
    )
    [kept] = portal.intake.photos  # the first went up once, and the form carries it
    assert f'<input type="hidden" name="photo" value="{kept}">' in over.text
    assert portal.intake.actions == []
    again = await portal.client.post(
        f"/complaints/{complaint_id}/correct", data={"dong": "청라2동", "photo": kept}
    )
    assert again.status_code == 303
    assert portal.intake.actions[0]["photos"] == [kept]
    assert list(portal.intake.photos) == [kept]  # not uploaded twice


async def test_a_photo_intake_refuses_is_named_next_to_the_photo_field(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(complaint_id, step(3, "handler_assigned", "other"), dong="청라2동")
    refused = await portal.client.post(
        f"/complaints/{complaint_id}/correct", data={"dong": "청라2동", "photo": "N" * 22}
    )
    assert refused.status_code == 422
    assert 'id="correct-photos-error">사진을 첨부하지 못했어요.' in refused.text
    not_a_photo = await portal.client.post(
        f"/complaints/{complaint_id}/correct",
        data={"dong": "청라2동"},
        files=[("photos", ("x.png", b"<script>", "image/png"))],
    )
    assert not_a_photo.status_code == 422
    assert 'id="correct-photos-error">사진은 JPG, PNG, HEIC 파일만' in not_a_photo.text
    assert 'id="correct-error"' not in not_a_photo.text  # the photo's own error says it


async def test_a_full_complaint_offers_no_photo_and_the_timeline_counts_those_added(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    added = step(3, "handler_assigned", "correct", actor="resident")
    added = added.model_copy(
        update={
            "correction": StepCorrection(
                fields=["photos"], dong="청라2동", photos=on_file("b", "c")
            )
        }
    )
    portal.tracker.advance(complaint_id, added, photos=on_file("a", "b", "c"))
    page = await portal.client.get(f"/complaints/{complaint_id}")
    shown = text(page.text)
    assert "정정한 항목: 사진 추가(2장)" in shown
    assert "사진은 이미 3장이 첨부돼 있어 더 올릴 수 없어요." in shown
    assert 'id="correct-photos"' not in page.text


async def test_a_stranger_cannot_upload_through_someone_elses_correction(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.client.cookies.clear()
    answer = await portal.client.post(
        f"/complaints/{complaint_id}/correct",
        data={"dong": "청라2동"},
        files=[("photos", ("x.png", PNG, "image/png"))],
    )
    assert answer.status_code == 404
    assert portal.intake.photos == {}


async def test_the_resident_sees_the_complaints_photos_through_intake_and_nobody_else(
    portal: Portal,  # noqa: F811
) -> None:
    complaint_id = await filed_and_assigned(portal)
    portal.tracker.advance(complaint_id, step(3, "handler_assigned", "other"), dong="청라2동")
    sent = await portal.client.post(
        f"/complaints/{complaint_id}/correct",
        data={"dong": "청라2동"},
        files=[("photos", ("현장.png", PNG, "image/png"))],
    )
    assert sent.status_code == 303
    [photo_id] = portal.intake.photos
    portal.tracker.advance(
        complaint_id,
        step(4, "handler_assigned", "correct", actor="resident"),
        photos=[PhotoOnFile(photo_id=photo_id)],
    )
    url = f"/complaints/{complaint_id}/photos/{photo_id}"

    page = await portal.client.get(f"/complaints/{complaint_id}")
    thumb = await portal.client.get(f"{url}/thumbnail")
    full = await portal.client.get(url)

    assert "<h2>첨부한 사진</h2>" in page.text
    assert f'<img src="{url}/thumbnail" alt="첨부한 사진 1"' in page.text
    assert (thumb.status_code, thumb.content, thumb.headers["content-type"]) == (
        200,
        PNG,
        "image/png",
    )
    assert thumb.headers["cache-control"] == "private, no-store"
    assert full.status_code == 200
    assert (
        await portal.client.get(f"/complaints/{complaint_id}/photos/{'Z' * 22}")
    ).status_code == 404
    portal.client.cookies.clear()
    assert (await portal.client.get(f"{url}/thumbnail")).status_code == 404
