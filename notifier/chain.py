"""The channel chain: a recipient's channels tried in order until one delivers
(AlimTalk → SMS/LMS → e-mail, 대체발송).

:func:`plan` is pure: from a notice and the ledger records its deliveries already have, it
says what is left: outcomes a crash kept from being published, a dead letter not yet
sent, and the next delivery to claim (fresh, or resumed if an earlier attempt stopped
while ``sending``). A chain already finished is left alone, so a redelivery sends nothing.

:class:`Chain` runs a claimed delivery: it checks the message can be made, tries the
channel (retrying a retryable failure in place, as :mod:`notifier.retry` says), and on a
failure claims the next channel of the chain and goes on. It writes nothing itself but
those fallback claims (the rare path): the caller finishes every delivery of a batch in
one bulk write, once their outcomes are published.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from notifier.audience import Notice
from notifier.channel import Channel, Message
from notifier.deferral import Source
from notifier.ledger import Claim, DeliveryRecord, DeliveryStatus, Finish, bson_time, delivery_id
from notifier.metrics import NotifierMetrics
from notifier.outcomes import NO_CHANNEL, NO_CHANNEL_NAME, NO_CONSENT, NO_CONTACT, fallback_detail
from notifier.retry import RetryPolicy, Tried
from notifier.templates import TemplateError
from services.errors import PermanentError, RetryableError, describe

log = logging.getLogger("sotong.notifier")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Plan:
    """What one notice still needs (see :func:`plan`)."""

    notice: Notice
    finished: tuple[DeliveryRecord, ...] = ()
    """Records of this chain already finished, in chain order."""
    claim: Claim | None = None
    """The next delivery to claim, if any."""
    index: int = 0
    """The claim's place in the chain."""
    skip: str | None = None
    """Why the claim is skipped rather than sent."""
    dead_letter: DeliveryRecord | None = None
    """The chain's final failure, whose dead letter has not gone out yet."""
    reasons: tuple[str, ...] = ()
    """Each failed channel's reason, in chain order."""

    @property
    def channels(self) -> tuple[str, ...]:
        return self.notice.chain or (NO_CHANNEL_NAME,)


def ids(source: Source, notice: Notice) -> list[str]:
    """Every delivery id this notice's chain could touch: what a batch reads from the ledger."""
    chain = notice.chain or (NO_CHANNEL_NAME,)
    return [delivery_id(source.event_id, notice.recipient, name) for name in chain]


def plan(source: Source, notice: Notice, ledger: Mapping[str, DeliveryRecord]) -> Plan:
    """What is left to do for one notice, given its ledger records."""
    skip: str | None = None
    if not notice.chain:
        skip = NO_CHANNEL if notice.phone or notice.email else NO_CONTACT
    elif not notice.consent:
        skip = NO_CONSENT
    chain = (notice.chain[0],) if skip and notice.chain else notice.chain or (NO_CHANNEL_NAME,)
    finished: list[DeliveryRecord] = []
    failed: list[str] = []
    reasons: list[str] = []
    for index, name in enumerate(chain):
        did = delivery_id(source.event_id, notice.recipient, name)
        record = ledger.get(did)
        if record is None or record.status is DeliveryStatus.SENDING:
            claim = claim_of(source, notice, did, name, failed)
            return Plan(notice, tuple(finished), claim, index, skip, None, tuple(reasons))
        finished.append(record)
        if record.status is not DeliveryStatus.FAILED:
            break
        failed.append(name)
        reasons.append(f"{name}: {record.detail}")
        if record.final:
            letter = None if record.dead_lettered else record
            return Plan(notice, tuple(finished), None, index, skip, letter, tuple(reasons))
    return Plan(notice, tuple(finished), None, 0, skip, None, tuple(reasons))


def claim_of(source: Source, notice: Notice, did: str, channel: str, failed: list[str]) -> Claim:
    return Claim(
        delivery_id=did,
        complaint_id=source.complaint_id,
        source_event_id=source.event_id,
        recipient=notice.recipient,
        channel=channel,
        template_code=notice.template,
        fallback_from=", ".join(failed) or None,
    )


@dataclass
class Ran:
    """What running one notice's chain came to: the deliveries finished now (in order,
    each with the record it leaves), and the final failure's reasons if the chain ended
    in one."""

    finished: list[tuple[Finish, DeliveryRecord]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    failed: DeliveryRecord | None = None
    earlier: list[DeliveryRecord] = field(default_factory=list)
    """Fallback deliveries a concurrent attempt had already finished."""


class ClaimOne(Protocol):
    async def __call__(self, claim: Claim, *, now: datetime) -> DeliveryRecord: ...


@dataclass(kw_only=True)
class Chain:
    """Runs claimed deliveries down their chains."""

    channels: Mapping[str, Channel]
    claim: ClaimOne
    metrics: NotifierMetrics
    retry: RetryPolicy
    sleep: Sleep
    clock: Callable[[], datetime]

    async def run(self, source: Source, step: Plan, claimed: DeliveryRecord) -> Ran:
        """Finish ``claimed`` and, while it fails, the channels after it."""
        ran = Ran(reasons=list(step.reasons))
        record = claimed
        failed = [r.channel for r in step.finished if r.status is DeliveryStatus.FAILED]
        if step.skip is not None:
            finish = Finish(
                delivery_id=record.delivery_id,
                status=DeliveryStatus.SKIPPED,
                at=bson_time(self.clock()),
                detail=step.skip,
            )
            ran.finished.append((finish, finish.applied_to(record)))
            return ran
        chain = step.notice.chain
        index = step.index
        while True:
            if record.status is not DeliveryStatus.SENDING:  # a concurrent claim finished it
                done = record
                ran.earlier.append(record)
            else:
                last = index == len(chain) - 1
                finish = await self._attempt(record, source, step.notice, last=last)
                done = finish.applied_to(record)
                ran.finished.append((finish, done))
            if done.status is not DeliveryStatus.FAILED:
                return ran
            failed.append(done.channel)
            ran.reasons.append(f"{done.channel}: {done.detail}")
            if done.final or index == len(chain) - 1:
                ran.failed = None if done.dead_lettered else done
                return ran
            index += 1
            name = chain[index]
            did = delivery_id(source.event_id, step.notice.recipient, name)
            record = await self.claim(
                claim_of(source, step.notice, did, name, failed), now=self.clock()
            )

    async def _attempt(
        self, claim: DeliveryRecord, source: Source, notice: Notice, *, last: bool
    ) -> Finish:
        did = claim.delivery_id
        channel = self.channels[claim.channel]
        try:
            if notice.content is not None:
                notice.content.check()
        except TemplateError as exc:
            return Finish(
                delivery_id=did,
                status=DeliveryStatus.FAILED,
                at=bson_time(self.clock()),
                detail=describe(exc),
                final=True,
            )
        if not claim.fresh and await channel.already_delivered(did):
            log.warning(
                "resumed an interrupted delivery that had gone out", extra={"channel": channel.name}
            )
            return self._sent(claim, at=self.clock())
        tried = await self._try(channel, notice.message(did, source))
        if tried.ok:
            return self._sent(claim, at=self.clock(), retries=tried.attempts - 1)
        return Finish(
            delivery_id=did,
            status=DeliveryStatus.FAILED,
            at=bson_time(self.clock()),
            detail=tried.reason,
            retries=tried.attempts - 1,
            final=last,
            retryable=tried.retryable,
        )

    @staticmethod
    def _sent(claim: DeliveryRecord, *, at: datetime, retries: int = 0) -> Finish:
        detail = fallback_detail([claim.fallback_from]) if claim.fallback_from else None
        return Finish(
            delivery_id=claim.delivery_id,
            status=DeliveryStatus.SENT,
            at=bson_time(at),
            detail=detail,
            retries=retries,
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
