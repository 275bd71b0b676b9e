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
from notifier.caps import OVER_CAP
from notifier.channel import Channel, Message
from notifier.deferral import Source
from notifier.ledger import Claim, DeliveryRecord, DeliveryStatus, Finish, bson_time, delivery_id
from notifier.metrics import NotifierMetrics
from notifier.outcomes import NO_CHANNEL, NO_CHANNEL_NAME, NO_CONSENT, NO_CONTACT, fallback_detail
from notifier.retry import RetryPolicy, Tried
from notifier.retrying import Budget, RetryTopic
from notifier.templates import TemplateError
from services.errors import PermanentError, RetryableError, describe

log = logging.getLogger("sotong.notifier")

Sleep = Callable[[float], Awaitable[None]]

BUDGET_SPENT = "not tried: the batch's time budget was spent"


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


def plan(
    source: Source,
    notice: Notice,
    ledger: Mapping[str, DeliveryRecord],
    *,
    retrying: bool = False,
    correlation_id: str | None = None,
    capped: bool = False,
) -> Plan:
    """What is left to do for one notice, given its ledger records. A delivery waiting
    on the retry topic is resumed only by that retry (``retrying``); anything else that
    finds it leaves the chain alone."""
    skip: str | None = None
    if not notice.chain:
        skip = NO_CHANNEL if notice.phone or notice.email else NO_CONTACT
    elif not notice.consent:
        skip = NO_CONSENT
    elif capped:
        skip = OVER_CAP
    chain = (notice.chain[0],) if skip and notice.chain else notice.chain or (NO_CHANNEL_NAME,)
    finished: list[DeliveryRecord] = []
    failed: list[str] = []
    reasons: list[str] = []
    for index, name in enumerate(chain):
        did = delivery_id(source.event_id, notice.recipient, name)
        record = ledger.get(did)
        if record is not None and record.status is DeliveryStatus.RETRYING and not retrying:
            return Plan(notice, tuple(finished), None, index, skip, None, tuple(reasons))
        if record is None or record.status in (DeliveryStatus.SENDING, DeliveryStatus.RETRYING):
            claim = claim_of(source, notice, did, name, failed, correlation_id)
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


def claim_of(
    source: Source,
    notice: Notice,
    did: str,
    channel: str,
    failed: list[str],
    correlation_id: str | None = None,
) -> Claim:
    return Claim(
        delivery_id=did,
        complaint_id=source.complaint_id,
        source_event_id=source.event_id,
        recipient=notice.recipient,
        channel=channel,
        template_code=notice.template,
        fallback_from=", ".join(failed) or None,
        source=source,
        correlation_id=correlation_id,
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
    retrying: DeliveryRecord | None = None
    """The delivery the chain stopped at to go round the retry topic, and its reason."""


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
    later: RetryTopic | None = None
    """The retry topic, if long retries go there (else a channel fails after its tries)."""
    sent_unrecorded: Callable[[str], Finish | None] = lambda _: None
    """What this process sent but could not record (:meth:`Settler.sent_unrecorded`)."""

    async def run(
        self,
        source: Source,
        step: Plan,
        claimed: DeliveryRecord,
        *,
        correlation_id: str | None = None,
        budget: Budget | None = None,
    ) -> Ran:
        """Finish ``claimed`` and, while it fails, the channels after it; stop at one that
        goes round the retry topic."""
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
                if record.status is not DeliveryStatus.RETRYING:
                    ran.earlier.append(record)
            else:
                last = index == len(chain) - 1
                finish = await self._attempt(record, source, step.notice, last=last, budget=budget)
                done = finish.applied_to(record)
                ran.finished.append((finish, done))
            if done.status is DeliveryStatus.RETRYING:
                ran.retrying = done
                return ran
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
                claim_of(source, step.notice, did, name, failed, correlation_id), now=self.clock()
            )

    async def _attempt(
        self,
        claim: DeliveryRecord,
        source: Source,
        notice: Notice,
        *,
        last: bool,
        budget: Budget | None = None,
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
        if not claim.fresh and (earlier := self.sent_unrecorded(did)) is not None:
            log.warning(
                "resumed a delivery this process sent but could not record",
                extra={"channel": channel.name},
            )
            return Finish(
                delivery_id=did, status=DeliveryStatus.SENT, at=earlier.at, detail=earlier.detail
            )
        if not claim.fresh and await channel.already_delivered(did):
            log.warning(
                "resumed an interrupted delivery that had gone out", extra={"channel": channel.name}
            )
            return self._sent(claim, at=self.clock())
        tried = await self._try(
            channel, notice.message(did, source), budget if self.later is not None else None
        )
        extra = max(0, tried.attempts - 1)
        if tried.ok:
            return self._sent(claim, at=self.clock(), retries=extra)
        now = self.clock()
        later = self.later
        if (
            tried.retryable
            and later is not None
            and (last or tried.attempts == 0)
            and not later.gives_up(claim.retries)
        ):
            return Finish(
                delivery_id=did,
                status=DeliveryStatus.RETRYING,
                at=bson_time(now),
                detail=tried.reason,
                retries=extra,
                final=False,
                retryable=True,
                retry_at=later.not_before(claim.retries + 1, now, tried.retry_after),
            )
        reason = tried.reason
        if tried.retryable and claim.retries:
            reason = f"{reason}; gave up after {claim.retries} retries from the retry topic"
        return Finish(
            delivery_id=did,
            status=DeliveryStatus.FAILED,
            at=bson_time(now),
            detail=reason,
            retries=extra,
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

    async def _try(self, channel: Channel, message: Message, budget: Budget | None) -> Tried:
        """One channel, retried in place while its failures are retryable, up to the cap
        and within the batch's time budget (an attempt that could not end in time is not
        started)."""
        attempt = 0
        while True:
            if budget is not None and not budget.allows():
                return Tried(False, attempt, BUDGET_SPENT, retryable=True)
            attempt += 1
            started = time.perf_counter()
            try:
                await channel.deliver(message)
            except PermanentError as exc:
                self._observe(channel.name, started)
                return Tried(False, attempt, describe(exc))
            except RetryableError as exc:
                self._observe(channel.name, started)
                retry_after = getattr(exc, "retry_after", None)
                if self.retry.gives_up(attempt):
                    reason = f"{describe(exc)} (gave up after {attempt} attempts)"
                    return Tried(False, attempt, reason, retryable=True, retry_after=retry_after)
                wait = self.retry.backoff(attempt, retry_after)
                if budget is not None and not budget.allows(wait):
                    reason = f"{describe(exc)} (time budget spent after {attempt} attempts)"
                    return Tried(False, attempt, reason, retryable=True, retry_after=retry_after)
                self.metrics.retries.labels(channel.name).inc()
                log.info(
                    "retrying notification",
                    extra={"channel": channel.name, "attempt": attempt, "reason": describe(exc)},
                )
                await self.sleep(wait)
                continue
            self._observe(channel.name, started)
            return Tried(True, attempt)

    def _observe(self, channel: str, started: float) -> None:
        self.metrics.delivery_seconds.labels(channel).observe(time.perf_counter() - started)
