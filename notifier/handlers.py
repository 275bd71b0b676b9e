"""What arrives, and what it calls: one event becomes exactly one message per recipient
and channel.

Three subscribers (:func:`subscribe`) hand each message to :class:`Delivery`:
``complaint.filed`` (the resident's contact, remembered), ``complaint.lifecycle`` (a
state change to tell) and ``complaint.sla`` (a deadline alert). Errors they raise go to
the kit's middleware, which retries or dead-letters them.

Kafka redelivers (at-least-once, on purpose); the ledger in the store keeps the effect
to one. For each recipient :mod:`notifier.audience` names, and each channel of their
chain in turn:

1. claim ``{event_id}:{recipient}:{channel}`` — an insert only one attempt can win;
2. deliver through the channel, retrying a retryable failure (timeout, 5xx, 429) as
   :mod:`notifier.retry` says, a permanent one (4xx, refusal) not at all;
3. finish the claim as sent, skipped or failed;
4. publish the NotificationOutcome (:mod:`notifier.outcomes`), and mark it published.

A recipient who cannot be reached — no phone or address at all, no configured channel
for the contact they gave, or no consent — is sent nothing: the outcome is ``skipped``
with that reason, never ``sent`` to nobody.

A failure moves on to the next channel of the chain (AlimTalk → SMS/LMS, 대체발송); the
message sent there is recorded as ``sent`` with the detail ``fallback from alimtalk``.
When the last channel fails too, or the message cannot be made at all (a template
variable missing), the failed outcome is published and the event goes to the
dead-letter topic with the reason, once.

A redelivery that finds a claim finished does nothing but publish an outcome (or a dead
letter) a crash kept from going out, and goes on down the chain only past a failure.
One that finds it still ``sending`` — the earlier attempt stopped after claiming and
before finishing — asks the channel whether the message went out; an HTTP channel cannot
know and sends again with the same idempotency key, which the provider drops.

Within a process one complaint's messages go out one at a time. The claim is not a
lease across processes: if two held the same event at once (a rebalance while the first
is mid-send), the second would find ``sending`` and could send again. Kafka gives a
partition to one group member at a time, which keeps that window narrow.

Quiet hours hold back what is not urgent: the event and recipient are stored as
deferred and :meth:`Delivery.release_due` (a small loop in the app) sends them when the
quiet period ends. An urgent message to the same person sends what was held for them
first, so they read their complaint's steps in order.
"""

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

from faststream.kafka.annotations import KafkaMessage

from notifier.audience import Audience, Notice, Source
from notifier.channel import Channel, Message
from notifier.metrics import NotifierMetrics
from notifier.outcomes import (
    NO_CHANNEL,
    NO_CHANNEL_NAME,
    NO_CONSENT,
    NO_CONTACT,
    fallback_detail,
    metric_outcome,
    outcome,
    source_topic,
    undeliverable,
)
from notifier.quiet import QuietHours
from notifier.retry import RetryPolicy, Tried
from notifier.store import (
    Claim,
    Deferred,
    DeliveryRecord,
    DeliveryStatus,
    NotifierStore,
    Parked,
    Recipient,
    delivery_id,
)
from notifier.templates import TemplateError
from schemas import (
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    DeadLetter,
    topics,
)
from schemas.events import AlertKind, utcnow
from services.errors import PermanentError, RetryableError, describe
from services.runtime import Clock, Publish

log = logging.getLogger("sotong.notifier")

DeadLetterSink = Callable[[DeadLetter], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
Handler = Callable[..., Awaitable[None]]


class Subscribe(Protocol):
    """``Runtime.subscriber``: an at-least-once subscriber to topics, in its own group."""

    def __call__(
        self, *topic_names: str, group: str | None = None
    ) -> Callable[[Handler], object]: ...


def subscribe(subscriber: Subscribe, delivery: "Delivery") -> None:
    """Each topic in its own consumer group, so a slow lifecycle does not hold back the
    contacts that free parked events."""

    async def on_filed(filed: ComplaintFiled) -> None:
        await delivery.remember_recipient(filed)

    async def on_status_changed(event: ComplaintStatusChanged, message: KafkaMessage) -> None:
        await delivery.notify(event, correlation_id=message.correlation_id)

    async def on_deadline(alert: ComplaintDeadlineAlert, message: KafkaMessage) -> None:
        await delivery.alert(alert, correlation_id=message.correlation_id)

    # Registered by call rather than as decorators: Runtime.subscriber is typed Any, and
    # mypy --strict refuses an untyped decorator.
    subscriber(topics.FILED, group="recipients")(on_filed)
    subscriber(topics.LIFECYCLE, group="lifecycle")(on_status_changed)
    subscriber(topics.SLA, group="deadlines")(on_deadline)


class Delivery:
    """The application service: every subscriber's message ends here."""

    def __init__(
        self,
        *,
        store: NotifierStore,
        channels: Mapping[str, Channel],
        audience: Audience,
        publish: Publish,
        metrics: NotifierMetrics,
        dead_letter: DeadLetterSink | None = None,
        source_topics: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        quiet: QuietHours | None = None,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        needed = set(audience.channels) | ({"webhook"} if audience.webhooks else set())
        if missing := needed - set(channels):
            raise ValueError(f"channel(s) planned but not given: {', '.join(sorted(missing))}")
        self.store = store
        self.channels = dict(channels)
        self.audience = audience
        self.publish = publish
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.source_topics = dict(source_topics or {})
        self.retry = retry or RetryPolicy()
        self.quiet = quiet
        self.clock = clock
        self.sleep = sleep
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- what arrives -----------------------------------------------------------------

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
        """Tell everyone concerned about one state change, once per channel however often
        it arrives.

        ComplaintFiled travels on another topic and may come later, by seconds after a
        restart. Until it does, the event is parked in the store (so the offset can be
        committed without losing it) and handled, in lifecycle order, when the recipient
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
                await self._handle(event, recipient, correlation_id)
                if was_parked:
                    await self.store.unpark(event.event_id)

    async def alert(
        self, alert: ComplaintDeadlineAlert, *, correlation_id: str | None = None
    ) -> None:
        """Tell the supervisor and handler about a deadline (the resident about a 30-day
        progress notice), and the department's system."""
        async with self._serialised(alert.complaint_id):
            recipient = await self.store.recipient(alert.complaint_id)
            if recipient is None and alert.kind is AlertKind.PROGRESS_NOTICE:
                raise RetryableError("the resident of this complaint is not known yet")
            await self._handle(alert, recipient, correlation_id)

    async def release_due(self) -> int:
        """Send what quiet hours held back and may go now; the number handled.

        One that fails for a reason other than its delivery (the database away) stays
        held and is tried again on the next call.
        """
        released = 0
        for item in await self.store.due(self.clock()):
            try:
                async with self._serialised(item.complaint_id):
                    await self._release(item)
            except Exception:
                log.exception("could not release a deferred message; will try again")
                continue
            released += 1
        return released

    async def release_forever(self, interval: float) -> None:
        while True:
            try:
                await self.release_due()
            except Exception:
                log.exception("deferred release failed; will try again")
            await asyncio.sleep(interval)

    # -- deciding ---------------------------------------------------------------------

    def _serialised(self, complaint_id: str) -> asyncio.Lock:
        """One complaint's messages go out one at a time and in order within this process:
        ComplaintFiled's subscriber sending parked events runs beside the lifecycle's."""
        lock = self._locks.get(complaint_id)
        if lock is None:
            lock = self._locks[complaint_id] = asyncio.Lock()
        return lock

    async def _send_parked(self, item: Parked, recipient: Recipient) -> None:
        """A parked event that cannot be handled must not fail the message that freed it."""
        try:
            await self._handle(item.event, recipient, item.correlation_id)
        except PermanentError as exc:
            log.error(
                "parked lifecycle event cannot be notified",
                extra={"event_id": item.event.event_id, "reason": describe(exc)},
            )
        await self.store.unpark(item.event.event_id)

    async def _release(self, item: Deferred) -> None:
        recipient = await self.store.recipient(item.complaint_id)
        await self._handle(
            item.source, recipient, item.correlation_id, only=item.recipient, released=True
        )
        await self.store.undefer(item.deferred_id)

    async def _handle(
        self,
        source: Source,
        recipient: Recipient | None,
        correlation_id: str | None,
        *,
        only: str | None = None,
        released: bool = False,
    ) -> None:
        notices = self.audience.plan(source, recipient, correlation_id)
        if only is not None:
            notices = [n for n in notices if n.recipient == only]
        repeated: list[bool] = []
        for notice in notices:
            if not released and not notice.urgent:
                release_at = self.quiet.release_at(self.clock()) if self.quiet else None
                if release_at is not None:
                    await self._defer(source, notice, correlation_id, release_at)
                    continue
            if not released:
                for held in await self.store.deferred_for(source.complaint_id, notice.recipient):
                    if held.source.event_id != source.event_id:
                        await self._release(held)
            repeated.append(await self._deliver(source, notice, correlation_id))
        if repeated and all(repeated) and isinstance(source, ComplaintStatusChanged):
            self.metrics.duplicates.inc()

    async def _defer(
        self, source: Source, notice: Notice, correlation_id: str | None, release_at: datetime
    ) -> None:
        if await self.store.defer(
            source,
            notice.recipient,
            correlation_id=correlation_id,
            release_at=release_at,
            now=self.clock(),
        ):
            self.metrics.deferred.inc()
            log.info(
                "notification held for quiet hours",
                extra={"recipient": notice.recipient, "release_at": release_at.isoformat()},
            )

    # -- delivering -------------------------------------------------------------------

    async def _deliver(self, source: Source, notice: Notice, correlation_id: str | None) -> bool:
        """Down the chain until one channel delivers; True if nothing was left to do."""
        if not notice.chain:
            reason = NO_CHANNEL if notice.phone or notice.email else NO_CONTACT
            return await self._skip(source, notice, NO_CHANNEL_NAME, reason, correlation_id)
        if not notice.consent:
            return await self._skip(source, notice, notice.chain[0], NO_CONSENT, correlation_id)
        failed: list[str] = []
        reasons: list[str] = []
        repeated = True
        for index, name in enumerate(notice.chain):
            last = index == len(notice.chain) - 1
            did = delivery_id(source.event_id, notice.recipient, name)
            claim = await self._claim(did, source, notice, name, failed)
            if claim.status is DeliveryStatus.SENDING:
                repeated = False
                record = await self._attempt(claim, source, notice, name, last=last)
                self._count(record)
                await self._publish(record, correlation_id)
            else:
                record = claim
                log.info(
                    "notification already handled",
                    extra={"channel": name, "outcome": record.status.value},
                )
                if not record.outcome_published:
                    await self._publish(record, correlation_id)
            if record.status is not DeliveryStatus.FAILED:
                return repeated
            failed.append(name)
            reasons.append(f"{name}: {record.detail}")
            if record.final:
                if not record.dead_lettered:
                    await self._dead_letter(source, record, notice, reasons)
                return repeated
        return repeated

    async def _claim(
        self, did: str, source: Source, notice: Notice, channel: str, failed: list[str]
    ) -> DeliveryRecord:
        return await self.store.claim(
            Claim(
                delivery_id=did,
                complaint_id=source.complaint_id,
                source_event_id=source.event_id,
                recipient=notice.recipient,
                channel=channel,
                template_code=notice.template,
                fallback_from=", ".join(failed) or None,
            ),
            now=self.clock(),
        )

    async def _skip(
        self,
        source: Source,
        notice: Notice,
        channel: str,
        reason: str,
        correlation_id: str | None,
    ) -> bool:
        did = delivery_id(source.event_id, notice.recipient, channel)
        claim = await self._claim(did, source, notice, channel, [])
        if claim.status is not DeliveryStatus.SENDING:
            if not claim.outcome_published:
                await self._publish(claim, correlation_id)
            return True
        record = await self.store.finish(
            did, DeliveryStatus.SKIPPED, now=self.clock(), detail=reason
        )
        self._count(record)
        await self._publish(record, correlation_id)
        return False

    async def _attempt(
        self, claim: DeliveryRecord, source: Source, notice: Notice, name: str, *, last: bool
    ) -> DeliveryRecord:
        did = claim.delivery_id
        channel = self.channels[name]
        try:
            if notice.content is not None:
                notice.content.check()
        except TemplateError as exc:
            return await self.store.finish(
                did, DeliveryStatus.FAILED, now=self.clock(), detail=describe(exc), final=True
            )
        if not claim.fresh and await channel.already_delivered(did):
            log.warning(
                "resumed an interrupted delivery that had gone out", extra={"channel": name}
            )
            return await self._finish_sent(claim)
        tried = await self._try(channel, notice.message(did, source))
        if tried.ok:
            return await self._finish_sent(claim, retries=tried.attempts - 1)
        return await self.store.finish(
            did,
            DeliveryStatus.FAILED,
            now=self.clock(),
            detail=tried.reason,
            retries=tried.attempts - 1,
            final=last,
            retryable=tried.retryable,
        )

    async def _finish_sent(self, claim: DeliveryRecord, *, retries: int = 0) -> DeliveryRecord:
        detail = fallback_detail([claim.fallback_from]) if claim.fallback_from else None
        return await self.store.finish(
            claim.delivery_id, DeliveryStatus.SENT, now=self.clock(), detail=detail, retries=retries
        )

    async def _try(self, channel: Channel, message: Message) -> Tried:
        """One channel, retried in place while its failures are retryable, up to the cap."""
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                await channel.deliver(message)
            except PermanentError as exc:
                self._observe(channel.name, started)
                return Tried(False, attempt, describe(exc))
            except RetryableError as exc:
                self._observe(channel.name, started)
                if self.retry.gives_up(attempt):
                    reason = f"{describe(exc)} (gave up after {attempt} attempts)"
                    return Tried(False, attempt, reason, retryable=True)
                self.metrics.retries.labels(channel.name).inc()
                log.info(
                    "retrying notification",
                    extra={"channel": channel.name, "attempt": attempt, "reason": describe(exc)},
                )
                await self.sleep(self.retry.backoff(attempt, getattr(exc, "retry_after", None)))
                continue
            self._observe(channel.name, started)
            return Tried(True, attempt)

    def _observe(self, channel: str, started: float) -> None:
        self.metrics.delivery_seconds.labels(channel).observe(time.perf_counter() - started)

    def _count(self, record: DeliveryRecord) -> None:
        label = metric_outcome(record)
        self.metrics.notifications.labels(record.channel, label).inc()
        log.info(
            "notification finished",
            extra={
                "channel": record.channel,
                "recipient": record.recipient,
                "outcome": label,
                "template": record.template_code,
                "attempts": record.attempts,
            },
        )

    async def _publish(self, record: DeliveryRecord, correlation_id: str | None) -> None:
        await self.publish(topics.NOTIFICATIONS, outcome(record, self.clock()), correlation_id)
        await self.store.mark_published(record.delivery_id)

    async def _dead_letter(
        self, source: Source, record: DeliveryRecord, notice: Notice, reasons: list[str]
    ) -> None:
        """The event on the dead-letter topic, once per recipient that could not be told;
        a repeat after a crash is a duplicate downstream (the id is the delivery's)."""
        if self.dead_letter is None:
            return
        topic = source_topic(source, self.source_topics)
        await self.dead_letter(undeliverable(source, record, notice.recipient, reasons, topic))
        self.metrics.undeliverable(topic)
        await self.store.mark_dead_lettered(record.delivery_id)
        log.warning(
            "notification dead-lettered",
            extra={"recipient": notice.recipient, "channel": record.channel},
        )
