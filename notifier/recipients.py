"""Whom to tell: the resident of a complaint, as its ComplaintFiled gave them.

Remembered once (the first filing wins) and never changed, so every later step of the
complaint reads the same contact; only photos a correction (정정) adds join its list.
Pure; :mod:`notifier.mongo.recipients` keeps them.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas import ComplaintFiled


@dataclass(frozen=True)
class Recipient:
    """The resident of one complaint. Contact fields stay out of ``repr`` (personal data)."""

    complaint_id: str
    receipt_number: str
    notification_consent: bool
    name: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    channel_client: str | None = None
    """The client app that filed the complaint (an Open311 app), if any."""
    photos: tuple[str, ...] = ()
    """The ids of the photos attached at filing and added by corrections (intake serves
    them; no bytes here)."""
    contact_unconfirmed: bool = False
    """Filed anonymously with a phone: messages wait for ContactConfirmed
    (:mod:`notifier.contacts`)."""


class RecipientStore(Protocol):
    """Where residents are remembered."""

    async def remember(self, filed: ComplaintFiled) -> None:
        """Keep the resident's contact. The first ComplaintFiled wins; a redelivery, or a
        concurrent one, changes nothing."""
        ...

    async def recipient(self, complaint_id: str) -> Recipient | None:
        """The resident remembered for a complaint; None until its ComplaintFiled came."""
        ...

    async def recipients_of(self, complaint_ids: Collection[str]) -> dict[str, Recipient]:
        """The residents remembered for these complaints (those known), in one read."""
        ...

    async def remember_many(self, filings: Sequence[ComplaintFiled]) -> None:
        """:meth:`remember` for a batch, in one write."""
        ...

    async def add_photos(self, added: Mapping[str, Sequence[str]]) -> None:
        """Add photo ids (a correction's) to each complaint's remembered ones, in one
        write; an id already there is not added again, an unknown complaint is left."""
        ...
