"""The words residents and departments read come from data, and none is missing.

Codes and states are enumerated from the code, so a new state or refusal code without
its text in ``routing/data/texts.ko.json`` fails here (and at start-up).
"""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from routing.lifecycle import GUARD_REFUSALS, TRANSITIONS, Facts, Lifecycle
from routing.texts import TEXTS, Refusal, RefusalCode, Texts, shipped
from schemas.states import ComplaintState as S

SELECTORS = {"resumes_handler_assigned", "resumes_site_check", "resumes_reviewing"}
"""Guards that choose among a trigger's destinations rather than refuse it."""


def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TEXTS.read_text(encoding="utf-8"))
    return data


def test_every_state_has_its_korean_name_in_the_data() -> None:
    states = raw()["states"]
    for state in S:
        assert str(states.get(state.value, "")).strip(), f"no Korean name for {state.value}"


def test_every_refusal_code_has_english_and_korean_in_the_data() -> None:
    refusals = raw()["refusals"]
    for code in RefusalCode:
        assert code.value in refusals, f"no text for refusal {code.value}"
        assert refusals[code.value]["reason"].strip()
        assert refusals[code.value]["reason_ko"].strip()


def test_every_guard_that_can_refuse_names_a_refusal_code() -> None:
    guards: set[str] = set()
    for t in TRANSITIONS:
        conditions = t.get("conditions", [])
        guards |= {conditions} if isinstance(conditions, str) else set(conditions)
    assert guards - SELECTORS == set(GUARD_REFUSALS)
    assert all(isinstance(code, RefusalCode) for code in GUARD_REFUSALS.values())


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d["states"].pop("closed"), "states without a Korean name"),
        (lambda d: d["refusals"].pop("unknown_handler"), "refusal codes without text"),
        (
            lambda d: d["refusals"]["routing_only"].update(reason_ko="{action} 불가"),
            "names ['action']",
        ),
        (lambda d: d["refusals"].update(no_such_code=d["refusals"]["routing_only"]), "Input"),
    ],
)
def test_an_incomplete_or_wrong_file_fails_at_load(change: Any, complaint: str) -> None:
    data = raw()
    change(data)
    with pytest.raises(ValidationError, match=complaint.replace("[", r"\[")):
        Texts.model_validate(data)


def test_the_lifecycle_fills_its_sentences_from_the_data() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(Refusal) as illegal:
        lifecycle.fire(S.RECEIVED, "resolve", Facts(note="x"))
    assert (illegal.value.code, illegal.value.reason, illegal.value.reason_ko) == (
        "illegal_transition",
        "cannot resolve a complaint that is received",
        "현재 상태(접수)에서는 할 수 없는 처리입니다",
    )
    with pytest.raises(Refusal) as unknown:
        lifecycle.fire(S.RECEIVED, "to_resolved")
    assert (unknown.value.reason, unknown.value.reason_ko) == (
        "unknown action 'to_resolved'",
        "알 수 없는 처리(to_resolved)입니다",
    )


def test_texts_given_to_the_lifecycle_are_the_ones_it_uses() -> None:
    data = raw()
    data["states"]["received"] = "접수됨"
    lifecycle = Lifecycle(Texts.model_validate(data))
    with pytest.raises(Refusal, match="received") as refused:
        lifecycle.fire(S.RECEIVED, "close")
    assert "접수됨" in refused.value.reason_ko
    assert shipped().states[S.RECEIVED] == "접수"
