"""Long retries leave the handler: a retry topic, as Uber published the pattern, and a
sweep for claims no live attempt holds. Pure; :mod:`notifier.delivery` does the I/O.

Why: Kafka takes a partition away from a consumer that does not poll again within
``max.poll.interval.ms``, and the next owner handles the batch again. Retrying a slow
provider in place (tries × timeouts × channels × the kit's batch retries) can pass that
limit, so every batch gets a time budget (:class:`Budget`) well under it. Within the
budget a channel is retried in place as before; a channel that still fails in a way
trying again can help — the chain's last, or one the budget left untried — is not failed
but marked ``retrying`` and published as a ``NotificationRetryScheduled`` to
``notification.retry`` with a not-before time (capped exponential backoff across
retries, honouring a provider's ``Retry-After``). The notifier consumes that topic itself
(its own consumer group) and resumes the delivery with the same idempotency key; after
``max_retries`` the channel fails for good and the event is dead-lettered with the
reason, as a failed chain always was. Earlier channels of a chain still fall back at
once (AlimTalk → SMS), so a resident is not kept waiting for a retry when another
channel can reach them.

A record on the retry topic that is not due yet is waited for, at most ``wait_seconds``
per batch; what is still not due is published to the topic again (the same event) and
the batch is committed, so the consumer keeps polling and never hot-loops.

The database or the broker being away is not a channel failure: it fails the batch as
before (the kit retries it, keeps the offset and never dead-letters it).

**The sweep.** A claim is held by a live attempt for at most one batch (the budget) times
the kit's in-place retries, always under the poll limit, and a redelivery that resumes a
claim renews its ``claimed_at``. So a claim still ``sending`` after ``lease_seconds``
(longer than the poll limit) belongs to an attempt that died and was not redelivered
(the record dead-lettered or lost with a memory-only broker), and one ``retrying`` past
its time by a lease lost its retry message. The sweep re-queues both: it publishes a
retry (due now) and marks the delivery ``retrying``, conditional on it standing as found.
It never sends itself: the retry consumer resumes the delivery under the complaint's
ordering, asking the channel first whether it went out (the outbox can tell) and sending
again with the same idempotency key (HTTP providers and webhook receivers drop the
repeat; an e-mail carries the same Message-ID). Marking such claims failed instead would
lose messages that never left; a provider without idempotency keys would make the
re-queue a possible second message, which is why every HTTP channel sends one.
"""

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.ledger import DeliveryRecord
from schemas import NotificationRetryScheduled
from schemas.events import ComplaintDeadlineAlert, ComplaintStatusChanged

Source = ComplaintStatusChanged | ComplaintDeadlineAlert

SWEPT = "re-queued by the sweep: no attempt held the delivery within its lease"


@dataclass(frozen=True)
class RetryTopic:
    """How often, and how far apart, a delivery goes round the retry topic."""

    max_retries: int = 5
    initial_backoff_seconds: float = 30.0
    max_backoff_seconds: float = 900.0
    wait_seconds: float = 10.0
    """At most this long a batch of the retry topic waits for records not due yet."""

    def gives_up(self, retries: int) -> bool:
        """Whether a delivery that went round ``retries`` times may not go again."""
        return retries >= self.max_retries

    def not_before(self, retry: int, now: datetime, retry_after: float | None = None) -> datetime:
        """When retry number ``retry`` (1-based) may run: capped exponential backoff with
        jitter; a provider's Retry-After is honoured up to the cap."""
        ceiling = min(self.max_backoff_seconds, self.initial_backoff_seconds * 2 ** (retry - 1))
        wait = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff_seconds))
        return now + timedelta(seconds=wait)


@dataclass(frozen=True)
class Budget:
    """The time one batch may spend sending, on the monotonic clock: an attempt is only
    started if it can end (``attempt_seconds``, the channels' timeout) before the end."""

    ends: float
    attempt_seconds: float

    @classmethod
    def starting_now(cls, seconds: float, attempt_seconds: float) -> "Budget":
        return cls(time.monotonic() + seconds, attempt_seconds)

    def allows(self, wait: float = 0.0) -> bool:
        """Whether an attempt after waiting ``wait`` seconds still ends within budget."""
        return time.monotonic() + wait + self.attempt_seconds <= self.ends


def scheduled(
    source: Source,
    record: DeliveryRecord,
    *,
    reason: str,
    not_before: datetime,
    now: datetime,
) -> NotificationRetryScheduled:
    """The retry-topic message for a delivery now ``retrying`` (or swept)."""
    return NotificationRetryScheduled(
        occurred_at=now,
        complaint_id=record.complaint_id,
        delivery_id=record.delivery_id,
        source=source,
        recipient=record.recipient,
        channel=record.channel,
        retry=record.retries,
        not_before=not_before,
        reason=reason,
    )


def split_due(
    items: Sequence[NotificationRetryScheduled], now: datetime
) -> tuple[list[NotificationRetryScheduled], list[NotificationRetryScheduled]]:
    """(due, not yet), each in arrival order."""
    due = [i for i in items if i.not_before <= now]
    later = [i for i in items if i.not_before > now]
    return due, later


def wait_for(items: Sequence[NotificationRetryScheduled], now: datetime, cap: float) -> float:
    """How long to wait before handling a batch: until its last record is due, at most
    ``cap`` seconds (what is still not due then goes round the topic again)."""
    if not items:
        return 0.0
    latest = max(i.not_before for i in items)
    return max(0.0, min(cap, (latest - now).total_seconds()))
