"""Handler assignment: a pure choice over the roster and current loads."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing.catalogue import Department, Handler
from schemas.events import HandlerRef


@dataclass(frozen=True)
class Load:
    open: int = 0
    total: int = 0


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
