"""Suggested menus from what the resident has done, by rules kept as data
(``portal/data/suggestions.json``).

A behaviour is a complaint (as filed here, or as tracker lists it) or a question to the
chatbot. Which rules it meets is decided here, purely; the portal remembers only the ids
of the rules met (``PortalStore.record_signals``), never the words, and shows
suggestions only to a resident it knows.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from portal.menu import DATA, Menu, MenuItem

Source = Literal["complaint", "question"]


class When(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: tuple[Source, ...]
    departments: tuple[str, ...]
    service_codes: tuple[str, ...]
    keywords: tuple[str, ...]


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    when: When
    suggest: tuple[str, ...]
    reason: str


class Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    note: str
    rules: tuple[Rule, ...]

    def check(self, menu: Menu) -> None:
        """Every suggested id names a menu item; the portal refuses to start otherwise."""
        for rule in self.rules:
            unknown = [i for i in rule.suggest if menu.by_id(i) is None]
            if unknown:
                raise ValueError(f"suggestion rule {rule.id}: unknown menu items {unknown}")


@dataclass(frozen=True)
class Behaviour:
    source: Source
    department: str | None = None
    service_code: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Suggestion:
    item: MenuItem
    reason: str


def met(rules: Rules, behaviour: Behaviour) -> list[str]:
    """The ids of the rules one behaviour meets."""
    squashed = behaviour.text.replace(" ", "")
    found = []
    for rule in rules.rules:
        when = rule.when
        if behaviour.source not in when.sources:
            continue
        if (
            (behaviour.department is not None and behaviour.department in when.departments)
            or (behaviour.service_code is not None and behaviour.service_code in when.service_codes)
            or any(k.replace(" ", "") in squashed for k in when.keywords if k)
        ):
            found.append(rule.id)
    return found


def suggest(
    rules: Rules,
    menu: Menu,
    rule_ids: Iterable[str],
    *,
    exclude: Iterable[str] = (),
    limit: int = 4,
) -> list[Suggestion]:
    """The menus the met rules suggest, most recent rule first, each item once."""
    seen = set(exclude)
    out: list[Suggestion] = []
    by_id = {rule.id: rule for rule in rules.rules}
    for rule_id in dict.fromkeys(reversed(list(rule_ids))):
        rule = by_id.get(rule_id)
        if rule is None:
            continue
        for item_id in rule.suggest:
            item = menu.by_id(item_id)
            if item is not None and item.id not in seen:
                seen.add(item.id)
                out.append(Suggestion(item, rule.reason))
    return out[:limit]


@cache
def shipped() -> Rules:
    raw = json.loads((DATA / "suggestions.json").read_text(encoding="utf-8"))
    return Rules.model_validate(raw)
