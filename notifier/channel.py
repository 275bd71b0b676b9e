"""The seam between deciding to notify and a way of reaching a resident.

The local outbox is the first channel; AlimTalk, SMS, e-mail and webhooks plug in here
later. Exactly-once rests on two things a channel promises: ``deliver`` either sends
the whole message or raises, and ``already_delivered`` answers truthfully for a
delivery id it was given, so a send interrupted by a crash is not repeated.
"""

from dataclasses import dataclass, field
from typing import Protocol

from schemas import ComplaintState


@dataclass(frozen=True)
class Message:
    """One rendered message to one recipient. The contact fields stay out of ``repr``
    so a message that reaches a log or a traceback does not carry personal data."""

    delivery_id: str
    complaint_id: str
    receipt_number: str
    recipient: str
    state: ComplaintState
    template_code: str
    template_version: int
    text: str
    phone: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)


class Channel(Protocol):
    @property
    def name(self) -> str:
        """A short, bounded label: it names deliveries and metric series."""
        ...

    async def deliver(self, message: Message) -> None:
        """Send all of it or raise: RetryableError if trying again can help, PermanentError
        if it never will. A PermanentError's text becomes the failed outcome's ``detail``,
        so it must not carry the recipient's contact."""
        ...

    async def already_delivered(self, delivery_id: str) -> bool:
        """Whether a message with this delivery id went out, asked after a crash mid-send."""
        ...
