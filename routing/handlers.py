"""routing's handlers: batches of filed complaints and commands in, lifecycle events out.

Follow a batch from its subscriber (:func:`subscribe`) through :meth:`Routing.handle`: one
read of the batch's complaints, one classifier call for the new ones, a pure decision per
message (``routing/complaint.py``), one bulk write of the complaints with their outboxes,
the publishes (each complaint's in order, the complaints at once) and one bulk write that
empties the outboxes. A record that is not a valid message is dead-lettered alone.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaMessage as KafkaStreamMessage
from faststream.kafka.parser import AioKafkaParser
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from routing.assignment import Load, load_deltas
from routing.cases import Filing, Link, Matcher, Pending, resident_key
from routing.catalogue import Catalogue
from routing.complaint import Facts, Follow, Message, Routed, Rules, follows, text_of
from routing.deadlines import WorkingCalendar
from routing.lifecycle import Lifecycle
from routing.similarity import Tokenize, terms_of
from routing.sla import crossed
from routing.store import (
    CaseLookup,
    Cleared,
    RoutingRecord,
    RoutingStore,
    Transfer,
    Write,
    held,
    with_load_deltas,
)
from routing.texts import Texts
from schemas import (
    CommandRejected,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    topics,
)
from schemas.commands import (
    COMMAND_ADAPTER,
    AnyCommand,
    ConcludeRepeated,
    CorrectComplaint,
    DismissRepeated,
    ReassignHandler,
    ReopenComplaint,
    TransferComplaint,
)
from schemas.events import LinkedTo, RepeatedOf
from schemas.states import OPEN_STATES
from services.broker import KeyedEvent, raw_values, records_of
from services.errors import RetryableError
from services.http import ApiError
from services.logs import bound
from services.openapi import refusals
from services.replay import Replayer
from services.runtime import Clock, Publish, Runtime
from services.signing import CommandVerifier, UnverifiedCommand

if TYPE_CHECKING:
    from routing.classifier import Prediction  # scikit-learn loads only where it is used

log = logging.getLogger("sotong.routing")

MAX_ROUNDS = 5
"""Rounds a batch gets for complaints other processes keep moving; then it is retried."""
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
FILED_ADAPTER: TypeAdapter[ComplaintFiled] = TypeAdapter(ComplaintFiled)
PublishDeadLetter = Callable[[StreamMessage[Any], BaseException, int], Awaitable[None]]
"""Publishes one dead letter: ``DeadLetters.dead_letter`` from the kit, or a fake."""


class Predicts(Protocol):
    """What routing asks of a classifier: the fitted ``routing.classifier.Classifier``,
    or a stub in unit tests."""

    def predict(self, text: str) -> "Prediction": ...

    def predict_many(self, texts: Sequence[str]) -> "list[Prediction]": ...


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.routed = Counter(
            "sotong_complaints_routed_total",
            "Complaints routed to a department, automatically or to the general desk.",
            ["department", "auto"],
            registry=registry,
        )
        self.transitions = Counter(
            "sotong_transitions_total",
            "Lifecycle transitions, by trigger and state reached.",
            ["trigger", "to_state"],
            registry=registry,
        )
        self.sla_alerts = Counter(
            "sotong_sla_alerts_total",
            "Deadline alerts: warnings (75%), breaches, 30-day progress notices.",
            ["kind", "department"],
            registry=registry,
        )
        self.rejected = Counter(
            "sotong_commands_rejected_total",
            "Commands refused, by reason code.",
            ["code"],
            registry=registry,
        )


@dataclass(frozen=True, kw_only=True)
class CaseDetection:
    """반복민원 and 중복민원 at filing (``routing.cases``): the tokenizer the features come
    from, the matcher, and the key the phone is hashed with (None: residents are known
    by their resident token only)."""

    tokenize: Tokenize
    matcher: Matcher
    phone_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Found:
    """What a new complaint brings to its decision: its resident, its features and what
    it repeats or joins."""

    resident_key: str | None
    terms: tuple[str, ...]
    repeated_of: RepeatedOf | None = None
    link: Link | None = None


@dataclass
class _Outcome:
    """One complaint's share of a batch round: its write, if any, and what to publish."""

    before: RoutingRecord | None
    after: RoutingRecord | None = None
    events: list[ComplaintStatusChanged] = field(default_factory=list)
    caused_by: list[str] = field(default_factory=list)
    rejections: list[CommandRejected] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    flush: bool = False
    routed: Routed | None = None

    def write(self) -> Write | None:
        if self.after is None or not self.events:
            return None
        staged = with_load_deltas(self.before, self.after)
        return Write(self.before, staged, tuple(self.events), tuple(self.caused_by))


@dataclass(kw_only=True)
class Routing:
    """The application service both subscribers call, and the deadline watcher and the
    outbox relay run on: every collaborator comes in, so tests hand in fakes."""

    store: RoutingStore
    catalogue: Catalogue
    lifecycle: Lifecycle
    texts: Texts
    publish: Publish
    metrics: RoutingMetrics
    on_duplicate: Callable[[str], None]
    calendar: WorkingCalendar
    classifier: Predicts
    clock: Clock
    cases: CaseDetection | None = None
    rules: Rules = field(init=False)
    _staging: dict[str, int] = field(init=False, default_factory=dict)
    """Complaints whose outbox (and load deltas) a batch of this process wrote and has
    not yet published and cleared: the relay leaves them to it, however long it takes."""

    def __post_init__(self) -> None:
        self.rules = Rules(
            catalogue=self.catalogue,
            calendar=self.calendar,
            lifecycle=self.lifecycle,
            texts=self.texts,
        )

    async def on_filed(self, filed: ComplaintFiled) -> None:
        await self.handle([filed])

    async def on_command(self, command: AnyCommand) -> None:
        await self.handle([command])

    # -- batches ----------------------------------------------------------------------

    async def handle(self, messages: Sequence[Message]) -> None:
        """Decide a batch of messages: per round one read, one classifier call, one load
        read, one bulk write, one load update, the publishes and one outbox clear.

        A complaint another process moved meanwhile (its write lost the sequence guard) is
        read and decided again in the next round, alone with the others that lost; the
        rest of the batch is published already. One complaint's messages are decided in
        the order they came.
        """
        queue: dict[str, list[Message]] = {}
        for message in messages:
            queue.setdefault(message.complaint_id, []).append(message)
        for n in range(MAX_ROUNDS):
            first_filings = n == 0 and all(isinstance(m, ComplaintFiled) for m in messages)
            queue = await self._round(queue, assume_new=first_filings)
            if not queue:
                return
        raise RetryableError("complaints kept changing while their messages were applied")

    async def _round(
        self, queue: dict[str, list[Message]], *, assume_new: bool = False
    ) -> dict[str, list[Message]]:
        """``assume_new``: a batch of filings only is taken as new complaints without
        reading them first; one already stored collides on insert, and the next round
        reads it and finds the filing a duplicate."""
        records = {} if assume_new else await self.store.get_many(queue.keys())
        unsettled = [d for r in records.values() if r.loads_pending for d in r.load_deltas]
        if unsettled:  # a crash left them; applying twice counts once
            await self.store.apply_loads(unsettled)
        routed = self._route_new(queue, records)
        joined = await self._joined(queue, routed)
        for cid, case in joined.items():  # the case's department, whatever the text says
            assert case.department is not None
            routed[cid] = Routed(self.catalogue.departments[case.department], True, 1.0)
        handlers = {
            h
            for cid, msgs in queue.items()
            for department in self._departments(records.get(cid), msgs, routed.get(cid))
            for h in self.rules.candidates(department)
        }
        loads = dict(await self.store.loads(handlers))
        now = self.clock()
        found = await self._cases(queue, routed, now)
        for cid, case in joined.items():
            chosen = Link(
                LinkedTo(
                    complaint_id=case.complaint_id,
                    receipt_number=case.receipt_number,
                    similarity=1.0,
                ),
                case.handler,
            )
            found[cid] = replace(found.get(cid, _Found(None, ())), repeated_of=None, link=chosen)
        related = await self._related(queue, records)
        outcomes: dict[str, _Outcome] = {}
        for cid, msgs in queue.items():
            mine = found.get(cid)
            if mine is not None and mine.link is not None and mine.link.to.complaint_id in outcomes:
                # a case filed earlier in this batch: its handler was chosen just now
                decided = outcomes[mine.link.to.complaint_id].after
                handler = decided.handler if decided is not None else None
                mine = replace(mine, link=replace(mine.link, handler=handler))
            outcomes[cid] = self._decide(
                records.get(cid), msgs, routed.get(cid), loads, now, mine, related
            )
        written = [(cid, w) for cid, o in outcomes.items() if (w := o.write()) is not None]
        staged = [cid for cid, _ in written]
        for cid in staged:
            self._staging[cid] = self._staging.get(cid, 0) + 1
        try:
            applied = await self.store.write_many([w for _, w in written])
            lost = {cid for (cid, _), ok in zip(written, applied, strict=True) if not ok}
            await self.store.apply_loads(
                [
                    d
                    for (cid, w), ok in zip(written, applied, strict=True)
                    if ok
                    for d in w.after.load_deltas
                ]
            )
            done = {cid: o for cid, o in outcomes.items() if cid not in lost}
            for outcome in done.values():
                for transfer in outcome.transfers:
                    await self.store.record_transfer(transfer)
            await self._publish(done)
        finally:
            for cid in staged:
                self._staging[cid] -= 1
                if self._staging[cid] <= 0:
                    del self._staging[cid]
        return {cid: queue[cid] for cid in lost}

    def _left_to_a_batch(self, record: RoutingRecord) -> bool:
        """A batch of this process is still publishing what ``record`` holds."""
        return self._staging.get(record.complaint_id, 0) > 0

    def _route_new(
        self, queue: Mapping[str, list[Message]], records: Mapping[str, RoutingRecord]
    ) -> dict[str, Routed]:
        """Where each new complaint of the batch goes: the classifier reads all the texts
        that need it in one call."""
        filings = {
            cid: filed
            for cid, msgs in queue.items()
            if cid not in records
            for filed in msgs[:1]
            if isinstance(filed, ComplaintFiled)
        }
        routed: dict[str, Routed] = {}
        unread: list[tuple[str, str]] = []
        for cid, filed in filings.items():
            dept = (
                self.catalogue.by_service_code(filed.service_code) if filed.service_code else None
            )
            if dept is not None:
                routed[cid] = Routed(dept, auto=True, confidence=1.0)
            else:
                unread.append((cid, text_of(filed)))
        if unread:
            predictions = self.classifier.predict_many([text for _, text in unread])
            for (cid, _), p in zip(unread, predictions, strict=True):
                routed[cid] = Routed(
                    self.catalogue.departments[p.department],
                    auto=p.auto,
                    confidence=p.confidence,
                    model_version=p.model_version,
                )
        return routed

    async def _joined(
        self, queue: Mapping[str, list[Message]], routed: Mapping[str, Routed]
    ) -> dict[str, RoutingRecord]:
        """The open cases the batch's new complaints chose to join (``joins``, from '이미
        접수된 민원이 있어요'), in one read. A case no longer open, itself linked or marked
        repeated, or unknown is not joined: the complaint is routed as any other."""
        wanted = {
            cid: filed.joins
            for cid in routed
            for filed in queue[cid][:1]
            if isinstance(filed, ComplaintFiled) and filed.joins and filed.joins != cid
        }
        if not wanted:
            return {}
        cases = await self.store.get_many(set(wanted.values()))
        joined = {}
        for cid, case_id in wanted.items():
            case = cases.get(case_id)
            if (
                case is not None
                and case.department is not None
                and case.state in OPEN_STATES
                and case.linked_to is None
                and case.repeated_of is None
            ):
                joined[cid] = case
            else:
                with bound(complaint_id=cid):
                    log.info("the case chosen to join is not an open case; routed alone")
        return joined

    async def _cases(
        self, queue: Mapping[str, list[Message]], routed: Mapping[str, Routed], now: datetime
    ) -> dict[str, _Found]:
        """For the batch's new complaints: one indexed read of the stored complaints they
        may repeat or join (bounded: see ``routing.cases``), then a pure match each."""
        if self.cases is None or not routed:
            return {}
        filings: dict[str, Filing] = {}
        for cid, dept in routed.items():
            filed = queue[cid][0]
            assert isinstance(filed, ComplaintFiled)
            coordinates = filed.location.coordinates
            filings[cid] = Filing(
                complaint_id=cid,
                department=dept.department.code,
                area=filed.location.dong,
                service_code=filed.service_code,
                resident_key=resident_key(
                    phone=filed.resident.phone,
                    resident_token_hash=filed.resident_token_hash,
                    phone_key=self.cases.phone_key,
                ),
                terms=terms_of(text_of(filed), self.cases.tokenize),
                address=filed.location.address,
                lat=coordinates.lat if coordinates else None,
                lon=coordinates.lon if coordinates else None,
            )
        policy = self.cases.matcher.policy
        lookup = CaseLookup(
            repeat_keys=frozenset(
                f"{f.resident_key}|{f.department}" for f in filings.values() if f.resident_key
            ),
            repeat_since=now - policy.repeat_window,
            case_keys=frozenset(f"{f.department}|{f.area}" for f in filings.values() if f.area),
            case_since=now - policy.duplicate_window,
        )
        candidates = await self.store.case_candidates(lookup, policy.max_candidates)
        found: dict[str, _Found] = {}
        pending: list[Pending] = []  # this batch's new cases, for its later duplicates
        for cid in (c for c in queue if c in filings):  # in the order they came
            filing = filings[cid]
            repeated = self.cases.matcher.repeated_of(filing, candidates, now)
            link = None if repeated else self.cases.matcher.linked_to(filing, candidates, now)
            if repeated is None and link is None:
                link = self.cases.matcher.linked_to(filing, pending, now)
                if link is None:
                    filed = queue[cid][0]
                    assert isinstance(filed, ComplaintFiled)
                    pending.append(Pending.of(filing, filed.receipt_number, now))
            found[cid] = _Found(filing.resident_key, filing.terms, repeated, link)
        return found

    async def _related(
        self, queue: Mapping[str, list[Message]], records: Mapping[str, RoutingRecord]
    ) -> dict[str, RoutingRecord]:
        """The earlier complaints the batch's repeat commands are guarded by, in one read."""
        wanted = {
            mark.complaint_id
            for cid, msgs in queue.items()
            if any(isinstance(m, ConcludeRepeated | DismissRepeated) for m in msgs)
            and (record := records.get(cid)) is not None
            and (mark := record.repeated_of) is not None
        }
        return await self.store.get_many(wanted) if wanted else {}

    @staticmethod
    def _departments(
        record: RoutingRecord | None, messages: Sequence[Message], routed: Routed | None
    ) -> set[str | None]:
        """Every department whose handlers a decision on these messages may choose from:
        none for the commands that keep the handler, so their batch reads no loads."""
        found: set[str | None] = set()
        if routed is not None:
            found.add(routed.department.code)
        for message in messages:
            if isinstance(message, TransferComplaint):
                found.add(message.to_department)
            elif (
                isinstance(message, ReassignHandler | ReopenComplaint | CorrectComplaint)
                and record is not None
            ):
                found.add(record.department)
        return found

    def _decide(
        self,
        record: RoutingRecord | None,
        messages: Sequence[Message],
        routed: Routed | None,
        loads: dict[str, Load],
        now: datetime,
        found: _Found | None = None,
        related: Mapping[str, RoutingRecord] | None = None,
    ) -> _Outcome:
        """One complaint's messages in order, in memory; ``loads`` follows each choice, so
        the next complaint of the batch sees the handler this one was given."""
        outcome = _Outcome(before=record)
        current = record
        for message in messages:
            facts = Facts(now=now, loads=loads, routed=routed, related=related or {})
            if found is not None and isinstance(message, ComplaintFiled):
                facts = replace(
                    facts,
                    resident_key=found.resident_key,
                    terms=found.terms,
                    repeated_of=found.repeated_of,
                    link=found.link,
                )
            decision = self.rules.decide(current, message, facts)
            if decision.ignored:
                continue
            if decision.duplicate:
                self.on_duplicate(
                    topics.FILED
                    if isinstance(message, ComplaintFiled)
                    else topics.LIFECYCLE
                    if isinstance(message, Follow)
                    else topics.COMMANDS
                )
                outcome.flush = True
                continue
            if decision.rejection is not None:
                outcome.rejections.append(decision.rejection)
                continue
            for delta in load_deltas("", held(current), held(decision.complaint)):
                loads[delta.handler_id] = loads.get(delta.handler_id, Load()).plus(delta)
            if current is None:
                outcome.routed = routed
            current = decision.complaint
            outcome.events.extend(decision.events)
            outcome.caused_by.append(message.event_id)
            if decision.transfer is not None:
                outcome.transfers.append(decision.transfer)
        outcome.after = current
        return outcome

    async def _publish(self, outcomes: Mapping[str, _Outcome]) -> None:
        """Every complaint's events at once, each complaint's in order; then one outbox
        clear for them all."""
        lifecycle: dict[str, list[ComplaintStatusChanged]] = {}
        for cid, outcome in outcomes.items():
            pending = list(outcome.before.outbox) if outcome.flush and outcome.before else []
            if pending or outcome.events:
                lifecycle[cid] = pending + outcome.events
            if outcome.routed is not None:
                dept = outcome.routed.department
                self.metrics.routed.labels(dept.code, str(outcome.routed.auto).lower()).inc()
                with bound(complaint_id=cid):
                    log.info(
                        "complaint routed",
                        extra={"department": dept.code, "auto": outcome.routed.auto},
                    )
            for rejection in outcome.rejections:
                self.metrics.rejected.labels(rejection.code).inc()
                with bound(complaint_id=cid):
                    log.info(
                        "command rejected",
                        extra={"action": rejection.action, "code": rejection.code},
                    )

        async def in_order(events: Sequence[ComplaintStatusChanged]) -> None:
            for event in events:
                await self.publish(topics.LIFECYCLE, event, event.caused_by)
                self.metrics.transitions.labels(event.trigger, event.to_state.value).inc()

        rejections = [r for o in outcomes.values() for r in o.rejections]
        await asyncio.gather(
            *(in_order(events) for events in lifecycle.values()),
            *(self.publish(topics.REJECTIONS, r, r.command_id) for r in rejections),
        )
        await self.follow_cases([e for events in lifecycle.values() for e in events])
        await self.store.clear_outboxes(
            [
                Cleared(
                    cid,
                    tuple(e.event_id for e in events),
                    max(e.sequence for e in events),
                    tuple(events),
                )
                for cid, events in lifecycle.items()
            ]
        )

    # -- deadlines --------------------------------------------------------------------

    async def scan_deadlines(self) -> int:
        """Publish every threshold crossed since the last scan; exactly once per clock.

        Only complaints whose next threshold has come are read (an indexed query on
        ``next_alert_at``). The alert's id is derived from its key, and the key is recorded
        after the publish: a crash in between repeats the publish with the same id (a
        duplicate downstream), never loses it.
        """
        now = self.clock()
        published = 0
        for _ in range(MAX_ROUNDS):  # more than a page due, or complaints moved meanwhile
            due = await self.store.alerts_due(now)
            if not due:
                break
            sent = await asyncio.gather(*(self._alert(record, now) for record in due))
            published += sum(sent)
        return published

    async def _alert(self, record: RoutingRecord, now: datetime) -> int:
        received, due = record.received_at, record.due_at
        alerts = (
            crossed(
                now=now,
                received_at=received,
                due_at=due,
                calendar=self.calendar,
                sent=record.sla_sent,
            )
            if received is not None and due is not None
            else []
        )
        dept = self.catalogue.departments.get(record.department or "")
        for alert in alerts:
            event = ComplaintDeadlineAlert(
                event_id=str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"sotong:sla:{record.complaint_id}:{alert.key}")
                ),
                complaint_id=record.complaint_id,
                receipt_number=record.receipt_number,
                kind=alert.kind,
                state=record.state,
                department=record.department,
                department_name=record.department_name,
                handler=record.handler,
                supervisor=dept.supervisor if dept else None,
                received_at=received,
                due_at=due,
                occurred_at=now,
            )
            await self.publish(topics.SLA, event)
            self.metrics.sla_alerts.labels(alert.kind.value, record.department or "none").inc()
        keys = [a.key for a in alerts]
        marked = record.model_copy(update={"sla_sent": (*record.sla_sent, *keys)})
        upcoming = self.rules.next_alert_at(marked)
        if upcoming is not None and upcoming <= now:  # not crossed yet by a hair: look again later
            upcoming = now + timedelta(seconds=1)
        await self.store.mark_alerts(record, keys, upcoming)
        return len(alerts)

    async def schedule_unscheduled(self) -> int:
        """Give running clocks stored before ``next_alert_at`` was kept their next time."""
        scheduled = 0
        while batch := await self.store.unscheduled():
            times = [(r, self.rules.next_alert_at(r)) for r in batch]
            await self.store.schedule(times)
            scheduled += len(batch)
            if all(t is None for _, t in times):
                break
        return scheduled

    async def deadlines_forever(self, interval: float) -> None:
        while True:
            try:
                await self.scan_deadlines()
            except Exception:
                log.exception("deadline scan failed; will try again")
            await asyncio.sleep(interval)

    # -- publishing -------------------------------------------------------------------

    async def follow_cases(self, published: Sequence[ComplaintStatusChanged]) -> None:
        """The complaints linked to a case make its moves too (중복민원): one indexed read
        of them, when a case moved in a way they follow. Done before the case's outbox is
        cleared, so a crash in between does it again (the follows are duplicates then)."""
        moved = {e.complaint_id: e for e in published if follows(e)}
        if not moved:
            return
        linked = await self.store.linked_to_cases(moved.keys())
        todo: list[Message] = [
            Follow(record.complaint_id, event)
            for record in linked
            if record.linked_to is not None
            for event in published
            if follows(event) and event.complaint_id == record.linked_to.complaint_id
        ]
        if todo:
            await self.handle(todo)

    async def _publish_events(
        self,
        complaint_id: str,
        events: Sequence[ComplaintStatusChanged],
        correlation_id: str | None,
    ) -> None:
        for event in events:
            await self.publish(topics.LIFECYCLE, event, correlation_id)
            self.metrics.transitions.labels(event.trigger, event.to_state.value).inc()
        await self.follow_cases(events)
        await self.store.clear_outbox(
            complaint_id, [e.event_id for e in events], max(e.sequence for e in events)
        )

    async def flush(self, record: RoutingRecord) -> None:
        """Publish what a crash left in a complaint's outbox (same ids: duplicates downstream)."""
        pending = record.outbox
        if pending:
            await self._publish_events(record.complaint_id, pending, pending[0].caused_by)

    def _staged_before(self, grace: float) -> datetime | None:
        """What the relay may take: what was staged more than ``grace`` seconds ago. A
        batch publishes and settles what it staged itself; taking it meanwhile would only
        do the batch's work twice, and under load (when batches are slow) the relay would
        double the work exactly when there is least to spare. What a batch of this
        process is still working on is left to it whatever its age (``_staging``); the
        grace is for batches of other processes, which may have died."""
        return self.clock() - timedelta(seconds=grace) if grace > 0 else None

    async def settle_loads(self, grace: float = 0.0) -> int:
        """Apply the load deltas a crash left staged (applying twice counts once)."""
        pending = await self.store.pending_loads(staged_before=self._staged_before(grace))
        pending = [r for r in pending if not self._left_to_a_batch(r)]
        if pending:
            await self.store.apply_loads([d for r in pending for d in r.load_deltas])
            await self.store.settle_loads(pending)
        return len(pending)

    async def settle_loads_forever(self, interval: float, grace: float = 0.0) -> None:
        """The first pass takes everything (a predecessor's crash); later ones only what
        no batch can still be working on."""
        first = True
        while True:
            try:
                await self.settle_loads(0.0 if first else grace)
                first = False
            except Exception:
                log.exception("settling handler loads failed; will try again")
            await asyncio.sleep(interval)

    async def published_since(
        self, since: datetime
    ) -> AsyncIterator[tuple[str, KeyedEvent, str | None]]:
        """What a replay publishes again (``services.replay``): the lifecycle events kept."""
        async for event in self.store.published_since(since):
            yield topics.LIFECYCLE, event, event.caused_by

    async def relay_forever(
        self, interval: float, replayer: Replayer | None = None, grace: float = 0.0
    ) -> None:
        """Check the broker is the one last published to (a replay if not), then publish
        what a crash left in outboxes; every ``interval`` seconds. The first pass takes
        every pending outbox, later ones only those staged more than ``grace`` seconds ago
        (see :meth:`_staged_before`)."""
        first = True
        try:
            while True:
                try:
                    if replayer is not None:
                        await replayer.check()
                    staged_before = None if first else self._staged_before(grace)
                    for record in await self.store.pending_outboxes(staged_before=staged_before):
                        if not self._left_to_a_batch(record):
                            await self.flush(record)
                    first = False
                except Exception:
                    log.exception("outbox relay failed; will try again")
                await asyncio.sleep(interval)
        finally:
            if replayer is not None:
                await replayer.close()


@dataclass(kw_only=True)
class Consumer:
    """One batch subscriber: parse each record, dead-letter the invalid ones alone, and
    hand the rest to :meth:`Routing.handle` in the order they came."""

    routing: Routing
    adapter: TypeAdapter[Any]
    dead_letter: PublishDeadLetter
    batch_records: Histogram
    verifier: CommandVerifier | None = None
    """Commands only: without a valid signature from intake a command is dead-lettered."""
    _parser: AioKafkaParser = field(
        init=False,
        repr=False,
        default_factory=lambda: AioKafkaParser(msg_class=KafkaStreamMessage, regex=None),
    )

    async def on_batch(self, message: KafkaMessage) -> None:
        await self.handle(records_of(message))

    async def handle(self, records: Sequence[Any]) -> None:
        self.batch_records.observe(len(records))
        messages: list[Message] = []
        for record in records:
            try:
                message = self.adapter.validate_json(record.value or b"")
                if self.verifier is not None and (why := self.verifier.refusal(message)):
                    raise UnverifiedCommand(why)
                messages.append(message)
            except (ValidationError, UnverifiedCommand) as exc:
                key = (
                    record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else None
                )
                with bound(complaint_id=key):
                    await self.dead_letter(await self._parser.parse_message(record), exc, 1)
        if messages:
            await self.routing.handle(messages)


def subscribe(
    runtime: Runtime,
    routing: Routing,
    *,
    max_records: int,
    timeout_ms: int,
    dead_letter: PublishDeadLetter | None = None,
    verifier: CommandVerifier | None = None,
) -> list[Consumer]:
    """Each topic gets its own consumer group, so a slow command never holds up filing."""
    batches = Histogram(
        "sotong_routing_batch_records",
        "Records per consumed batch.",
        ["topic"],
        buckets=BATCH_BUCKETS,
        registry=runtime.registry,
    )
    consumers = []
    for topic, group, adapter in (
        (topics.FILED, "filed", FILED_ADAPTER),
        (topics.COMMANDS, "commands", COMMAND_ADAPTER),
    ):
        consumer = Consumer(
            routing=routing,
            adapter=adapter,
            dead_letter=dead_letter or runtime.dead_letters.dead_letter,
            batch_records=batches.labels(topic),
            verifier=verifier if topic == topics.COMMANDS else None,
        )
        # Registered by call: runtime.subscriber is untyped, and a decorator would erase
        # the handler's type under mypy --strict.
        runtime.subscriber(
            topic,
            group=group,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=timeout_ms,
            decoder=raw_values,
        )(consumer.on_batch)
        consumers.append(consumer)
    return consumers


MAX_TEXTS = 50
"""Texts per classify request: each costs a few milliseconds of the event loop's time."""


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(
        min_length=1,
        max_length=MAX_TEXTS,
        description="What residents wrote, in Korean, one complaint or question each.",
    )


class Classified(BaseModel):
    department: str = Field(
        description="Where routing would send it (the general desk below the confidence threshold)."
    )
    confidence: float = Field(ge=0, le=1, description="The model's probability of its best guess.")
    auto: bool = Field(description="Whether routing would send it without a person's review.")


class ClassifyResponse(BaseModel):
    predictions: list[Classified] = Field(description="One per text, in the order given.")


def routes(classifier: Predicts) -> APIRouter:
    """Classification offered over HTTP (the portal's chatbot handoff and service search,
    ``sotong classify``): nothing outside routing imports the classifier."""
    router = APIRouter()

    @router.post(
        "/v1/classify",
        response_model=ClassifyResponse,
        responses=refusals(415, 422),
        tags=["classification"],
    )
    async def classify(request: ClassifyRequest) -> ClassifyResponse:
        """Which department each text belongs to, as routing would route it now. Texts are
        not stored. On the event loop, as the subscribers classify, so the tokenizer is
        never used from two threads."""
        for n, text in enumerate(request.texts):
            if not text.strip() or len(text) > 4000:
                raise ApiError(
                    422, "invalid_request", f"texts.{n}: 1 to 4000 characters, not blank"
                )
        predictions = classifier.predict_many(request.texts)
        return ClassifyResponse(
            predictions=[
                Classified(department=p.department, confidence=p.confidence, auto=p.auto)
                for p in predictions
            ]
        )

    return router
