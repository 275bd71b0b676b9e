"""The district's tasks the portal offers (``portal/data/menu.json``) and the search over
them: the home page's large buttons, search results and suggestions all come from here."""

import json
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.catalogue import district_dongs

DATA = Path(__file__).parent / "data"


class MenuItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    label: str = Field(min_length=1)
    hint: str
    path: str = Field(pattern=r"^/[^/]")
    home: bool
    keywords: tuple[str, ...]


class Menu(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    note: str
    items: tuple[MenuItem, ...]

    def by_id(self, item_id: str) -> MenuItem | None:
        return next((item for item in self.items if item.id == item_id), None)

    @property
    def home(self) -> list[MenuItem]:
        return [item for item in self.items if item.home]

    def search(self, query: str, limit: int = 6) -> list[MenuItem]:
        """Items whose label or keywords share words with the query, best first. Korean is
        written with and without spaces, so both sides are also compared unspaced."""
        words = [w for w in query.split() if w]
        squashed = "".join(words)
        if not squashed:
            return []
        scored: list[tuple[int, int, MenuItem]] = []
        for order, item in enumerate(self.items):
            terms = [item.label.replace(" ", ""), *(k.replace(" ", "") for k in item.keywords)]
            score = sum(1 for term in terms if len(term) >= 2 and term in squashed)
            score += sum(2 for word in words if len(word) >= 2 and any(word in t for t in terms))
            if score:
                scored.append((-score, order, item))
        return [item for _, _, item in sorted(scored, key=lambda s: (s[0], s[1]))][:limit]


@cache
def menu() -> Menu:
    return Menu.model_validate(json.loads((DATA / "menu.json").read_text(encoding="utf-8")))


def dongs() -> tuple[str, ...]:
    """The district's 행정동, from the contract data intake and routing check against."""
    return district_dongs()
