"""The words residents read: every state has a template, and filling one is all or nothing."""

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from notifier.templates import (
    APPROVED_PATH,
    CATALOGUE_PATH,
    ELLIPSIS,
    Catalogue,
    Template,
    TemplateError,
    cp949_length,
    josa_ro,
    placeholders,
    variables_for,
)
from routing.lifecycle import TRANSITIONS
from schemas import ComplaintState, ComplaintStatusChanged
from schemas.events import AlertKind, HandlerRef
from services.errors import PermanentError

RECEIPT = "251125-004217"


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


def render(catalogue: Catalogue, event: ComplaintStatusChanged) -> str:
    values = variables_for(event)
    return catalogue.template_for(event.to_state, values).render(values)


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
    message: the resident would read "현장 확인 중입니다" again when the deadline moved."""
    internal = {t["trigger"] for t in TRANSITIONS if t["dest"] is None}
    assert internal == {"extend", "reassign"}
    assert internal <= set(catalogue.triggers)
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
        update={"text": "[소통] 접수 완료.\n접수번호: #{receipt_number}"}
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
        (ComplaintState.ASSIGNED, {"department": "RES", "department_name": "자원순환과"}),
        (ComplaintState.HANDLER_ASSIGNED, {"handler": handler}),
        (ComplaintState.SITE_CHECK, {}),
        (ComplaintState.REVIEWING, {}),
        (ComplaintState.RESOLVED, {}),
    ]
    texts = {state: render(catalogue, changed(state, **fields)) for state, fields in steps}
    assert "민원이 접수됐습니다" in texts[ComplaintState.RECEIVED]
    assert "자원순환과로 배정됐습니다" in texts[ComplaintState.ASSIGNED]
    assert "담당자(김담당, 032-123-4567)가 정해졌습니다" in texts[ComplaintState.HANDLER_ASSIGNED]
    assert "현장 확인 중입니다" in texts[ComplaintState.SITE_CHECK]
    assert "현재 심사 중입니다" in texts[ComplaintState.REVIEWING]
    assert "처리 완료됐습니다" in texts[ComplaintState.RESOLVED]
    for text in texts.values():
        assert RECEIPT in text
        assert "#{" not in text


def test_assigned_to_a_department_ending_in_a_consonant(catalogue: Catalogue) -> None:
    text = render(catalogue, changed(ComplaintState.ASSIGNED, department_name="건축팀"))
    assert "건축팀으로 배정됐습니다" in text


def test_a_note_selects_the_variant_that_carries_it(catalogue: Catalogue) -> None:
    event = changed(ComplaintState.RESOLVED, note="무단투기 쓰레기를 수거했습니다.")
    values = variables_for(event)
    template = catalogue.template_for(event.to_state, values)
    assert template.template_code == "SOTONG_RESOLVED_NOTE"
    text = template.render(values)
    assert "처리 완료됐습니다" in text
    assert text.endswith("처리 결과: 무단투기 쓰레기를 수거했습니다.")


def test_a_blank_note_is_no_note(catalogue: Catalogue) -> None:
    event = changed(ComplaintState.RESOLVED, note="   ")
    assert catalogue.template_for(event.to_state, variables_for(event)).template_code == (
        "SOTONG_RESOLVED"
    )


def test_a_missing_variable_is_permanent_and_named(catalogue: Catalogue) -> None:
    event = changed(ComplaintState.ASSIGNED, department="RES")
    values = variables_for(event)
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
    content = catalogue.resident_content(event.to_state, event.trigger, variables_for(event))
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
    content = catalogue.resident_content(event.to_state, event.trigger, variables_for(event))
    assert "2026-12-03 18:00까지로 연장됐습니다" in content.text
    assert content.text.endswith("연장 사유: 현장 재조사 필요")
    assert content.short is None, "the reason for an extension must be told"


def test_a_long_note_is_shortened_by_whole_characters_only(catalogue: Catalogue) -> None:
    template = catalogue.templates[ComplaintState.RESOLVED].with_note
    assert template is not None
    values = {"receipt_number": RECEIPT, "note": "수거를 완료했습니다. " * 200}
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
    event = changed(ComplaintState.REJECTED, note="#{receipt_number} 아님")
    assert render(catalogue, event).endswith("반려 사유: #{receipt_number} 아님")


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
