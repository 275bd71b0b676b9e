"""The lifecycle documentation, generated from the machine itself (``make docs``).

A test compares ``docs/lifecycle.md`` with :func:`render`, so the docs cannot drift
from the table in ``routing/lifecycle.py`` or the wording in ``routing/data/texts.ko.json``.
"""

import sys

from transitions.extensions import GraphMachine

from routing.lifecycle import (
    ACTOR_REFUSALS,
    EFFECTS,
    GUARD_REFUSALS,
    TRANSITIONS,
    WHO_MAY_FIRE,
)
from routing.texts import shipped
from schemas.states import ComplaintState


class _Diagram:
    """GraphMachine draws only for a model; this one is never moved."""


def diagram() -> str:
    model = _Diagram()
    GraphMachine(
        model=model,
        states=list(ComplaintState),
        transitions=TRANSITIONS,
        initial=ComplaintState.RECEIVED,
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        title="Complaint lifecycle",
    )
    lines = model.get_graph().draw(None).splitlines()  # type: ignore[attr-defined]
    return "\n".join(
        line.rstrip() for line in lines if not line.strip().startswith(("Class ", "classDef "))
    )


def _names(source: object) -> str:
    items = source if isinstance(source, list) else [source]
    return ", ".join(f"`{ComplaintState(str(s)).value}`" for s in items)


def render() -> str:
    rows = []
    for t in TRANSITIONS:
        conditions = t.get("conditions", [])
        guards = [conditions] if isinstance(conditions, str) else list(conditions)
        dest = "(stays)" if t["dest"] is None else f"`{ComplaintState(t['dest']).value}`"
        rows.append(
            f"| `{t['trigger']}` | {_names(t['source'])} | {dest} | "
            f"{', '.join(f'`{g}`' for g in guards) or '—'} | {WHO_MAY_FIRE[t['trigger']]} | "
            f"{EFFECTS.get(t['trigger'], '—')} |"
        )
    texts = shipped()
    refusals = [
        f"| `{guard}` | `{code}` | {texts.refusals[code].reason} | "
        f"{texts.refusals[code].reason_ko} |"
        for guard, code in GUARD_REFUSALS.items()
    ]
    states = [f"| `{s.value}` | {texts.states[s]} |" for s in ComplaintState]
    others = [
        f"| {who} | `{code}` | {texts.refusals[code].reason} | {texts.refusals[code].reason_ko} |"
        for who, code in ACTOR_REFUSALS.items()
    ]
    return "\n".join(
        [
            "# Complaint lifecycle",
            "",
            "Generated from `routing/lifecycle.py` and `routing/data/texts.ko.json` by "
            "`make docs`; do not edit by hand.",
            "",
            "```mermaid",
            diagram(),
            "```",
            "",
            "## States",
            "",
            "| state | 한국어 |",
            "|---|---|",
            *states,
            "",
            "## Triggers",
            "",
            "`(stays)` is an internal transition: the state does not change, the event is still",
            "published (a new due time, a new handler).",
            "",
            "| trigger | from | to | guards | who may fire it | effects beside the state |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "## Refusals when someone else fires it",
            "",
            "| who may | code | reason | 사유 |",
            "|---|---|---|---|",
            *others,
            "",
            "## Refusals when a guard fails",
            "",
            "| guard | code | reason | 사유 |",
            "|---|---|---|---|",
            *refusals,
            "",
            "## 반복민원 and 중복민원 (`routing/cases.py`)",
            "",
            "At filing, after the department is known, one indexed read finds what a new",
            "complaint may repeat or join; the marks are internal transitions on the lifecycle",
            "topic, so they keep the complaint's order and its outbox.",
            "",
            "- `mark_repeated` (`repeated_of`: the earlier complaint and the similarity): the",
            "  same resident (a keyed hash of the phone, or the resident token's hash), the",
            "  same department, a complaint resolved or closed within",
            "  `SOTONG_ROUTING_REPEAT_WINDOW_DAYS`,",
            "  texts at least `SOTONG_ROUTING_REPEAT_THRESHOLD` alike (TF-IDF cosine over the",
            "  classifier's morphemes; `sotong repeat-eval` measures it). The department",
            "  confirms with `conclude_repeated` (closed; the event carries the earlier answer,",
            "  which the resident's notice quotes with 민원 처리에 관한 법률 제23조 and the",
            "  remedy) or drops the mark with `dismiss_repeated`.",
            "- `link` (`linked_to`: the case, the similarity, the distance): another complaint",
            "  open in the same department and 행정동, at the same place (coordinates within",
            "  `SOTONG_ROUTING_DUPLICATE_DISTANCE_M`, else the same address), texts at least",
            "  `SOTONG_ROUTING_DUPLICATE_THRESHOLD` alike (`…_SAME_SERVICE_THRESHOLD` when both",
            "  were filed with one service code; two service codes are never linked). The",
            "  case's handler takes it; the case's moves (site check, review, resolve, reject,",
            "  close, reassign) are made on it too with `case_of` naming the case, so its",
            "  resident hears the progress and the result on their own complaint; a withdrawn",
            "  or transferred case releases it (`unlink`, as the department's `unlink` command",
            "  does).",
            "",
        ]
    )


if __name__ == "__main__":
    sys.stdout.write(render())
