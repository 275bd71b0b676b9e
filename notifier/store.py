"""What the handlers need to remember, and MongoDB's way of remembering it.

:class:`NotifierStore` is the contract: whom to tell, what was sent, and what waits.
:class:`MongoNotifierStore` keeps it in MongoDB; ``tests/fakes/notifier.py`` keeps it in
memory, and ``tests/contract/test_notifier_store.py`` holds both to the same promises.
Each concept has its module — :mod:`notifier.recipients`, :mod:`notifier.ledger`,
:mod:`notifier.parking`, :mod:`notifier.deferral` — with its types, its rules and the
protocol of what it needs stored; :mod:`notifier.mongo` has one MongoDB adapter for
each. This module puts them together: the handlers are given one store.

The handlers work a batch at a time (``recipients_of``, ``parked_for``, ``held_for``,
``records``, ``claim_many``, ``settle``…): each call is one MongoDB command whatever the
batch's size, and each filter is served by an index (``tests/service/
test_notifier_indexes.py`` checks them with ``explain``). The one-at-a-time calls remain
for the rare paths (a fallback's claim, the release loop's read) and for tests.

``notifier_deliveries`` is the ledger that turns at-least-once Kafka into one message
per (event, recipient, channel): its ``_id`` is that triple, so claiming a delivery is
an insert that only one attempt can win. A claim still ``sending`` when the event comes
back means the attempt that made it stopped between claiming and finishing.

A delivery that failed on one channel and fell back to the next is two records: the
first ``failed`` and not ``final``, the next naming it in ``fallback_from``. The record
that ends a chain in failure is ``final`` and, once its dead letter is published,
``dead_lettered``, so a redelivery neither sends nor dead-letters again.

``notifier_pending`` holds lifecycle events that arrived before their complaint's
ComplaintFiled (the two travel on different topics), until the recipient is known.

``notifier_recipient_days`` counts, per contact (a keyed hash) and day, the messages sent
to it, for the daily cap (:mod:`notifier.caps`); a TTL index clears past days.

``notifier_deferred`` holds what quiet hours hold back: the event and the recipient, and
when they may be told. The event is kept, not the text, so the message is made when it
is sent, exactly as it would have been at once.
"""

from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from notifier.caps import CapStore
from notifier.deferral import SOURCE, DeferralStore, Deferred, Hold, Source
from notifier.ledger import (
    Claim,
    DeliveryRecord,
    DeliveryStatus,
    Finish,
    LedgerStore,
    Mark,
    Stuck,
    delivery_id,
)
from notifier.mongo.caps import RECIPIENT_DAYS, MongoCaps
from notifier.mongo.deferral import DEFERRED, MongoDeferral
from notifier.mongo.ledger import DELIVERIES, MongoLedger
from notifier.mongo.parking import PENDING, MongoParking
from notifier.mongo.recipients import RECIPIENTS, MongoRecipients
from notifier.parking import Parked, ParkingStore
from notifier.recipients import Recipient, RecipientStore
from services.mongo import Document

__all__ = [
    "DEFERRED",
    "DELIVERIES",
    "PENDING",
    "RECIPIENTS",
    "RECIPIENT_DAYS",
    "SOURCE",
    "Claim",
    "Deferred",
    "DeliveryRecord",
    "DeliveryStatus",
    "Finish",
    "Hold",
    "Mark",
    "MongoNotifierStore",
    "NotifierStore",
    "Parked",
    "Recipient",
    "Source",
    "Stuck",
    "delivery_id",
]


class NotifierStore(RecipientStore, ParkingStore, LedgerStore, DeferralStore, CapStore, Protocol):
    """What the handlers need from storage. Every write is safe to repeat: Kafka
    redelivers, and a process may stop between any two calls."""

    async def ensure_indexes(self) -> None:
        """Prepare storage before the first message is consumed."""
        ...


class MongoNotifierStore(MongoRecipients, MongoParking, MongoLedger, MongoDeferral, MongoCaps):
    """The store in five MongoDB collections, one adapter per concept."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        MongoRecipients.__init__(self, db)
        MongoParking.__init__(self, db)
        MongoLedger.__init__(self, db)
        MongoDeferral.__init__(self, db)
        MongoCaps.__init__(self, db)

    async def ensure_indexes(self) -> None:
        await self.ensure_ledger_indexes()
        await self.ensure_parking_indexes()
        await self.ensure_deferral_indexes()
        await self.ensure_cap_indexes()
