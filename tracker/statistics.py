"""How the district is doing against the law, computed from complaint read models.

Pure: the rows (:class:`StatisticsRow`) are the read models' non-personal fields (state,
department, counts, the timeline's states and times), and the store fetches only the
fields the row declares; nothing here does I/O, and nothing here can see a name, a phone
number or an address because a row cannot hold one. Computed on request: a district
files thousands of complaints a year, not millions.

Definitions (each rate is null while its denominator is zero):

- time per stage: for every stage a complaint has *left*, from entering the state to the
  first change to another state (internal changes such as an extension do not end a
  stage); the stage it is in now is not counted yet;
- time to resolution: from the first transition (접수) to the first resolution;
- resolved within the legal deadline: of complaints resolved at least once (with a due
  time), the share whose first resolution came no later than the due time in force
  then (lawful extensions included);
- reopen rate: of complaints resolved at least once, the share reopened (재민원);
- transfer rate: of complaints assigned to a department, the share transferred (이송);
- auto-routing rate: of complaints routed, the share routed without a person;
- per department, complaints concluded as 반복민원 (``repeated``) and complaints joined
  to another resident's case (``linked``, 중복민원);
- per department, residents' ratings of the handling (만족도, 1–5): how many complaints
  are rated (each counts once, by its latest rating) and their mean; the mean is
  withheld with the count.
"""

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from schemas.states import ComplaintState

RESOLVED = ComplaintState.RESOLVED.value


class Stage(BaseModel):
    """One timeline entry, as statistics read it: no note, no handler."""

    state: str
    trigger: str | None = None
    occurred_at: datetime
    due_at: datetime | None = None


class StatisticsRow(BaseModel):
    """What statistics read of one read model."""

    state: str | None
    department: str | None
    filed_at: datetime | None
    auto_routed: bool | None
    transfer_count: int = 0
    reopen_count: int = 0
    repeated: bool = False
    linked: bool = False
    rating: int | None = None
    timeline: list[Stage] = Field(description="In sequence order.")


SUPPRESSED = "null where a count would be above zero and below the minimum cell size."


class Durations(BaseModel):
    count: int | None = Field(description=SUPPRESSED)
    median_seconds: float | None
    p90_seconds: float | None


class Rate(BaseModel):
    numerator: int | None = Field(description=SUPPRESSED)
    denominator: int | None = Field(description=SUPPRESSED)
    rate: float | None = Field(
        description="numerator / denominator; null when nothing counts or a count is withheld."
    )


class DepartmentCounts(BaseModel):
    total: int | None = Field(description=SUPPRESSED)
    by_state: dict[str, int | None]
    repeated: int | None = Field(
        default=0, description="Concluded as 반복민원 (법 제23조). " + SUPPRESSED
    )
    linked: int | None = Field(
        default=0, description="Joined to another resident's case (중복민원). " + SUPPRESSED
    )
    ratings: int | None = Field(
        default=0, description="Complaints the resident rated (만족도). " + SUPPRESSED
    )
    rating_mean: float | None = Field(
        default=None, description="Their mean rating, 1–5; null with no ratings or withheld."
    )


class Statistics(BaseModel):
    complaints: int | None = Field(description="Complaints counted (filed or routed).")
    awaiting_routing: int | None = Field(description="Filed, with no transition recorded yet.")
    by_state: dict[str, int | None]
    by_department: dict[str, DepartmentCounts]
    time_in_stage: dict[str, Durations] = Field(
        description="Per state left at least once: how long complaints stayed in it."
    )
    time_to_resolution: Durations
    resolved_within_deadline: Rate
    reopen_rate: Rate
    transfer_rate: Rate
    auto_routing_rate: Rate
    period_from: datetime | None = Field(default=None, description="Filed at or after.")
    period_to: datetime | None = Field(default=None, description="Filed before.")
    min_cell: int = Field(
        default=1, description="Counts above zero and below this are withheld (null)."
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def durations(values: Sequence[float]) -> Durations:
    return Durations(
        count=len(values),
        median_seconds=percentile(values, 0.5),
        p90_seconds=percentile(values, 0.9),
    )


def rate(numerator: int, denominator: int) -> Rate:
    return Rate(
        numerator=numerator,
        denominator=denominator,
        rate=numerator / denominator if denominator else None,
    )


def stage_times(timeline: Sequence[Stage]) -> list[tuple[str, float]]:
    """(state, seconds) for every stage left, in order."""
    stages: list[tuple[str, float]] = []
    current: str | None = None
    entered: datetime | None = None
    for entry in timeline:
        state, at = entry.state, entry.occurred_at
        if state == current:
            continue
        if current is not None and entered is not None:
            stages.append((current, (at - entered).total_seconds()))
        current, entered = state, at
    return stages


def statistics(rows: Iterable[StatisticsRow]) -> Statistics:
    total = awaiting = 0
    by_state: Counter[str] = Counter()
    by_department: dict[str, Counter[str]] = {}
    cases: dict[str, Counter[str]] = {}
    in_stage: dict[str, list[float]] = {}
    to_resolution: list[float] = []
    resolved = reopened = assigned = transferred = routed = auto = 0
    judged = on_time = 0
    for row in rows:
        total += 1
        state, department, timeline = row.state, row.department, row.timeline
        if state is None:
            awaiting += 1
        else:
            by_state[state] += 1
        if department is not None:
            assigned += 1
            by_department.setdefault(department, Counter())[state or "awaiting_routing"] += 1
            marks = cases.setdefault(department, Counter())
            marks["repeated"] += row.repeated
            marks["linked"] += row.linked
            if row.rating is not None:
                marks["ratings"] += 1
                marks["rating_sum"] += row.rating
            transferred += row.transfer_count > 0
        if row.auto_routed is not None:
            routed += 1
            auto += row.auto_routed
        for stage, seconds in stage_times(timeline):
            in_stage.setdefault(stage, []).append(seconds)
        resolution = next((e for e in timeline if e.state == RESOLVED), None)
        if resolution is not None:
            resolved += 1
            reopened += row.reopen_count > 0
            if resolution.due_at is not None:
                judged += 1
                on_time += resolution.occurred_at <= resolution.due_at
            to_resolution.append((resolution.occurred_at - timeline[0].occurred_at).total_seconds())
    return Statistics(
        complaints=total,
        awaiting_routing=awaiting,
        by_state=dict(sorted(by_state.items())),
        by_department={
            code: DepartmentCounts(
                total=sum(counts.values()),
                by_state=dict(sorted(counts.items())),
                repeated=cases[code]["repeated"],
                linked=cases[code]["linked"],
                ratings=cases[code]["ratings"],
                rating_mean=mean_rating(cases[code]),
            )
            for code, counts in sorted(by_department.items())
        },
        time_in_stage={stage: durations(values) for stage, values in sorted(in_stage.items())},
        time_to_resolution=durations(to_resolution),
        resolved_within_deadline=rate(on_time, judged),
        reopen_rate=rate(reopened, resolved),
        transfer_rate=rate(transferred, assigned),
        auto_routing_rate=rate(auto, routed),
    )


def mean_rating(marks: Counter[str]) -> float | None:
    return round(marks["rating_sum"] / marks["ratings"], 2) if marks["ratings"] else None


def suppressed(stats: Statistics, minimum: int) -> Statistics:
    """The same figures with every count in 1..minimum-1 withheld, and every figure
    derived from one: a median of three stays, a rate of 2 in 100 reveals two people (so
    does 98 in 100: its complement is withheld as well). Zero stays zero: it names no one."""

    def count(n: int | None) -> int | None:
        return None if n is None or 0 < n < minimum else n

    def times(d: Durations) -> Durations:
        if d.count is not None and d.count < minimum:
            return Durations(count=count(d.count), median_seconds=None, p90_seconds=None)
        return d

    def ratio(r: Rate) -> Rate:
        num, den = r.numerator or 0, r.denominator or 0
        if den < minimum:
            return Rate(numerator=count(num), denominator=count(den), rate=None)
        if 0 < num < minimum or 0 < den - num < minimum:
            return Rate(numerator=None, denominator=den, rate=None)
        return r

    return stats.model_copy(
        update={
            "complaints": count(stats.complaints),
            "awaiting_routing": count(stats.awaiting_routing),
            "by_state": {state: count(n) for state, n in stats.by_state.items()},
            "by_department": {
                code: DepartmentCounts(
                    total=count(d.total),
                    by_state={state: count(n) for state, n in d.by_state.items()},
                    repeated=count(d.repeated),
                    linked=count(d.linked),
                    ratings=count(d.ratings),
                    rating_mean=d.rating_mean if count(d.ratings) is not None else None,
                )
                for code, d in stats.by_department.items()
            },
            "time_in_stage": {stage: times(d) for stage, d in stats.time_in_stage.items()},
            "time_to_resolution": times(stats.time_to_resolution),
            "resolved_within_deadline": ratio(stats.resolved_within_deadline),
            "reopen_rate": ratio(stats.reopen_rate),
            "transfer_rate": ratio(stats.transfer_rate),
            "auto_routing_rate": ratio(stats.auto_routing_rate),
            "min_cell": minimum,
        }
    )
