"""'이미 접수된 민원이 있어요': the open complaints a resident about to file may be repeating.

Public: anyone filing may ask, so an answer holds nothing a reporter wrote or is — no
text, no name, no address, no receipt number — only what the district would say of any
open case: the kind of problem (the service's department and its 행정동), its state and
the day it was filed, plus the id the resident can ``follow`` it by. The text given is
compared with each candidate's content morphemes (``search_terms``, kept for staff search)
by set cosine; the candidates are the open complaints of one department in one 행정동
(one indexed query, at most ``max_candidates``), filed within the window.

Pure. The lookup is rate-limited per caller by the kit's ``services.ratelimit`` (wired in
``tracker.app``).
"""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field

from schemas.states import ComplaintState


class SimilarRow(BaseModel):
    """What the lookup reads of a read model: nothing personal."""

    complaint_id: str
    state: ComplaintState | None
    department: str | None
    department_name: str | None = None
    dong: str | None
    filed_at: datetime | None
    search_terms: list[str] = []


class PublicSummary(BaseModel):
    """An open complaint as any resident may see it when about to file the same."""

    complaint_id: str = Field(description="To follow it instead of filing anew.")
    state: ComplaintState
    department_name: str | None = Field(description="The department working on it.")
    dong: str = Field(description="행정동.")
    filed_on: date = Field(description="The day it was filed (Korean time).")
    similarity: float = Field(ge=0, le=1, description="How alike the texts are (set cosine).")


class SimilarComplaints(BaseModel):
    items: list[PublicSummary] = Field(description="The most alike first; at most `limit`.")


def cosine(a: Iterable[str], b: Iterable[str]) -> float:
    first, second = set(a), set(b)
    if not first or not second:
        return 0.0
    return len(first & second) / math.sqrt(len(first) * len(second))


@dataclass(frozen=True, kw_only=True)
class SimilarPolicy:
    threshold: float = 0.4
    """Measured on ``routing/data/repeats.ko.jsonl`` with these terms: every same-matter
    pair at or above it, and 14 % of the new-matter pairs of the same department (the
    place narrows those further, and the resident can still file anyway). On
    ``routing/data/duplicates.ko.jsonl`` (two residents, one place): half the duplicates,
    and 15 % of the different problems at the same place; 0.35 would offer 57 % and 30 %,
    0.45 only 24 % and 3 %. Kept: an offer shows no text, so a resident cannot tell a
    wrong one from theirs, and following a wrong case leaves their problem unfiled."""
    window: timedelta = timedelta(days=30)
    max_candidates: int = 200
    max_results: int = 5


def likely_duplicates(
    terms: Sequence[str],
    rows: Iterable[SimilarRow],
    *,
    policy: SimilarPolicy,
    now: datetime,
    day_of: Callable[[datetime], date],
) -> list[PublicSummary]:
    since = now - policy.window
    scored = []
    for row in rows:
        if row.state is None or row.filed_at is None or row.filed_at < since or not row.dong:
            continue
        score = cosine(terms, row.search_terms)
        if score >= policy.threshold:
            scored.append((score, row))
    scored.sort(key=lambda pair: (-pair[0], pair[1].complaint_id))
    return [
        PublicSummary(
            complaint_id=row.complaint_id,
            state=row.state,
            department_name=row.department_name,
            dong=row.dong,
            filed_on=day_of(row.filed_at),
            similarity=round(score, 4),
        )
        for score, row in scored[: policy.max_results]
        if row.state is not None and row.filed_at is not None and row.dong
    ]
