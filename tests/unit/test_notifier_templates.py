"""The words residents read: every state has a template, and filling one is all or nothing.

The six steps keep the district's own words as it announced them; every other sentence
is ours, in the same polite register (합쇼체: …습니다/…십시오), and all of it is data.
"""

import hashlib
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from notifier.audience import UNTOLD_TRIGGERS
from notifier.templates import (
    APPROVED_PATH,
    CATALOGUE_PATH,
    ELLIPSIS,
    Catalogue,
    Letterhead,
    Template,
    TemplateError,
    check_tracking_url,
    cp949_length,
    josa_ro,
    placeholders,
)
from routing.lifecycle import TRANSITIONS
from schemas import ComplaintDeadlineAlert, ComplaintState, ComplaintStatusChanged
from schemas.events import AlertKind, HandlerRef
from services.errors import PermanentError
from tests.fakes.notifier import LETTERHEAD

RECEIPT = "251125-004217"
LINK = "https://sotong.example.kr/complaints/c-1"
DUE = "2026-12-10T09:00:00Z"


def letter() -> dict[str, str]:
    return {"sender_name": LETTERHEAD.sender_name, "tracking_url": LINK}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def changed(to_state: ComplaintState, **fields: object) -> ComplaintStatusChanged:
    return ComplaintStatusChanged.model_validate(
        {
            "complaint_id": "c-1",
            "receipt_number": RECEIPT,
            "sequence": 2,
            "from_state": None,
            "to_state": to_state,
            "trigger": "test",
            "actor": "routing",
            **fields,
        }
    )


def values_of(catalogue: Catalogue, event: ComplaintStatusChanged) -> dict[str, str]:
    return catalogue.values(event, LETTERHEAD)


def render(catalogue: Catalogue, event: ComplaintStatusChanged) -> str:
    values = values_of(catalogue, event)
    return catalogue.resident_content(event.to_state, event.trigger, values).text


@pytest.mark.parametrize("state", list(ComplaintState))
def test_every_state_has_a_template_naming_the_receipt_number(
    catalogue: Catalogue, state: ComplaintState
) -> None:
    template = catalogue.templates[state]
    assert template.template_code.startswith("SOTONG_")
    assert template.version >= 1
    assert "#{receipt_number}" in template.text


def _reachable_states() -> set[ComplaintState]:
    dests = {t["dest"] for t in TRANSITIONS if t["dest"] is not None}
    return {ComplaintState(d) for d in dests} | {ComplaintState.RECEIVED}


def test_every_state_the_lifecycle_can_reach_has_a_template(catalogue: Catalogue) -> None:
    reachable = _reachable_states()
    assert reachable, "the lifecycle table has destinations"
    assert reachable <= set(catalogue.templates)
    assert set(catalogue.templates) <= set(ComplaintState), "no template for a state not known"


def test_every_internal_move_has_its_own_resident_message(catalogue: Catalogue) -> None:
    """A move that keeps the state (extend, reassign) would otherwise repeat the state's
    message: the resident would read "현장 확인 중입니다" again when the deadline moved.
    Marks the department decides on (issue 14) are not told at all (``UNTOLD_TRIGGERS``)."""
    internal = {t["trigger"] for t in TRANSITIONS if t["dest"] is None}
    assert {"extend", "reassign", "link"} <= internal
    assert internal - UNTOLD_TRIGGERS <= set(catalogue.triggers)
    assert internal >= UNTOLD_TRIGGERS
    assert set(catalogue.triggers) <= {t["trigger"] for t in TRANSITIONS}


def test_staff_messages_are_for_triggers_the_lifecycle_has(catalogue: Catalogue) -> None:
    triggers = {t["trigger"] for t in TRANSITIONS}
    assert set(catalogue.staff) <= triggers
    assert {"assign_handler", "reassign"} <= set(catalogue.staff)
    assert set(catalogue.alerts) == set(AlertKind)


def test_templates_are_versioned_and_every_text_is_the_one_approved(catalogue: Catalogue) -> None:
    """A provider approves a (code, version)'s exact text: a changed text must come with a
    new version, registered with the provider and recorded in approved.json."""
    approved = json.loads(APPROVED_PATH.read_text(encoding="utf-8"))["approved"]
    assert catalogue.version >= 1
    registered = catalogue.registered()
    assert len({(t.template_code, t.version) for t in registered}) == len(registered)
    for template in registered:
        versions = approved.get(template.template_code)
        assert versions, f"{template.template_code} is not recorded as approved"
        digest = versions.get(str(template.version))
        assert digest, f"{template.template_code} v{template.version} is not approved yet"
        assert digest == hashlib.sha256(template.text.encode()).hexdigest(), (
            f"{template.template_code} v{template.version} changed without a new version"
        )


def test_a_changed_text_without_a_new_version_is_caught(catalogue: Catalogue) -> None:
    approved = json.loads(APPROVED_PATH.read_text(encoding="utf-8"))["approved"]
    edited = catalogue.templates[ComplaintState.RECEIVED].model_copy(
        update={"text": "접수 완료.\n접수번호: #{receipt_number}\n#{tracking_url}"}
    )
    digest = hashlib.sha256(edited.text.encode()).hexdigest()
    assert approved[edited.template_code][str(edited.version)] != digest


def test_template_codes_are_unique(catalogue: Catalogue) -> None:
    codes = [t.template_code for t in catalogue.registered()]
    assert len(codes) == len(set(codes))


def test_a_catalogue_using_one_code_twice_does_not_load(tmp_path: Path) -> None:
    path = _edited(tmp_path, "closed", template_code="SOTONG_RECEIVED")
    with pytest.raises(ValidationError, match="used twice: SOTONG_RECEIVED"):
        Catalogue.load(path)


def test_every_registered_text_fits_an_alimtalk_message(catalogue: Catalogue) -> None:
    for template in catalogue.registered():
        assert len(template.text) <= 1000
        assert "#{receipt_number}" in template.text


@pytest.mark.parametrize(
    ("department", "expected"),
    [
        ("자원순환과", "자원순환과로"),
        ("보건소", "보건소로"),
        ("환경보호과", "환경보호과로"),
        ("도로과", "도로과로"),
        ("민원실", "민원실로"),
        ("건축팀", "건축팀으로"),
        ("교통정책관", "교통정책관으로"),
        ("자원순환과(청소)", "자원순환과(청소)로"),
        ("제3", "제3으로"),
        ("제1", "제1로"),
    ],
)
def test_josa_ro_follows_the_final_consonant(department: str, expected: str) -> None:
    assert department + josa_ro(department) == expected


def test_the_walking_skeleton_steps_read_as_residents_expect(catalogue: Catalogue) -> None:
    handler = HandlerRef(handler_id="h-7", name="김담당", office_phone="032-123-4567")
    steps: list[tuple[ComplaintState, dict[str, object]]] = [
        (ComplaintState.RECEIVED, {}),
        (
            ComplaintState.ASSIGNED,
            {
                "department": "RES",
                "department_name": "자원순환과",
                "due_at": "2026-12-10T09:00:00Z",
                "occurred_at": "2026-12-01T00:00:00Z",
            },
        ),
        (ComplaintState.HANDLER_ASSIGNED, {"handler": handler}),
        (ComplaintState.SITE_CHECK, {}),
        (ComplaintState.REVIEWING, {}),
        (ComplaintState.RESOLVED, {}),
    ]
    texts = {state: render(catalogue, changed(state, **fields)) for state, fields in steps}
    firsts = [text.splitlines()[0] for text in texts.values()]
    assert firsts == [
        "[인천광역시 서구] 민원이 접수됐습니다.",
        "[인천광역시 서구] 민원이 자원순환과로 배정됐습니다.",
        "[인천광역시 서구] 담당자(김담당, 032-123-4567)가 정해졌습니다.",
        "[인천광역시 서구] 현장 확인 중입니다.",
        "[인천광역시 서구] 현재 심사 중입니다.",
        "[인천광역시 서구] 민원이 처리 완료됐습니다.",
    ], "the district's own words, from the district office"
    assert "처리기한: 12월 10일(목) 18시까지" in texts[ComplaintState.ASSIGNED].splitlines()
    for text in texts.values():
        assert f"접수번호: {RECEIPT}" in text.splitlines()
        assert text.endswith(f"진행 상황: {LINK}")
        assert "#{" not in text


def test_assigned_to_a_department_ending_in_a_consonant(catalogue: Catalogue) -> None:
    event = changed(ComplaintState.ASSIGNED, department_name="건축팀", due_at=DUE)
    text = render(catalogue, event)
    assert "건축팀으로 배정됐습니다" in text


def test_a_note_selects_the_variant_that_carries_it(catalogue: Catalogue) -> None:
    event = changed(ComplaintState.RESOLVED, note="무단투기 쓰레기를 수거했습니다.")
    values = values_of(catalogue, event)
    template = catalogue.template_for(event.to_state, values)
    assert template.template_code == "SOTONG_RESOLVED_NOTE"
    text = template.render(values)
    assert "처리 완료됐습니다" in text
    assert "처리 결과: 무단투기 쓰레기를 수거했습니다." in text.splitlines()


def test_a_blank_note_is_no_note(catalogue: Catalogue) -> None:
    event = changed(ComplaintState.RESOLVED, note="   ")
    assert catalogue.template_for(event.to_state, values_of(catalogue, event)).template_code == (
        "SOTONG_RESOLVED"
    )


def test_a_missing_variable_is_permanent_and_named(catalogue: Catalogue) -> None:
    event = changed(ComplaintState.ASSIGNED, department="RES", due_at=DUE)
    values = values_of(catalogue, event)
    with pytest.raises(PermanentError, match="department_josa, department_name"):
        catalogue.template_for(event.to_state, values).render(values)
    with pytest.raises(TemplateError):
        catalogue.resident_content(event.to_state, event.trigger, values).check()


def test_a_move_with_its_own_message_uses_it(catalogue: Catalogue) -> None:
    event = changed(
        ComplaintState.ASSIGNED,
        trigger="transfer",
        department_name="환경보호과",
        note="악취 민원으로 이송",
    )
    content = catalogue.resident_content(event.to_state, event.trigger, values_of(catalogue, event))
    assert content.template.template_code == "SOTONG_TRANSFERRED_NOTE"
    assert "환경보호과로 이송됐습니다" in content.text
    assert content.short is not None, "the transfer reason may be dropped to fit an SMS"
    assert "악취" not in (content.short_text or "")


def test_an_extension_names_the_new_due_time_in_seoul(catalogue: Catalogue) -> None:
    event = changed(
        ComplaintState.SITE_CHECK,
        trigger="extend",
        due_at="2026-12-03T09:00:00Z",
        note="현장 재조사 필요",
    )
    content = catalogue.resident_content(event.to_state, event.trigger, values_of(catalogue, event))
    assert "민원 처리기한이 12월 3일(목) 18시까지로 연장됐습니다." in content.text
    assert "연장 사유: 현장 재조사 필요" in content.text.splitlines()
    assert content.short is None, "the reason for an extension must be told"


def test_a_long_note_is_shortened_by_whole_characters_only(catalogue: Catalogue) -> None:
    template = catalogue.templates[ComplaintState.RESOLVED].with_note
    assert template is not None
    values = {"receipt_number": RECEIPT, "note": "수거를 완료했습니다. " * 200} | letter()
    text, fitted = template.fit(values, limit=1000)
    assert len(text) <= 1000
    assert len(text) > 990, "as much of the note as fits"
    assert fitted["note"].endswith(ELLIPSIS)
    assert text == template.render(fitted)
    by_bytes, _ = template.fit(values, limit=2000, measure=cp949_length)
    assert 1995 <= cp949_length(by_bytes) <= 2000
    by_bytes.encode("cp949")  # whole characters: it still encodes


def test_a_text_too_long_without_a_note_is_a_template_error() -> None:
    template = Template(template_code="X", version=1, text="가" * 50 + "#{receipt_number}")
    with pytest.raises(TemplateError, match="over the limit"):
        template.fit({"receipt_number": RECEIPT}, limit=40)
    assert placeholders(template.text) == {"receipt_number"}


def test_a_value_that_looks_like_a_placeholder_stays_text(catalogue: Catalogue) -> None:
    event = changed(
        ComplaintState.REJECTED, department_name="도로과", note="#{receipt_number} 아님"
    )
    assert "반려 사유: #{receipt_number} 아님" in render(catalogue, event).splitlines()


def _edited(tmp_path: Path, state: str, **changes: object) -> Path:
    data = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    data["templates"][state].update(changes)
    path = tmp_path / "ko.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_catalogue_without_every_state_does_not_load(tmp_path: Path) -> None:
    data = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    del data["templates"]["closed"]
    path = tmp_path / "ko.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValidationError, match="closed"):
        Catalogue.load(path)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("접수번호: #{receipt_numbr}", "unknown variable"),
        ("민원이 접수됐습니다.", "receipt_number"),
        ("접수번호: #{receipt_number} #{note}", "with_note"),
    ],
)
def test_a_malformed_template_does_not_load(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Catalogue.load(_edited(tmp_path, "received", text=text))


def _all_texts(catalogue: Catalogue, part: str) -> list[Template]:
    entries = getattr(catalogue, part)
    return [t for entry in entries.values() for t in entry.registered()]


def test_every_resident_message_carries_the_sender_the_receipt_and_the_link(
    catalogue: Catalogue,
) -> None:
    for entry in catalogue.residents():
        for template in entry.registered():
            used = placeholders(template.text)
            assert {"sender_name", "receipt_number", "tracking_url"} <= used, template.template_code
    for template in _all_texts(catalogue, "staff"):
        assert "tracking_url" not in placeholders(template.text), "the resident's page"


def test_a_resident_message_without_the_link_does_not_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"tracking link.*SOTONG_RECEIVED"):
        Catalogue.load(_edited(tmp_path, "received", text="접수번호: #{receipt_number}"))


def test_every_sentence_is_in_one_polite_register(catalogue: Catalogue) -> None:
    """합쇼체 throughout, as the district's own steps are: no 해요체 (…요.) mixed in."""
    for template in catalogue.registered():
        first = template.text.splitlines()[0]
        assert first.startswith("[#{sender_name}] "), template.template_code
        assert first.endswith("니다."), template.template_code
        assert not re.search(r"요[.!?]", template.text), template.template_code
    assert catalogue.subject == "[#{sender_name}] 민원 진행 안내"


@pytest.mark.parametrize(
    ("due_at", "occurred_at", "reads"),
    [
        ("2026-12-10T09:00:00Z", "2026-12-01T00:00:00Z", "12월 10일(목) 18시"),
        ("2026-12-09T15:30:00Z", "2026-12-01T00:00:00Z", "12월 10일(목) 0시 30분"),
        ("2027-01-05T09:00:00Z", "2026-12-28T00:00:00Z", "2027년 1월 5일(화) 18시"),
        ("2026-12-31T20:00:00Z", "2026-12-28T00:00:00Z", "2027년 1월 1일(금) 5시"),
    ],
)
def test_a_due_time_reads_in_plain_korean_in_seoul(
    catalogue: Catalogue, due_at: str, occurred_at: str, reads: str
) -> None:
    event = changed(ComplaintState.SITE_CHECK, due_at=due_at, occurred_at=occurred_at)
    assert values_of(catalogue, event)["due_date"] == reads


def test_the_general_desk_is_not_named_as_if_it_were_the_department(
    catalogue: Catalogue,
) -> None:
    """Below the classifier's threshold the complaint goes to 민원여권과 as the general desk;
    the resident is told it is being reviewed, then where it went when it is transferred."""
    desk = {"department": "civil-passport", "department_name": "민원여권과", "due_at": DUE}
    routed = changed(ComplaintState.ASSIGNED, trigger="assign", auto_routed=False, **desk)
    content = catalogue.resident_content(
        routed.to_state, routed.trigger, values_of(catalogue, routed), general_desk=True
    )
    assert content.template.template_code == "SOTONG_GENERAL_DESK"
    assert "민원여권과" not in content.text
    assert content.text.splitlines()[:2] == [
        "[인천광역시 서구] 민원 내용을 검토해 담당 부서를 찾고 있습니다.",
        "담당 부서로 이송되면 다시 알려 드리겠습니다.",
    ]
    assert "처리기한: 12월 10일(목) 18시까지" in content.text

    moved = changed(
        ComplaintState.ASSIGNED,
        trigger="transfer",
        department="environment",
        department_name="환경보호과",
        note="악취 민원",
    )
    told = catalogue.resident_content(moved.to_state, moved.trigger, values_of(catalogue, moved))
    assert told.text.startswith("[인천광역시 서구] 민원이 환경보호과로 이송됐습니다.")

    confident = changed(ComplaintState.ASSIGNED, trigger="assign", auto_routed=True, **desk)
    assert "민원이 민원여권과로 배정됐습니다" in render(catalogue, confident)


def test_a_rejection_says_why_and_what_the_resident_can_do(catalogue: Catalogue) -> None:
    reason = {"department_name": "자원순환과", "note": "사유지 내 폐기물로 처리 대상이 아닙니다"}
    remedy = "토지 소유자에게 처리를 요청하실 수 있습니다"
    with_remedy = changed(ComplaintState.REJECTED, trigger="reject", remedy=remedy, **reason)
    content = catalogue.resident_content(
        with_remedy.to_state, with_remedy.trigger, values_of(catalogue, with_remedy)
    )
    assert content.template.template_code == "SOTONG_REJECTED_REMEDY"
    lines = content.text.splitlines()
    assert lines[:4] == [
        "[인천광역시 서구] 민원이 반려됐습니다.",
        "반려 사유: 사유지 내 폐기물로 처리 대상이 아닙니다",
        f"안내: {remedy}",
        "문의: 자원순환과",
    ]
    without = changed(ComplaintState.REJECTED, trigger="reject", **reason)
    plain = catalogue.resident_content(
        without.to_state, without.trigger, values_of(catalogue, without)
    )
    assert plain.template.template_code == "SOTONG_REJECTED_NOTE"
    assert "안내:" not in plain.text


def test_an_info_request_says_what_is_needed_and_whom_to_ask(catalogue: Catalogue) -> None:
    handler = HandlerRef(handler_id="h-7", name="김담당", office_phone="032-560-5001")
    event = changed(
        ComplaintState.INFO_REQUESTED,
        trigger="request_info",
        handler=handler,
        note="투기 장소 사진을 보내 주십시오",
    )
    assert render(catalogue, event).splitlines()[:3] == [
        "[인천광역시 서구] 민원을 처리하려면 보완이 필요합니다.",
        "보완할 내용: 투기 장소 사진을 보내 주십시오",
        "문의: 김담당(032-560-5001)",
    ]


def test_the_progress_notice_is_the_residents_with_its_link(catalogue: Catalogue) -> None:
    alert = ComplaintDeadlineAlert.model_validate(
        {
            "complaint_id": "c-1",
            "receipt_number": RECEIPT,
            "kind": "progress_notice",
            "state": "reviewing",
            "received_at": "2026-11-01T00:00:00Z",
            "due_at": DUE,
            "occurred_at": "2026-12-01T00:00:00Z",
        }
    )
    content = catalogue.alert_content(alert.kind, catalogue.values(alert, LETTERHEAD))
    assert content.text.endswith(f"진행 상황: {LINK}")
    assert "처리기한: 12월 10일(목) 18시까지" in content.text


def test_the_link_names_the_complaint_and_never_the_token() -> None:
    head = Letterhead("서구", "https://x.kr/c/{complaint_id}?r={receipt_number}")
    assert head.link("a/b c", RECEIPT) == f"https://x.kr/c/a%2Fb%20c?r={RECEIPT}"
    for pattern, reason in [
        ("https://x.kr/c/{complaint_id}?token={tracking_token}", "tracking_token"),
        ("https://x.kr/c/{token}", "token"),
        ("https://x.kr/c", "must name the complaint"),
        ("https://x.kr/c/{complaint_id", "not a link pattern"),
    ]:
        with pytest.raises(ValueError, match=reason):
            check_tracking_url(pattern)


def test_the_subject_names_the_sender_within_an_lms_title(catalogue: Catalogue) -> None:
    assert (
        catalogue.subject_for({"sender_name": "인천광역시 서구"})
        == "[인천광역시 서구] 민원 진행 안내"
    )
    with pytest.raises(TemplateError, match="40 bytes"):
        catalogue.subject_for({"sender_name": "가" * 12})


def test_a_due_date_pattern_with_an_unknown_field_does_not_load(tmp_path: Path) -> None:
    data = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    data["due_date"]["hour"] = "{hours}시"
    path = tmp_path / "ko.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValidationError, match="due date pattern"):
        Catalogue.load(path)
