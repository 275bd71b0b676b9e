"""The words residents read that are not in a page template: step names, what each
transition means, error messages (``portal/data/texts.ko.json``), checked at start."""

import json
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from portal.menu import DATA
from schemas.states import ComplaintState


class StepText(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    state: ComplaintState
    label: str
    label_unknown: str | None = None
    done: str


class Texts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    steps: tuple[StepText, ...]
    states: dict[str, str]
    events: dict[str, str]
    note_labels: dict[str, str]
    remedy_label: str
    due_label: str
    overdue: str
    errors: dict[str, str]
    field_names: dict[str, str] = {}
    """How the page names the fields a correction (정정) changed."""

    def state(self, state: str | None) -> str:
        return self.states.get(state or "unknown", self.states["unknown"])

    def error(self, code: str, **values: object) -> str:
        return self.errors[code].format(**values)


@cache
def texts() -> Texts:
    loaded = Texts.model_validate(json.loads((DATA / "texts.ko.json").read_text(encoding="utf-8")))
    missing = {s.value for s in ComplaintState} - set(loaded.states)
    if missing:
        raise ValueError(f"texts.ko.json: no name for states {sorted(missing)}")
    return loaded
