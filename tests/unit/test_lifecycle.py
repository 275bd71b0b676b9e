from dataclasses import replace

import pytest

from routing.lifecycle import TRANSITIONS, Facts, Lifecycle
from routing.texts import Refusal
from schemas.states import ComplaintState as S


@pytest.fixture(scope="module")
def lifecycle() -> Lifecycle:
    return Lifecycle()


def test_the_happy_path_reaches_resolved(lifecycle: Lifecycle) -> None:
    state = S.RECEIVED
    for trigger in ["assign", "assign_handler", "start_site_check", "start_review"]:
        state = lifecycle.fire(state, trigger).to_state
    change = lifecycle.fire(state, "resolve", Facts(note="수거 완료"))
    assert (change.from_state, change.to_state, change.trigger) == (
        S.REVIEWING,
        S.RESOLVED,
        "resolve",
    )


@pytest.mark.parametrize("state", [S.RECEIVED, S.ASSIGNED])
def test_resolve_before_a_handler_exists_is_refused(lifecycle: Lifecycle, state: S) -> None:
    with pytest.raises(Refusal) as refused:
        lifecycle.fire(state, "resolve", Facts(note="결과"))
    assert refused.value.code == "illegal_transition"
    assert refused.value.reason_ko


def test_resolve_needs_a_result_text(lifecycle: Lifecycle) -> None:
    for note in (None, "", "   "):
        with pytest.raises(Refusal) as refused:
            lifecycle.fire(S.REVIEWING, "resolve", Facts(note=note))
        assert refused.value.code == "result_required"


def test_unknown_triggers_and_auto_transitions_do_not_exist(lifecycle: Lifecycle) -> None:
    with pytest.raises(Refusal) as refused:
        lifecycle.fire(S.RECEIVED, "to_resolved")
    assert refused.value.code == "unknown_action"


def test_no_model_is_left_behind(lifecycle: Lifecycle) -> None:
    lifecycle.fire(S.RECEIVED, "assign")
    with pytest.raises(Refusal):
        lifecycle.fire(S.RECEIVED, "resolve", Facts(note="x"))
    assert lifecycle.machine.models == []


def test_every_department_action_is_a_trigger(lifecycle: Lifecycle) -> None:
    from schemas.commands import DepartmentAction, ResidentAction

    actions = {a.value for a in DepartmentAction} | {a.value for a in ResidentAction}
    assert actions <= set(lifecycle.triggers())
    assert all(t["dest"] is None or isinstance(t["dest"], S) for t in TRANSITIONS)


@pytest.mark.parametrize(
    ("to_department", "code"),
    [
        ("no-such-department", "unknown_department"),
        ("", "unknown_department"),
        (None, "unknown_department"),
        ("roads", "same_department"),
    ],
)
def test_a_transfer_names_a_known_department_other_than_the_current_one(
    lifecycle: Lifecycle, to_department: str | None, code: str
) -> None:
    facts = Facts(
        note="소관 아님",
        department="roads",
        to_department=to_department,
        known_departments={"roads", "parks"},
    )
    with pytest.raises(Refusal) as refused:
        lifecycle.fire(S.HANDLER_ASSIGNED, "transfer", facts)
    assert refused.value.code == code

    moved = lifecycle.fire(S.HANDLER_ASSIGNED, "transfer", replace(facts, to_department="parks"))
    assert moved.to_state == S.ASSIGNED
