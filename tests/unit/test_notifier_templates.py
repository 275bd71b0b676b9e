"""The words residents read: every state has a template, and filling one is all or nothing."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from notifier.templates import CATALOGUE_PATH, Catalogue, josa_ro, variables_for
from schemas import ComplaintState, ComplaintStatusChanged
from schemas.events import HandlerRef
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


def test_template_codes_are_unique(catalogue: Catalogue) -> None:
    codes = [t.template_code for t in catalogue.templates.values()]
    codes += [t.with_note.template_code for t in catalogue.templates.values() if t.with_note]
    assert len(codes) == len(set(codes))


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
