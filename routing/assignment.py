"""Handler assignment: a pure choice over the roster and current loads."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing.catalogue import Department, Handler
from schemas.events import HandlerRef


@dataclass(frozen=True)
class Load:
    open: int = 0
    total: int = 0

    def plus(self, delta: "LoadDelta") -> "Load":
        return Load(open=self.open + delta.open, total=self.total + delta.total)


@dataclass(frozen=True)
class Held:
    """A complaint as its handler's load counts it: whose, and whether still open."""

    handler_id: str
    open: bool


@dataclass(frozen=True)
class LoadDelta:
    """A change to one handler's counters, named by ``key`` (complaint and sequence) so
    that applying it twice counts it once."""

    handler_id: str
    open: int
    total: int
    key: str


def load_deltas(key: str, before: Held | None, after: Held | None) -> tuple[LoadDelta, ...]:
    """What moving a complaint from ``before`` to ``after`` does to the counters."""
    if before == after:
        return ()
    deltas = []
    if before is not None:
        deltas.append(LoadDelta(before.handler_id, -int(before.open), -1, key))
    if after is not None:
        deltas.append(LoadDelta(after.handler_id, int(after.open), 1, key))
    if before is not None and after is not None and before.handler_id == after.handler_id:
        return (LoadDelta(after.handler_id, int(after.open) - int(before.open), 0, key),)
    return tuple(deltas)


def choose_handler(
    department: Department,
    roster: Sequence[Handler],
    *,
    area: str | None,
    loads: Mapping[str, Load],
) -> HandlerRef:
    """The on-duty handler covering the area with the fewest open complaints.

    Ties go to whoever has been given fewer complaints in all, then roster order, which
    makes equals take turns (round-robin) with no counter to keep. With nobody on duty
    for the area and under capacity, the department's supervisor takes it.
    """
    eligible = [
        h
        for h in roster
        if h.on_duty
        and (area is None or area in h.areas)
        and loads.get(h.handler_id, Load()).open < h.capacity
    ]
    if not eligible:
        return department.supervisor
    order = {h.handler_id: i for i, h in enumerate(roster)}
    best = min(
        eligible,
        key=lambda h: (
            loads.get(h.handler_id, Load()).open,
            loads.get(h.handler_id, Load()).total,
            order[h.handler_id],
        ),
    )
    return best.ref()


def handler_for_new_area(
    department: Department,
    roster: Sequence[Handler],
    *,
    current: HandlerRef | None,
    area: str | None,
    loads: Mapping[str, Load],
) -> HandlerRef | None:
    """After a resident corrects the 행정동: the handler to take over, or None to keep the
    current one. A handler on duty who covers the new area keeps the complaint (no move
    for nothing); otherwise the roster rule chooses (:func:`choose_handler`), and choosing
    the same person again is no move either. Without a handler yet there is nothing to
    move: the assignment to come reads the new area."""
    if current is None:
        return None
    mine = next((h for h in roster if h.handler_id == current.handler_id), None)
    if mine is not None and mine.on_duty and (area is None or area in mine.areas):
        return None
    chosen = choose_handler(department, roster, area=area, loads=loads)
    return None if chosen.handler_id == current.handler_id else chosen
