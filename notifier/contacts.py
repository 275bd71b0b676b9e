"""Confirmed contacts (issue 11 §11): the phone of an anonymous web filing is sent its
one-time code at once, and nothing else until the resident enters it.

intake publishes on ``contact.codes`` (read by nobody else: it carries the phone and the
code): ``ContactCodeIssued`` to send, ``ContactConfirmed`` once the code was entered.
The filing itself says whether its phone waits (``ComplaintFiled.contact_unconfirmed``),
so the notifier never depends on the order of the two topics: a message to such a
resident before confirmation is held, whatever arrived first.

- **The code message** (:class:`CodeSender`) is urgent: quiet hours do not hold it, but it
  counts against the contact's daily cap (:mod:`notifier.caps`), so a script asking for
  codes cannot flood a phone either. One message per code event, however often it is
  delivered (the ledger, keyed by the event, as every message); a code already expired
  when its event is read is not sent. The ledger keeps neither the phone nor the code.
- **Held messages** wait in the quiet-hours store (:mod:`notifier.deferral`): the event
  and the recipient, not the text, until ``hold`` after they were held. Only the
  resident's messages wait; the handler's and the department's go as usual.
- **On ContactConfirmed** the confirmation is recorded (``notifier_confirmed_contacts``,
  by complaint id; written before anything is sent, so a redelivery or a restart finds
  it) and what was held is sent in lifecycle order, each once (the ledger).
- **Never confirmed:** a held message whose time runs out is dropped and counted
  (``sotong_notifications_held_expired_total``), not dead-lettered: nothing failed.

Pure but for the two adapters at the end.
"""

import asyncio
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from notifier.audience import Audience, Notice
from notifier.caps import OVER_CAP, DailyCap
from notifier.chain import Sleep
from notifier.channel import RESIDENT, Channel, Message
from notifier.ledger import Claim, DeliveryRecord, DeliveryStatus, Finish, bson_time, delivery_id
from notifier.metrics import NotifierMetrics
from notifier.outcomes import NO_CHANNEL, NO_CHANNEL_NAME, metric_outcome, outcome
from notifier.recipients import Recipient
from notifier.retry import RetryPolicy
from notifier.store import NotifierStore
from notifier.templates import Content
from schemas import ComplaintState, topics
from schemas.events import CodePurpose, ContactCodeIssued
from services.errors import PermanentError, RetryableError, describe
from services.logs import bound
from services.mongo import Document, find_in, update_in
from services.runtime import Clock, Publish

log = logging.getLogger("sotong.notifier")

CONFIRMED = "notifier_confirmed_contacts"
CODE_TEMPLATE = "contact_code"
EXPIRED = "the code had expired before it could be sent"


def awaits_confirmation(recipient: Recipient | None, confirmed: Collection[str]) -> bool:
    """Whether the resident's messages for this complaint must wait for the code."""
    return (
        recipient is not None
        and recipient.contact_unconfirmed
        and recipient.complaint_id not in confirmed
    )


class ConfirmationStore(Protocol):
    """Which complaints' contacts were confirmed."""

    async def ensure_indexes(self) -> None: ...

    async def confirm_many(self, complaint_ids: Collection[str], *, now: datetime) -> None:
        """Record these as confirmed, in one write; a repeat changes nothing."""
        ...

    async def confirmed(self, complaint_ids: Collection[str]) -> set[str]:
        """Which of these are confirmed, in one read."""
        ...

    async def unreleased(self, complaint_ids: Collection[str]) -> set[str]:
        """Which of these are confirmed and their held messages not yet all sent: a
        repeated confirmation must not send early what quiet hours hold since."""
        ...

    async def mark_released(self, complaint_ids: Collection[str]) -> None: ...


class ContactMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.held = Counter(
            "sotong_notifications_held_for_contact_total",
            "Residents' messages held until the phone an anonymous filing gave is confirmed.",
            registry=registry,
        )
        self.expired = Counter(
            "sotong_notifications_held_expired_total",
            "Held messages dropped because their phone was never confirmed in time.",
            registry=registry,
        )
        self.codes = Counter(
            "sotong_contact_code_messages_total",
            "Contact code messages, by outcome (sent, skipped, failed, expired).",
            ["outcome"],
            registry=registry,
        )


@dataclass(frozen=True)
class Contacts:
    """What :class:`notifier.delivery.Delivery` needs to hold and release messages."""

    store: ConfirmationStore
    sender: "CodeSender"
    hold: timedelta
    metrics: ContactMetrics

    async def awaiting(self, recipients: Mapping[str, Recipient]) -> set[str]:
        """The complaints among these whose resident's messages wait: one read, and only
        if any of them was filed with an unconfirmed phone."""
        flagged = {cid for cid, r in recipients.items() if r.contact_unconfirmed}
        if not flagged:
            return set()
        return flagged - await self.store.confirmed(flagged)


def minutes_left(event: ContactCodeIssued) -> int:
    """What the message says the code lasts: whole minutes, rounded up."""
    seconds = (event.expires_at - event.occurred_at).total_seconds()
    return max(1, math.ceil(seconds / 60))


@dataclass(kw_only=True)
class CodeSender:
    """Sends code messages: the resident's channels for a phone, in order, each tried a
    few times in place (a code is worth little later: no retry topic)."""

    store: NotifierStore
    channels: Mapping[str, Channel]
    audience: Audience
    publish: Publish
    metrics: NotifierMetrics
    contact_metrics: ContactMetrics
    clock: Clock
    retry: RetryPolicy
    cap: DailyCap | None = None
    sleep: Sleep = asyncio.sleep

    def notice(self, event: ContactCodeIssued) -> Notice:
        values = {
            "receipt_number": event.receipt_number,
            "sender_name": self.audience.letterhead.sender_name,
            "code": event.code,
            "minutes": str(minutes_left(event)),
        }
        content: Content = self.audience.catalogue.code_content(
            values, recovery=event.purpose is CodePurpose.RECOVERY
        )
        return Notice(
            recipient=RESIDENT,
            chain=self.audience.chain(event.phone, None),
            urgent=True,
            content=content,
            phone=event.phone,
        )

    async def send_all(self, events: Sequence[ContactCodeIssued]) -> None:
        """Each code once: what the ledger has finished is left alone (its outcome
        published if a crash kept it back), the rest claimed and sent in turn."""
        if not events:
            return
        now = self.clock()
        notices = {e.event_id: self.notice(e) for e in events}
        ledger = await self.store.records(
            [did for e in events for did in _ids(e, notices[e.event_id])]
        )
        over = await self._capped(events, notices, ledger, now)
        for event in events:
            with bound(complaint_id=event.complaint_id):
                await self._send(event, notices[event.event_id], ledger, event.event_id in over)

    async def _capped(
        self,
        events: Sequence[ContactCodeIssued],
        notices: Mapping[str, Notice],
        ledger: Mapping[str, DeliveryRecord],
        now: datetime,
    ) -> set[str]:
        """The code events over their phone's daily cap (counted now if not)."""
        if self.cap is None:
            return set()
        asks = []
        for e in events:
            ids = _ids(e, notices[e.event_id])
            if any(did in ledger for did in ids):
                continue  # begun before: counted then
            count = self.cap.key_of(e.phone, None, now)
            if count is not None:
                asks.append((count, ids[0], e.event_id))
        if not asks:
            return set()
        counted = await self.store.counted(sorted({c.key for c, _, _ in asks}))
        over, added = self.cap.decide([(c, did) for c, did, _ in asks], counted)
        if added:
            await self.store.count_many(added, {c.key: c.expires_at for c, _, _ in asks})
        return {event_id for _, did, event_id in asks if did in over}

    async def _send(
        self,
        event: ContactCodeIssued,
        notice: Notice,
        ledger: Mapping[str, DeliveryRecord],
        capped: bool,
    ) -> None:
        chain = notice.chain or (NO_CHANNEL_NAME,)
        failed: list[str] = []
        for index, name in enumerate(chain):
            did = delivery_id(event.event_id, RESIDENT, name)
            known = ledger.get(did)
            if known is not None and known.status is not DeliveryStatus.SENDING:
                if not known.outcome_published:
                    await self._publish(known, mark=True)
                if known.status is DeliveryStatus.FAILED and not known.final:
                    failed.append(name)
                    continue
                return
            [record] = await self.store.claim_many(
                [
                    Claim(
                        delivery_id=did,
                        complaint_id=event.complaint_id,
                        source_event_id=event.event_id,
                        recipient=RESIDENT,
                        channel=name,
                        template_code=notice.template,
                        fallback_from=", ".join(failed) or None,
                    )
                ],
                known=ledger,
                now=self.clock(),
            )
            if record.status is not DeliveryStatus.SENDING:  # another attempt finished it
                return
            last = index == len(chain) - 1
            finish = await self._attempt(event, notice, record, capped=capped, last=last)
            done = finish.applied_to(record)
            await self.publish(topics.NOTIFICATIONS, outcome(done, self.clock()), None)
            await self.store.settle([_published(finish)], [], now=self.clock())
            self._count(done)
            if done.status is not DeliveryStatus.FAILED or done.final:
                return
            failed.append(name)

    async def _attempt(
        self,
        event: ContactCodeIssued,
        notice: Notice,
        record: DeliveryRecord,
        *,
        capped: bool,
        last: bool,
    ) -> Finish:
        now = self.clock()
        skip = (
            NO_CHANNEL
            if not notice.chain
            else OVER_CAP
            if capped
            else EXPIRED
            if now >= event.expires_at
            else None
        )
        if skip is not None:
            return Finish(
                delivery_id=record.delivery_id,
                status=DeliveryStatus.SKIPPED,
                at=bson_time(now),
                detail=skip,
            )
        channel = self.channels[record.channel]
        if not record.fresh and await channel.already_delivered(record.delivery_id):
            return Finish(
                delivery_id=record.delivery_id, status=DeliveryStatus.SENT, at=bson_time(now)
            )
        message = Message(
            delivery_id=record.delivery_id,
            complaint_id=event.complaint_id,
            receipt_number=event.receipt_number,
            recipient=RESIDENT,
            state=ComplaintState.RECEIVED,  # a code is sent just after filing
            content=notice.content,
            phone=event.phone,
        )
        attempt = 0
        while True:
            attempt += 1
            try:
                await channel.deliver(message)
            except PermanentError as exc:
                reason, retryable = describe(exc), False
            except RetryableError as exc:
                if not self.retry.gives_up(attempt):
                    await self.sleep(self.retry.backoff(attempt, getattr(exc, "retry_after", None)))
                    continue
                reason, retryable = describe(exc), True
            else:
                return Finish(
                    delivery_id=record.delivery_id,
                    status=DeliveryStatus.SENT,
                    at=bson_time(self.clock()),
                    retries=attempt - 1,
                )
            return Finish(
                delivery_id=record.delivery_id,
                status=DeliveryStatus.FAILED,
                at=bson_time(self.clock()),
                detail=reason,
                retries=attempt - 1,
                final=last,
                retryable=retryable,
            )

    async def _publish(self, record: DeliveryRecord, *, mark: bool) -> None:
        await self.publish(topics.NOTIFICATIONS, outcome(record, self.clock()), None)
        if mark:
            await self.store.mark_published(record.delivery_id)

    def _count(self, record: DeliveryRecord) -> None:
        label = metric_outcome(record)
        self.metrics.notifications.labels(record.channel, label).inc()
        expired = record.status is DeliveryStatus.SKIPPED and record.detail == EXPIRED
        self.contact_metrics.codes.labels("expired" if expired else record.status.value).inc()
        if record.detail == OVER_CAP:
            self.metrics.capped.inc()
        log.info(
            "contact code message finished",
            extra={"channel": record.channel, "outcome": label, "attempts": record.attempts},
        )


def _ids(event: ContactCodeIssued, notice: Notice) -> list[str]:
    return [
        delivery_id(event.event_id, RESIDENT, name) for name in notice.chain or (NO_CHANNEL_NAME,)
    ]


def _published(finish: Finish) -> Finish:
    return Finish(
        delivery_id=finish.delivery_id,
        status=finish.status,
        at=finish.at,
        detail=finish.detail,
        retries=finish.retries,
        final=finish.final,
        retryable=finish.retryable,
        published=True,
    )


# -- storage --------------------------------------------------------------------------------


class MongoConfirmations:
    """``notifier_confirmed_contacts``: one small document per confirmed complaint, by
    ``_id`` (no personal data), kept as long as the complaint may send messages."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.col: AsyncCollection[Document] = db[CONFIRMED]

    async def ensure_indexes(self) -> None:
        return None  # read and written by _id only

    async def confirm_many(self, complaint_ids: Collection[str], *, now: datetime) -> None:
        if not complaint_ids:
            return
        await self.col.bulk_write(
            [
                UpdateOne({"_id": cid}, {"$setOnInsert": {"confirmed_at": now}}, upsert=True)
                for cid in sorted(complaint_ids)
            ],
            ordered=False,
        )

    async def confirmed(self, complaint_ids: Collection[str]) -> set[str]:
        if not complaint_ids:
            return set()
        found = await find_in(self.col, "_id", complaint_ids, projection={"_id": 1})
        return {str(doc["_id"]) for doc in found}

    async def unreleased(self, complaint_ids: Collection[str]) -> set[str]:
        if not complaint_ids:
            return set()
        found = await find_in(self.col, "_id", complaint_ids, projection={"_id": 1, "released": 1})
        return {str(doc["_id"]) for doc in found if not doc.get("released")}

    async def mark_released(self, complaint_ids: Collection[str]) -> None:
        await update_in(self.col, "_id", complaint_ids, {"$set": {"released": True}})


__all__ = [
    "CONFIRMED",
    "CodeSender",
    "ConfirmationStore",
    "ContactMetrics",
    "Contacts",
    "MongoConfirmations",
    "awaits_confirmation",
]
