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
        ]
    )


if __name__ == "__main__":
    sys.stdout.write(render())
