"""Quiet-hour deferral: what is not urgent waits until the quiet period ends.

The event and the recipient are held, not the text, so the message is made when it is
sent, exactly as it would have been at once. An urgent message to the same person first
sends what was held for them, so they read their complaint's steps in order; the rest is
released by a small loop when its time comes. Pure; the store keeps what is held.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Protocol

from pydantic import Field, TypeAdapter

from notifier.quiet import QuietHours
from schemas import ComplaintDeadlineAlert, ComplaintStatusChanged

Source = ComplaintStatusChanged | ComplaintDeadlineAlert
AnySource = Annotated[Source, Field(discriminator="event_type")]
SOURCE: TypeAdapter[Source] = TypeAdapter(AnySource)


@dataclass(frozen=True)
class Deferred:
    """A message held back: one event, for one recipient."""

    deferred_id: str
    complaint_id: str
    recipient: str
    source: Source
    correlation_id: str | None
    release_at: datetime


@dataclass(frozen=True)
class Hold:
    """A message to hold back until ``release_at``."""

    source: Source
    recipient: str
    correlation_id: str | None
    release_at: datetime

    @property
    def deferred_id(self) -> str:
        return deferred_id(self.source.event_id, self.recipient)


def deferred_id(event_id: str, recipient: str) -> str:
    return f"{event_id}:{recipient}"


def sequence_of(source: Source) -> int:
    """Lifecycle order of what is held; an alert has none and sorts first."""
    return source.sequence if isinstance(source, ComplaintStatusChanged) else 0


def release_at(quiet: QuietHours | None, *, urgent: bool, now: datetime) -> datetime | None:
    """When a message made ``now`` may go out: None if at once (no quiet hours, not quiet
    now, or urgent)."""
    if urgent or quiet is None:
        return None
    return quiet.release_at(now)


def held_before(held: list[Deferred], source: Source, recipient: str) -> list[Deferred]:
    """What is held for this recipient of this complaint and must go out before an urgent
    message about ``source`` (everything held but that same event)."""
    return [h for h in held if h.recipient == recipient and h.source.event_id != source.event_id]


class DeferralStore(Protocol):
    """Where held messages wait."""

    async def defer(
        self,
        source: Source,
        recipient: str,
        *,
        correlation_id: str | None,
        release_at: datetime,
        now: datetime,
    ) -> bool:
        """Hold one recipient's message until ``release_at``; True the first time."""
        ...

    async def due(self, now: datetime, limit: int = 500) -> list[Deferred]:
        """Held messages whose time has come, oldest first, each complaint's in order."""
        ...

    async def deferred_for(self, complaint_id: str, recipient: str) -> list[Deferred]:
        """What is held for one recipient of a complaint, in lifecycle order."""
        ...

    async def undefer(self, deferred_id: str) -> None: ...

    async def held_for(self, complaint_ids: Collection[str]) -> dict[str, list[Deferred]]:
        """What is held for these complaints, each complaint's in lifecycle order."""
        ...

    async def defer_many(self, holds: Sequence[Hold], *, now: datetime) -> set[str]:
        """:meth:`defer` for a batch, in one write; the deferred ids held the first time."""
        ...

    async def undefer_many(self, deferred_ids: Collection[str]) -> None: ...
