"""Parking: a lifecycle event that arrives before its complaint's ComplaintFiled waits.

The two travel on different topics, so after a restart a step may come seconds before
the filing that says whom to tell. Such an event is parked in the store (so the offset
can be committed without losing it) and handled, in lifecycle order, as soon as the
recipient is known: by the filing's batch, or by the next lifecycle batch of the same
complaint, whichever comes first. Pure; the store keeps the parked events.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from schemas import ComplaintStatusChanged


@dataclass(frozen=True)
class Parked:
    event: ComplaintStatusChanged
    correlation_id: str | None


@dataclass(frozen=True)
class Step:
    """One lifecycle event to handle now; ``parked`` if it waits in the store (and is
    taken out once handled)."""

    event: ComplaintStatusChanged
    correlation_id: str | None
    parked: bool


def in_lifecycle_order(parked: Iterable[Parked], arrived: Iterable[Parked]) -> list[Step]:
    """One complaint's parked and newly arrived events as one list by sequence, each
    event once (a redelivered parked event is the parked one)."""
    steps: dict[str, Step] = {}
    for item in parked:
        steps[item.event.event_id] = Step(item.event, item.correlation_id, parked=True)
    for item in arrived:
        steps.setdefault(item.event.event_id, Step(item.event, item.correlation_id, parked=False))
    return sorted(steps.values(), key=lambda s: s.event.sequence)


class ParkingStore(Protocol):
    """Where parked events wait."""

    async def park(
        self, event: ComplaintStatusChanged, *, correlation_id: str | None, now: datetime
    ) -> bool:
        """Keep an event until its recipient is known; True the first time it is parked."""
        ...

    async def parked(self, complaint_id: str) -> list[Parked]:
        """A complaint's parked events, in lifecycle order."""
        ...

    async def unpark(self, event_id: str) -> None: ...

    async def park_many(self, items: Sequence[Parked], *, now: datetime) -> set[str]:
        """:meth:`park` for a batch, in one write; the event ids parked for the first time."""
        ...

    async def parked_for(self, complaint_ids: Collection[str]) -> dict[str, list[Parked]]:
        """The parked events of these complaints, each complaint's in lifecycle order."""
        ...

    async def unpark_many(self, event_ids: Collection[str]) -> None: ...
