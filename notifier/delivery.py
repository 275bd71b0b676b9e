"""One lifecycle event becomes exactly one message per recipient and channel.

Kafka redelivers (at-least-once, on purpose); the ledger in ``notifier_deliveries``
keeps the effect to one. For each channel:

1. claim ``{event_id}:{recipient}:{channel}`` — an insert only one attempt can win;
2. deliver through the channel;
3. finish the claim as sent, skipped or failed;
4. publish the NotificationOutcome, whose event id is derived from the delivery id so
   a repeated publish is a duplicate downstream, and mark it published.

A redelivery that finds the claim finished does nothing but publish an outcome a crash
kept from going out. One that finds it still ``sending`` — the earlier attempt stopped
after claiming and before finishing — asks the channel whether the message went out
before sending it again.

Within a process one complaint's messages go out one at a time. The claim is not a
lease across processes: if two held the same event at once (a rebalance while the first
is mid-send), the second would find ``sending`` and could send again. Kafka gives a
partition to one group member at a time, which keeps that window narrow.
"""

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from notifier.channel import Channel, Message
from notifier.metrics import NotifierMetrics
from notifier.store import (
    DeliveryRecord,
    DeliveryStatus,
    NotifierStore,
    Parked,
    Recipient,
    delivery_id,
)
from notifier.templates import Catalogue, Template, variables_for
from schemas import ComplaintFiled, ComplaintStatusChanged, NotificationOutcome, topics
from schemas.events import Outcome, utcnow
from services.errors import PermanentError, describe

log = logging.getLogger("sotong.notifier")

RESIDENT = "resident"
NO_CONSENT = "resident did not consent to notifications"


class Publish(Protocol):
    def __call__(
        self, topic: str, event: NotificationOutcome, correlation_id: str | None = None
    ) -> Awaitable[None]: ...


def outcome_event_id(delivery: str) -> str:
    """The same delivery always yields the same NotificationOutcome id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, delivery))


class Delivery:
    def __init__(
        self,
        *,
        store: NotifierStore,
        channels: Sequence[Channel],
        catalogue: Catalogue,
        publish: Publish,
        metrics: NotifierMetrics,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.channels = channels
        self.catalogue = catalogue
        self.publish = publish
        self.metrics = metrics
        self.clock = clock
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def remember_recipient(self, filed: ComplaintFiled) -> None:
        """Keep the resident's contact, then send what was parked waiting for it."""
        await self.store.remember(filed)
        async with self._serialised(filed.complaint_id):
            parked = await self.store.parked(filed.complaint_id)
            if not parked:
                return
            recipient = await self.store.recipient(filed.complaint_id)
            assert recipient is not None, "remembered just now"
            for item in parked:
                await self._send_parked(item, recipient)

    async def notify(
        self, event: ComplaintStatusChanged, *, correlation_id: str | None = None
    ) -> None:
        """Tell the resident about one state change, once per channel however often it arrives.

        ComplaintFiled travels on another topic and may come later, by seconds after a
        restart. Until it does, the event is parked in MongoDB (so the offset can be
        committed without losing it) and sent, in lifecycle order, when the recipient
        arrives. A normal race between two topics is not an error, so nothing is
        dead-lettered for it; ``sotong_notifications_parked_total`` counts the parkings.
        """
        async with self._serialised(event.complaint_id):
            recipient = await self.store.recipient(event.complaint_id)
            if recipient is None:
                if await self.store.park(event, correlation_id=correlation_id, now=self.clock()):
                    self.metrics.parked.inc()
                    log.info(
                        "lifecycle event parked until its complaint's ComplaintFiled arrives",
                        extra={"event_id": event.event_id, "state": event.to_state.value},
                    )
                return
            parked = await self.store.parked(event.complaint_id)
            was_parked = any(p.event.event_id == event.event_id for p in parked)
            this = Parked(event, correlation_id)
            others = [p for p in parked if p.event.event_id != event.event_id]
            for item in sorted([*others, this], key=lambda p: p.event.sequence):
                if item is not this:
                    await self._send_parked(item, recipient)
                    continue
                await self._send(event, recipient, correlation_id)
                if was_parked:
                    await self.store.unpark(event.event_id)

    def _serialised(self, complaint_id: str) -> asyncio.Lock:
        """One complaint's messages go out one at a time and in order within this process:
        ComplaintFiled's subscriber sending parked events runs beside the lifecycle's."""
        lock = self._locks.get(complaint_id)
        if lock is None:
            lock = self._locks[complaint_id] = asyncio.Lock()
        return lock

    async def _send_parked(self, item: Parked, recipient: Recipient) -> None:
        """A parked event that can never be sent must not fail the message that freed it;
        its own message already went, or will go, to the dead-letter topic."""
        try:
            await self._send(item.event, recipient, item.correlation_id)
        except PermanentError as exc:
            log.error(
                "parked lifecycle event cannot be notified",
                extra={"event_id": item.event.event_id, "reason": describe(exc)},
            )
        await self.store.unpark(item.event.event_id)

    async def _send(
        self, event: ComplaintStatusChanged, recipient: Recipient, correlation_id: str | None
    ) -> None:
        values = variables_for(event)
        template = self.catalogue.template_for(event.to_state, values)
        text = template.render(values) if recipient.notification_consent else None
        repeated = [
            await self._notify(channel, event, recipient, template, text, correlation_id)
            for channel in self.channels
        ]
        if all(repeated):
            self.metrics.duplicates.inc()

    async def _notify(
        self,
        channel: Channel,
        event: ComplaintStatusChanged,
        recipient: Recipient,
        template: Template,
        text: str | None,
        correlation_id: str | None,
    ) -> bool:
        """True if an earlier attempt had already finished this delivery."""
        did = delivery_id(event.event_id, RESIDENT, channel.name)
        claim = await self.store.claim(
            did,
            complaint_id=event.complaint_id,
            source_event_id=event.event_id,
            recipient=RESIDENT,
            channel=channel.name,
            template_code=template.template_code,
            now=self.clock(),
        )
        if claim.status is not DeliveryStatus.SENDING:
            log.info(
                "notification already handled",
                extra={"channel": channel.name, "outcome": claim.status.value},
            )
            if not claim.outcome_published:
                await self._publish(claim, correlation_id)
            return True
        if text is None:
            finished = await self.store.finish(
                did, DeliveryStatus.SKIPPED, now=self.clock(), detail=NO_CONSENT
            )
        elif not claim.fresh and await channel.already_delivered(did):
            log.warning(
                "resumed an interrupted delivery that had gone out", extra={"channel": channel.name}
            )
            finished = await self.store.finish(did, DeliveryStatus.SENT, now=self.clock())
        else:
            message = Message(
                delivery_id=did,
                complaint_id=event.complaint_id,
                receipt_number=event.receipt_number,
                recipient=RESIDENT,
                state=event.to_state,
                template_code=template.template_code,
                template_version=template.version,
                text=text,
                phone=recipient.phone,
                email=recipient.email,
            )
            finished = await self._deliver(channel, message)
        self.metrics.notifications.labels(channel.name, finished.status.value).inc()
        log.info(
            "notification finished",
            extra={
                "channel": channel.name,
                "outcome": finished.status.value,
                "template": template.template_code,
                "state": event.to_state.value,
                "attempts": finished.attempts,
            },
        )
        await self._publish(finished, correlation_id)
        return False

    async def _deliver(self, channel: Channel, message: Message) -> DeliveryRecord:
        """A permanent refusal is an outcome to report; anything else propagates so the
        shared middleware retries the event (the claim stays ``sending``) or dead-letters it."""
        started = time.perf_counter()
        try:
            await channel.deliver(message)
        except PermanentError as exc:
            return await self.store.finish(
                message.delivery_id, DeliveryStatus.FAILED, now=self.clock(), detail=describe(exc)
            )
        self.metrics.delivery_seconds.labels(channel.name).observe(time.perf_counter() - started)
        return await self.store.finish(message.delivery_id, DeliveryStatus.SENT, now=self.clock())

    async def _publish(self, record: DeliveryRecord, correlation_id: str | None) -> None:
        outcome = NotificationOutcome(
            event_id=outcome_event_id(record.delivery_id),
            occurred_at=record.finished_at or self.clock(),
            complaint_id=record.complaint_id,
            source_event_id=record.source_event_id,
            recipient=record.recipient,
            channel=record.channel,
            outcome=Outcome(record.status.value),
            template=record.template_code,
            detail=record.detail,
            attempts=record.attempts,
        )
        await self.publish(topics.NOTIFICATIONS, outcome, correlation_id)
        await self.store.mark_published(record.delivery_id)
