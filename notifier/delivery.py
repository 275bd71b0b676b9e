"""The unit of work: a batch of events becomes exactly one message per event, recipient
and channel, for a handful of database commands per batch.

A batch is one unit of work (CONVENTIONS 13):

1. read what it needs, one query each and only when needed: the recipients of its
   complaints, their parked events (:mod:`notifier.parking`), what quiet hours hold for
   them (:mod:`notifier.deferral`, with quiet hours on), and the ledger records
   (:mod:`notifier.ledger`) of every delivery its notices could touch;
2. decide in pure code: whom to tell (:mod:`notifier.audience`), what to park or hold,
   and for each notice what its channel chain still needs (:func:`notifier.chain.plan`);
3. claim every delivery to make in one bulk write;
4. send: complaints concurrently, one complaint's messages one after another and in
   order, each down its chain (:class:`notifier.chain.Chain`; a fallback claims its next
   channel on its own), and publish each outcome (and dead letter) as its complaint goes;
5. finish each notice's deliveries, marked published, as soon as its chain has run: the
   finishes of the whole process are written together every few milliseconds
   (:mod:`notifier.settling`); once every finish of the batch is written, put what goes
   round the retry topic on it and take out what was parked or held and is now sent;
   then the offsets are committed.

Sending has a time budget per batch, well under the consumer's poll limit; what it leaves
untried, and a last channel still failing, goes round ``notification.retry``
(:mod:`notifier.retrying`), which this service consumes itself (:meth:`Delivery.retry_all`).
Residents' messages are capped per contact and day (:mod:`notifier.caps`).

A crash between sending and the finish leaves a claim ``sending``: the redelivery asks
the channel whether the message went out (an HTTP channel cannot know and sends again
with the same idempotency key, which the provider drops) and publishes the outcome again
(the same event id: a duplicate downstream). Since each finish is written as its notice
ends rather than with the batch's last, that window holds only the calls in flight at the
crash and those that ended within the last write interval, not the whole batch. A crash
before a publish leaves the record unpublished, and the redelivery publishes it.

A recipient who cannot be reached — no phone or address at all, no configured channel
for the contact they gave, or no consent — is sent nothing: the outcome is ``skipped``
with that reason, never ``sent`` to nobody. When the last channel fails too, or the
message cannot be made (a template variable missing), the failed outcome is published
and the event goes to the dead-letter topic with the reason, once.

Within a process a complaint's batches are serialised by a lock per complaint (the
filing's batch sending parked events runs beside the lifecycle's). The claim is not a
lease across processes: if two held the same event at once (a rebalance mid-send), the
second would find ``sending`` and could send again. Kafka gives a partition to one group
member at a time, which keeps that window narrow; a claim no attempt renews within its
lease is re-queued by :meth:`Delivery.sweep`, never sent by the sweep itself. A slow
delivery holds up no other complaint of its batch, but the next batch of its partition
waits for it.
"""

import asyncio
import contextlib
import logging
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from notifier.audience import Audience, Notice
from notifier.caps import Count, DailyCap
from notifier.chain import Chain, Plan, Ran, Sleep, ids, plan
from notifier.channel import RESIDENT, Channel
from notifier.contacts import Contacts
from notifier.deferral import Deferred, Hold, Source, held_before, release_at
from notifier.ledger import FINISHED, DeliveryRecord, DeliveryStatus, Finish, Mark
from notifier.metrics import NotifierMetrics
from notifier.outcomes import metric_outcome, outcome, source_topic, undeliverable
from notifier.parking import Parked, in_lifecycle_order
from notifier.quiet import QuietHours
from notifier.recipients import Recipient
from notifier.retry import RetryPolicy
from notifier.retrying import SWEPT, Budget, RetryTopic, scheduled, split_due, wait_for
from notifier.settling import Settler
from notifier.store import NotifierStore
from schemas import (
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    DeadLetter,
    NotificationRetryScheduled,
    topics,
)
from schemas.events import AlertKind, ContactCodeIssued, ContactConfirmed, utcnow
from services import telemetry
from services.errors import PermanentError, RetryableError, describe
from services.runtime import Clock, Publish

__all__ = ["Arrival", "DeadLetterSink", "Delivery", "Rejected", "Sleep"]

log = logging.getLogger("sotong.notifier")

DeadLetterSink = Callable[[DeadLetter], Awaitable[None]]


@dataclass(frozen=True)
class Arrival:
    """One event to handle, with the correlation id its record carried."""

    source: Source
    correlation_id: str | None = None


@dataclass(frozen=True)
class Rejected:
    """An arrival that cannot be handled at all, and why: it is dead-lettered alone."""

    arrival: Arrival
    error: PermanentError


# -- deciding -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One event to tell about, within one complaint's ordered work."""

    source: Source
    correlation_id: str | None
    only: str | None = None
    """Only this recipient (a held message released)."""
    released: bool = False
    unpark: bool = False
    undefer: str | None = None
    arrival: Arrival | None = None
    """The record's arrival, if the job came from this batch's records."""
    retrying: bool = False
    """A retry from the retry topic: it resumes a delivery left ``retrying``."""


@dataclass(frozen=True)
class Task:
    """One notice of one job, planned against the ledger."""

    job: Job
    notice: Notice
    counts_repeat: bool
    """The job's own notice (not a held one sent before it): counts toward duplicates."""
    plan: Plan | None = None


@dataclass
class Effects:
    """What one complaint's sending came to: finishes and marks not yet handed to the
    settler, the writes they went into, and what the batch does once those are done."""

    finishes: dict[str, Finish] = field(default_factory=dict)
    marks: dict[str, Mark] = field(default_factory=dict)
    counted: list[DeliveryRecord] = field(default_factory=list)
    retries: list[tuple[Source, DeliveryRecord, str | None]] = field(default_factory=list)
    """Deliveries now ``retrying``, put on the retry topic once their finish is written."""
    written: list["asyncio.Future[None]"] = field(default_factory=list)
    """The settler's writes this complaint's finishes went into."""

    def hand_over(self, settler: Settler) -> None:
        """Queue what is finished so far for the settler's next write."""
        if self.finishes or self.marks:
            self.written.append(settler.add(self.finishes.values(), self.marks.values()))
            self.finishes, self.marks = {}, {}

    def finished(self, finish: Finish, record: DeliveryRecord) -> None:
        self.finishes[finish.delivery_id] = finish
        self.counted.append(record)

    def mark(self, delivery_id: str, *, published: bool = False, dead: bool = False) -> None:
        if delivery_id in self.finishes:
            f = self.finishes[delivery_id]
            self.finishes[delivery_id] = replace(
                f,
                published=f.published or published,
                dead_lettered=f.dead_lettered or dead,
            )
            return
        m = self.marks.get(delivery_id, Mark(delivery_id=delivery_id))
        self.marks[delivery_id] = Mark(
            delivery_id=delivery_id,
            published=m.published or published,
            dead_lettered=m.dead_lettered or dead,
        )


class Delivery:
    """The application service: every subscriber's batch ends here."""

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
        later: RetryTopic | None = None,
        budget_seconds: float | None = None,
        attempt_seconds: float = 5.0,
        cap: DailyCap | None = None,
        contacts: Contacts | None = None,
        finish_every: float = 0.005,
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
        self.later = later
        self.cap = cap
        self.contacts = contacts
        self.budget_seconds = budget_seconds
        self.attempt_seconds = attempt_seconds
        self.settler = Settler(self._settle, finish_every)
        self.chain = Chain(
            channels=self.channels,
            claim=store.claim,
            metrics=metrics,
            retry=self.retry,
            sleep=self._sleep,
            clock=clock,
            later=later,
            sent_unrecorded=self.settler.sent_unrecorded,
        )
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def _sleep(self, seconds: float) -> None:
        await self.sleep(seconds)

    async def _settle(self, finishes: Sequence[Finish], marks: Sequence[Mark]) -> None:
        await self.store.settle(finishes, marks, now=self.clock())

    # -- one at a time (operators, tests): a batch of one --------------------------------

    async def remember_recipient(self, filed: ComplaintFiled) -> None:
        """Keep the resident's contact, then send what was parked waiting for it."""
        await self.remember_all([filed])

    async def notify(
        self, event: ComplaintStatusChanged, *, correlation_id: str | None = None
    ) -> None:
        """Tell everyone concerned about one state change, once per channel however often
        it arrives; raise what would dead-letter it."""
        for rejected in await self.notify_all([Arrival(event, correlation_id)]):
            raise rejected.error

    async def alert(
        self, alert: ComplaintDeadlineAlert, *, correlation_id: str | None = None
    ) -> None:
        """Tell the supervisor and handler about a deadline (the resident about a 30-day
        progress notice), and the department's system."""
        for rejected in await self.alert_all([Arrival(alert, correlation_id)]):
            raise rejected.error

    # -- a batch at a time ---------------------------------------------------------------

    async def remember_all(self, filings: Sequence[ComplaintFiled]) -> None:
        """Keep the residents' contacts, then send what was parked waiting for them."""
        if not filings:
            return
        await self.store.remember_many(filings)
        complaint_ids = {f.complaint_id for f in filings}
        async with self._serialised(complaint_ids):
            parked = await self.store.parked_for(complaint_ids)
            if not parked:
                return
            recipients = await self.store.recipients_of(parked.keys())
            work = {
                cid: [
                    Job(step.event, step.correlation_id, unpark=True)
                    for step in in_lifecycle_order(items, [])
                ]
                for cid, items in parked.items()
            }
            await self._run(work, recipients)

    async def notify_all(self, arrivals: Sequence[Arrival]) -> list[Rejected]:
        """Tell everyone concerned about these state changes; those whose ComplaintFiled
        has not come yet are parked (:mod:`notifier.parking`), not failed: a normal race
        between two topics is not an error. What cannot be handled at all is returned,
        to be dead-lettered alone."""
        if not arrivals:
            return []
        complaint_ids = {a.source.complaint_id for a in arrivals}
        async with self._serialised(complaint_ids):
            recipients = await self.store.recipients_of(complaint_ids)
            await self._park([a for a in arrivals if a.source.complaint_id not in recipients])
            known = {cid for cid in complaint_ids if cid in recipients}
            parked = await self.store.parked_for(known) if known else {}
            arrived: dict[str, list[Parked]] = defaultdict(list)
            by_event: dict[str, Arrival] = {}
            for a in arrivals:
                if a.source.complaint_id in known:
                    assert isinstance(a.source, ComplaintStatusChanged)
                    arrived[a.source.complaint_id].append(Parked(a.source, a.correlation_id))
                    by_event.setdefault(a.source.event_id, a)
            work = {
                cid: [
                    Job(
                        step.event,
                        step.correlation_id,
                        unpark=step.parked,
                        arrival=by_event.get(step.event.event_id),
                    )
                    for step in in_lifecycle_order(parked.get(cid, []), arrived[cid])
                ]
                for cid in known
            }
            return await self._run(work, recipients)

    async def alert_all(self, arrivals: Sequence[Arrival]) -> list[Rejected]:
        """Tell whom each deadline alert concerns. A progress notice whose resident is not
        known yet fails the batch as retryable: the filing is on its way."""
        if not arrivals:
            return []
        complaint_ids = {a.source.complaint_id for a in arrivals}
        async with self._serialised(complaint_ids):
            recipients = await self.store.recipients_of(complaint_ids)
            for a in arrivals:
                source = a.source
                assert isinstance(source, ComplaintDeadlineAlert)
                if source.complaint_id not in recipients and (
                    source.kind is AlertKind.PROGRESS_NOTICE
                ):
                    raise RetryableError("the resident of this complaint is not known yet")
            work: dict[str, list[Job]] = defaultdict(list)
            for a in arrivals:
                work[a.source.complaint_id].append(Job(a.source, a.correlation_id, arrival=a))
            return await self._run(work, recipients)

    async def release_due(self) -> int:
        """Send what quiet hours held back and may go now; the number handled. If the
        batch fails (the database away), all of it stays held for the next call."""
        due = await self.store.due(self.clock())
        if not due:
            return 0
        complaint_ids = {d.complaint_id for d in due}
        async with self._serialised(complaint_ids):
            recipients = await self.store.recipients_of(complaint_ids)
            work: dict[str, list[Job]] = defaultdict(list)
            for d in due:
                work[d.complaint_id].append(_release(d))
            await self._run(work, recipients)
        return len(due)

    async def release_forever(self, interval: float) -> None:
        while True:
            try:
                await self.release_due()
            except Exception:
                log.exception("deferred release failed; will try again")
            await asyncio.sleep(interval)

    async def send_codes(self, events: Sequence[ContactCodeIssued]) -> None:
        """Send contact codes at once (:mod:`notifier.contacts`)."""
        if self.contacts is None:
            raise PermanentError("contact codes are not sent by this notifier")
        complaint_ids = {e.complaint_id for e in events}
        async with self._serialised(complaint_ids):
            await self.contacts.sender.send_all(events)

    async def confirm_all(self, events: Sequence[ContactConfirmed]) -> None:
        """Record the confirmations, then send what was held for those residents, in
        lifecycle order; a repeat finds nothing held and sends nothing."""
        if self.contacts is None or not events:
            return
        complaint_ids = {e.complaint_id for e in events}
        confirmations = self.contacts.store
        await confirmations.confirm_many(complaint_ids, now=self.clock())
        async with self._serialised(complaint_ids):
            pending = await confirmations.unreleased(complaint_ids)
            held = await self.store.held_for(pending) if pending else {}
            work = {
                cid: [_release(d) for d in items if d.recipient == RESIDENT]
                for cid, items in held.items()
            }
            work = {cid: jobs for cid, jobs in work.items() if jobs}
            if work:
                recipients = await self.store.recipients_of(work.keys())
                await self._run(work, recipients)
            await confirmations.mark_released(pending)

    async def retry_all(
        self, retries: Sequence[tuple[NotificationRetryScheduled, str | None]]
    ) -> None:
        """Resume deliveries from the retry topic: wait (at most the topic's
        ``wait_seconds``) for those not due yet, resume what is due, and put what is still
        not due back on the topic, so the consumer keeps polling."""
        if not retries:
            return
        later = self.later or RetryTopic()
        await self.sleep(wait_for([r for r, _ in retries], self.clock(), later.wait_seconds))
        now = self.clock()
        due_items, waiting = split_due([r for r, _ in retries], now)
        correlation = {id(r): c for r, c in retries}
        for item in waiting:
            await self.publish(topics.RETRY, item, correlation[id(item)])
        if not due_items:
            return
        complaint_ids = {r.complaint_id for r in due_items}
        async with self._serialised(complaint_ids):
            recipients = await self.store.recipients_of(complaint_ids)
            work: dict[str, list[Job]] = defaultdict(list)
            seen: set[tuple[str, str]] = set()
            for r in due_items:
                key = (r.source.event_id, r.recipient)
                if key in seen:  # two channels of one notice: one resume runs its chain
                    continue
                seen.add(key)
                work[r.complaint_id].append(
                    Job(
                        r.source,
                        correlation[id(r)],
                        only=r.recipient,
                        released=True,
                        retrying=True,
                    )
                )
            await self._run(work, recipients)

    async def sweep(self, lease_seconds: float, *, limit: int = 200) -> int:
        """Re-queue deliveries no live attempt has held for a lease (see
        :mod:`notifier.retrying`); the number re-queued."""
        now = self.clock()
        stuck = await self.store.stuck(now - timedelta(seconds=lease_seconds), limit=limit)
        if not stuck:
            return 0
        for item in stuck:
            retry = scheduled(item.source, item.record, reason=SWEPT, not_before=now, now=now)
            await self.publish(topics.RETRY, retry, item.correlation_id)
        marked = await self.store.requeue_many(stuck, now=now)
        for item in stuck:
            if item.record.delivery_id in marked:
                self.metrics.swept.labels(item.record.status.value).inc()
                log.warning(
                    "delivery re-queued after its lease",
                    extra={
                        "complaint_id": item.record.complaint_id,
                        "channel": item.record.channel,
                        "status": item.record.status.value,
                    },
                )
        return len(marked)

    async def sweep_forever(self, interval: float, lease_seconds: float) -> None:
        while True:
            try:
                await self.sweep(lease_seconds)
            except Exception:
                log.exception("sweep of stuck deliveries failed; will try again")
            await asyncio.sleep(interval)

    # -- the unit of work ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _serialised(self, complaint_ids: Collection[str]) -> AsyncIterator[None]:
        """One complaint's messages go out one batch at a time within this process; locks
        are taken in one order, so two batches never wait on each other in a circle."""
        async with contextlib.AsyncExitStack() as stack:
            for cid in sorted(complaint_ids):
                lock = self._locks.get(cid)
                if lock is None:
                    lock = self._locks[cid] = asyncio.Lock()
                await stack.enter_async_context(lock)
            yield

    async def _park(self, arrivals: Sequence[Arrival]) -> None:
        if not arrivals:
            return
        items = []
        for a in arrivals:
            assert isinstance(a.source, ComplaintStatusChanged)
            items.append(Parked(a.source, a.correlation_id))
        for event_id in await self.store.park_many(items, now=self.clock()):
            self.metrics.parked.inc()
            log.info(
                "lifecycle event parked until its complaint's ComplaintFiled arrives",
                extra={"event_id": event_id},
            )

    async def _with_added_photos(
        self, work: Mapping[str, list[Job]], recipients: Mapping[str, Recipient]
    ) -> Mapping[str, Recipient]:
        """Photos a correction added (정정: 사진 추가) join the complaint's remembered ones
        before anyone is told, so its webhook and every later one list them: one write,
        only for a batch that has such a correction."""
        added: dict[str, list[str]] = defaultdict(list)
        for cid, jobs in work.items():
            for job in jobs:
                source = job.source
                if isinstance(source, ComplaintStatusChanged) and source.correction is not None:
                    added[cid] += [p.photo_id for p in source.correction.photos]
        added = {cid: ids for cid, ids in added.items() if ids}
        if not added:
            return recipients
        await self.store.add_photos(added)
        return {
            cid: replace(r, photos=tuple(dict.fromkeys((*r.photos, *added.get(cid, ())))))
            for cid, r in recipients.items()
        }

    async def _run(
        self, work: Mapping[str, list[Job]], recipients: Mapping[str, Recipient]
    ) -> list[Rejected]:
        """Plan, claim, send, settle: the batch's work, complaints side by side."""
        recipients = await self._with_added_photos(work, recipients)
        now = self.clock()
        budget = (
            Budget.starting_now(self.budget_seconds, self.attempt_seconds)
            if self.budget_seconds is not None and self.later is not None
            else None
        )
        awaiting: set[str] = set()
        flagged = False
        if self.contacts is not None:
            known = {cid: recipients[cid] for cid in work if cid in recipients}
            awaiting = await self.contacts.awaiting(known)
            flagged = any(r.contact_unconfirmed for r in known.values())
        held: dict[str, list[Deferred]] = {}
        if (self.quiet is not None or flagged) and any(
            not j.released for js in work.values() for j in js
        ):
            held = await self.store.held_for(list(work))
        rejected: list[Rejected] = []
        holds: list[Hold] = []
        waiting: list[Hold] = []  # for the contact to be confirmed
        expired = 0
        tasks: dict[str, list[Task]] = {}
        unpark: list[str] = []
        undefer: list[str] = []
        for cid, jobs in work.items():
            released: set[str] = set()
            tasks[cid] = []
            for job in jobs:
                try:
                    own = self._notices(job, recipients.get(cid))
                except PermanentError as exc:
                    self._cannot(job, exc, rejected, unpark)
                    continue
                for notice in own:
                    if cid in awaiting and notice.recipient == RESIDENT:
                        assert self.contacts is not None
                        if job.undefer is not None:  # held, and its time ran out
                            expired += 1
                        else:
                            hold_until = now + self.contacts.hold
                            waiting.append(
                                Hold(job.source, notice.recipient, job.correlation_id, hold_until)
                            )
                        continue
                    if not job.released:
                        until = release_at(self.quiet, urgent=notice.urgent, now=now)
                        if until is not None:
                            holds.append(
                                Hold(job.source, notice.recipient, job.correlation_id, until)
                            )
                            continue
                        for h in held_before(held.get(cid, []), job.source, notice.recipient):
                            if h.deferred_id in released:
                                continue
                            released.add(h.deferred_id)
                            release = _release(h)
                            try:
                                notices = self._notices(release, recipients.get(cid))
                            except PermanentError as exc:
                                self._cannot(release, exc, rejected, unpark)
                                continue
                            tasks[cid] += [Task(release, n, False) for n in notices]
                            undefer.append(h.deferred_id)
                    tasks[cid].append(Task(job, notice, True))
                if job.unpark:
                    unpark.append(job.source.event_id)
                if job.undefer:
                    undefer.append(job.undefer)
        await self._defer(holds, now)
        await self._wait_for_contacts(waiting, expired, now)
        ledger = await self.store.records(
            [did for ts in tasks.values() for t in ts for did in ids(t.job.source, t.notice)]
        )
        capped = await self._capped(tasks, ledger, now)
        planned = {
            cid: [
                Task(
                    t.job,
                    t.notice,
                    t.counts_repeat,
                    plan(
                        t.job.source,
                        t.notice,
                        ledger,
                        retrying=t.job.retrying,
                        correlation_id=t.job.correlation_id,
                        capped=ids(t.job.source, t.notice)[0] in capped,
                    ),
                )
                for t in ts
            ]
            for cid, ts in tasks.items()
        }
        claims = [t.plan.claim for ts in planned.values() for t in ts if t.plan and t.plan.claim]
        claimed = {
            r.delivery_id: r for r in await self.store.claim_many(claims, known=ledger, now=now)
        }
        effects = [Effects() for _ in planned]
        results = await asyncio.gather(
            *(
                telemetry.under(cid, self._send(ts, claimed, e, budget))  # the complaint's trace
                for (cid, ts), e in zip(planned.items(), effects, strict=True)
            ),
            return_exceptions=True,
        )
        for e in effects:  # what a failure left unhanded, then wait for every write
            e.hand_over(self.settler)
        await self.settler.settle([w for e in effects for w in e.written])
        for e in effects:
            for record in e.counted:
                self._count(record)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        for e in effects:
            for source, record, correlation_id in e.retries:
                await self._schedule(source, record, correlation_id)
        await self.store.unpark_many(unpark)
        await self.store.undefer_many(undefer)
        self._count_repeats(planned)
        return rejected

    async def _capped(
        self, tasks: Mapping[str, Sequence[Task]], ledger: Mapping[str, DeliveryRecord], now: Any
    ) -> set[str]:
        """The first delivery ids of residents' new notices that would pass their contact's
        daily cap (:mod:`notifier.caps`); the others are counted, in one read and one write."""
        if self.cap is None:
            return set()
        asks: list[tuple[Count, str]] = []
        for ts in tasks.values():
            for t in ts:
                n = t.notice
                if n.recipient != RESIDENT or not n.chain or not n.consent:
                    continue
                chain_ids = ids(t.job.source, n)
                if any(did in ledger for did in chain_ids):
                    continue  # begun before: it was counted then
                count = self.cap.key_of(n.phone, n.email, now)
                if count is not None:
                    asks.append((count, chain_ids[0]))
        if not asks:
            return set()
        counted = await self.store.counted(sorted({c.key for c, _ in asks}))
        over, added = self.cap.decide(asks, counted)
        if added:
            await self.store.count_many(added, {c.key: c.expires_at for c, _ in asks})
        for did in over:
            self.metrics.capped.inc()
            log.warning(
                "daily message cap reached: the resident's message is not sent",
                extra={"event_id": did.split(":", 1)[0]},
            )
        return over

    def _count_repeats(self, planned: Mapping[str, Sequence[Task]]) -> None:
        """A state change whose every notice was already handled is a duplicate."""
        jobs: dict[int, list[Task]] = defaultdict(list)
        for ts in planned.values():
            for t in ts:
                if t.counts_repeat:
                    jobs[id(t.job)].append(t)
        for own in jobs.values():
            job = own[0].job
            if not isinstance(job.source, ComplaintStatusChanged) or job.released:
                continue
            if all(t.plan is not None and t.plan.claim is None for t in own):
                self.metrics.duplicates.inc()

    def _notices(self, job: Job, recipient: Recipient | None) -> list[Notice]:
        notices = self.audience.plan(job.source, recipient, job.correlation_id)
        return [n for n in notices if job.only is None or n.recipient == job.only]

    def _cannot(
        self, job: Job, exc: PermanentError, rejected: list[Rejected], unpark: list[str]
    ) -> None:
        """A job that cannot be planned: its own record is dead-lettered; a parked or held
        event must not fail the message that freed it."""
        if job.arrival is not None and not job.unpark:
            rejected.append(Rejected(job.arrival, exc))
            return
        log.error(
            "parked or held event cannot be notified",
            extra={"event_id": job.source.event_id, "reason": describe(exc)},
        )
        if job.unpark:
            unpark.append(job.source.event_id)

    async def _wait_for_contacts(self, waiting: Sequence[Hold], expired: int, now: Any) -> None:
        """Hold residents' messages until their phone is confirmed; count those whose
        time ran out (they are taken out with the batch's other released ones)."""
        if self.contacts is None:
            return
        if expired:
            self.contacts.metrics.expired.inc(expired)
            log.warning(
                "held messages dropped: the phone was never confirmed", extra={"count": expired}
            )
        if not waiting:
            return
        for deferred_id in await self.store.defer_many(waiting, now=now):
            self.contacts.metrics.held.inc()
            log.info(
                "notification held until the resident's phone is confirmed",
                extra={"deferred_id": deferred_id},
            )

    async def _defer(self, holds: Sequence[Hold], now: Any) -> None:
        if not holds:
            return
        by_id = {h.deferred_id: h for h in holds}
        for deferred_id in await self.store.defer_many(holds, now=now):
            self.metrics.deferred.inc()
            h = by_id[deferred_id]
            log.info(
                "notification held for quiet hours",
                extra={"recipient": h.recipient, "release_at": h.release_at.isoformat()},
            )

    # -- one complaint's sending -------------------------------------------------------

    async def _send(
        self,
        tasks: Sequence[Task],
        claimed: Mapping[str, DeliveryRecord],
        effects: Effects,
        budget: Budget | None = None,
    ) -> None:
        """One complaint's notices in order: what is left of each chain, its outcomes
        published as they come, its finishes handed to the settler as each notice ends."""
        for task in tasks:
            await self._send_one(task, claimed, effects, budget)
            effects.hand_over(self.settler)

    async def _send_one(
        self,
        task: Task,
        claimed: Mapping[str, DeliveryRecord],
        effects: Effects,
        budget: Budget | None,
    ) -> None:
        step = task.plan
        assert step is not None
        source, correlation_id = task.job.source, task.job.correlation_id
        for record in step.finished:
            if not record.outcome_published:
                await self._publish(record, correlation_id, effects)
            if step.claim is None:
                log.info(
                    "notification already handled",
                    extra={"channel": record.channel, "outcome": record.status.value},
                )
        if step.dead_letter is not None:
            await self._dead_letter(source, step.dead_letter, task.notice, step.reasons, effects)
        if step.claim is None:
            return
        record = claimed[step.claim.delivery_id]
        if record.status is not DeliveryStatus.SENDING:
            if record.status in FINISHED and not record.outcome_published:
                await self._publish(record, correlation_id, effects)
            return
        ran: Ran = await self.chain.run(
            source, step, record, correlation_id=correlation_id, budget=budget
        )
        for finish, done in ran.finished:
            effects.finished(finish, done)
            if done.status in FINISHED:
                await self._publish(done, correlation_id, effects)
        for earlier in ran.earlier:
            if not earlier.outcome_published:
                await self._publish(earlier, correlation_id, effects)
        if ran.retrying is not None:
            effects.retries.append((source, ran.retrying, correlation_id))
        if ran.failed is not None:
            await self._dead_letter(source, ran.failed, task.notice, ran.reasons, effects)

    async def _schedule(
        self, source: Source, record: DeliveryRecord, correlation_id: str | None
    ) -> None:
        """Put a delivery now ``retrying`` on the retry topic, after its finish is written
        (so the retry never finds it still ``sending``): a crash in between leaves it
        ``retrying`` without a message, which the sweep re-queues after its lease."""
        assert record.retry_at is not None, "a retrying delivery has its retry time"
        await self.publish(
            topics.RETRY,
            scheduled(
                source,
                record,
                reason=record.detail or "retryable failure",
                not_before=record.retry_at,
                now=self.clock(),
            ),
            correlation_id,
        )

    async def _publish(
        self, record: DeliveryRecord, correlation_id: str | None, effects: Effects
    ) -> None:
        await self.publish(topics.NOTIFICATIONS, outcome(record, self.clock()), correlation_id)
        effects.mark(record.delivery_id, published=True)

    async def _dead_letter(
        self,
        source: Source,
        record: DeliveryRecord,
        notice: Notice,
        reasons: Sequence[str],
        effects: Effects,
    ) -> None:
        """The event on the dead-letter topic, once per recipient that could not be told;
        a repeat after a crash is a duplicate downstream (the id is the delivery's)."""
        if self.dead_letter is None:
            return
        topic = source_topic(source, self.source_topics)
        await self.dead_letter(
            undeliverable(source, record, notice.recipient, list(reasons), topic)
        )
        self.metrics.undeliverable(topic)
        effects.mark(record.delivery_id, dead=True)
        log.warning(
            "notification dead-lettered",
            extra={"recipient": notice.recipient, "channel": record.channel},
        )

    def _count(self, record: DeliveryRecord) -> None:
        if record.status is DeliveryStatus.RETRYING:
            self.metrics.retries_scheduled.labels(record.channel).inc()
            log.info(
                "notification goes round the retry topic",
                extra={
                    "channel": record.channel,
                    "recipient": record.recipient,
                    "retry": record.retries,
                    "reason": record.detail,
                },
            )
            return
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


def _release(item: Deferred) -> Job:
    return Job(
        item.source,
        item.correlation_id,
        only=item.recipient,
        released=True,
        undefer=item.deferred_id,
    )
