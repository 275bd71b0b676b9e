"""What arrives at intake and what it does: a submission (HTTP or ``complaint.submissions``)
becomes one stored complaint and one ComplaintFiled; a department's or resident's request
becomes one command on ``complaint.commands``.

Read top-down: ``Intake`` (filing, dedup, the outbox and its relay), ``subscribe`` (the
Kafka subscriber), ``routes`` (the HTTP API), ``similar_routes`` (the open cases a filing
may repeat, asked before filing: ``intake.similar``).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Body, Depends, Header, Path, Request, Response, Security
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import Span
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError

from intake.api import (
    CommandAccepted,
    ComplaintId,
    CorrectAction,
    DepartmentCommand,
    FiledResponse,
    FilingRequest,
    ResidentRequest,
    SimilarAnswer,
)
from intake.contacts import Contacts
from intake.filing import file_submission, new_complaint_id, new_receipt_number, new_tracking_token
from intake.idempotency import STATE_KEY, derived_id
from intake.photo_routes import Photos
from intake.similar import OpenCases
from intake.store import RELAY_GRACE, ChannelRef, FiledRecord, Refused, SubmissionStore
from schemas import ComplaintSubmitted, topics
from schemas.commands import COMMAND_ADAPTER, RESIDENT
from schemas.common import Channel
from schemas.events import PhotoRef
from services import telemetry
from services.batching import GroupCommit
from services.broker import KeyedEvent, raw_values, records_of
from services.errors import InvalidMessage, PermanentError, field_errors, is_retryable
from services.http import ApiError
from services.keys import API_KEY, ApiKeys
from services.logs import bound
from services.openapi import refusals
from services.replay import Replayer
from services.runtime import Clock, Publish

log = logging.getLogger("sotong.intake")


class UnknownResidentToken(PermanentError):
    """A resident token intake never issued: refused (422 on HTTP, dead letter on Kafka)."""


class NoFreeReceiptNumber(RuntimeError):
    """Every receipt number drawn for one complaint was taken (a day nearly full)."""


Accepted = tuple[FiledRecord, bool]
"""A filed complaint and whether it had been filed before (a duplicate)."""


@dataclass(frozen=True)
class Arrival:
    submission: ComplaintSubmitted
    redelivery_possible: bool
    span: Span = field(default_factory=telemetry.current_span)  # its request's
    photos: tuple[PhotoRef, ...] = ()
    client: str | None = None
    """The client app whose credential filed it (an Open311 app), if any."""
    contact_unconfirmed: bool = False
    """The phone must be confirmed with a code before the resident is told anything."""


RECEIPT_DRAWS = 8
"""Receipt numbers drawn for one complaint before giving up: a million a day, so a taken
number is rare and eight in a row means something else is wrong."""


class Intake:
    """Filing, shared by the HTTP route and the Kafka subscriber so both validate alike.

    Concurrent filings are group-committed: each caller awaits ``accept`` for its own
    submission, and everything that arrived meanwhile is stored in one bulk insert and
    published together (``file_batch``), so the database sees a handful of commands per
    batch instead of four per complaint. A lone caller is filed at once.
    """

    def __init__(
        self,
        *,
        store: SubmissionStore,
        publish: Publish,
        clock: Clock,
        registry: CollectorRegistry,
        max_batch: int = 256,
    ) -> None:
        self.store = store
        self.publish = publish
        self.clock = clock
        self.batcher: GroupCommit[Arrival, Accepted] = GroupCommit(
            self.file_batch, max_batch=max_batch
        )
        self.filed_total = Counter(
            "sotong_complaints_filed_total",
            "Complaints filed, by channel.",
            ["channel"],
            registry=registry,
        )
        self.duplicates_total = Counter(
            "sotong_submissions_duplicate_total",
            "Re-submissions of an already filed (channel, channel_ref).",
            ["channel"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "sotong_intake_filing_batch_size",
            "Submissions stored and published together by one group commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=registry,
        )

    async def accept(
        self,
        submission: ComplaintSubmitted,
        *,
        redelivery_possible: bool = True,
        photos: Sequence[PhotoRef] = (),
        client: str | None = None,
        contact_unconfirmed: bool = False,
    ) -> Accepted:
        """File a submission once; return (record, duplicate). A submission intake made
        itself from an HTTP request (``redelivery_possible=False``) has an event id nobody
        can have filed before, so it costs no look-up by submission."""
        return await self.batcher.submit(
            Arrival(
                submission,
                redelivery_possible,
                photos=tuple(photos),
                client=client,
                contact_unconfirmed=contact_unconfirmed,
            )
        )

    async def file_batch(self, arrivals: Sequence["Arrival"]) -> list[Accepted | Exception]:
        """File submissions together: one dedup read, one resident check, one bulk insert
        (redrawing only taken receipt numbers), then every publish at once."""
        submissions = [a.submission for a in arrivals]
        self.batch_size.observe(len(submissions))
        now = self.clock()
        results: list[Accepted | Exception | None] = [None] * len(submissions)

        def ref(s: ComplaintSubmitted) -> ChannelRef | None:
            return None if s.channel_ref is None else (s.channel.value, s.channel_ref)

        refs = {r for s in submissions if (r := ref(s)) is not None}
        existing = await self.store.find_by_channel_refs(refs) if refs else {}
        maybe_again = {a.submission.event_id for a in arrivals if a.redelivery_possible}
        redelivered = await self.store.find_by_submissions(maybe_again) if maybe_again else {}
        claimed = {s.resident_token for s in submissions if s.resident_token}
        known = await self.store.known_residents(claimed) if claimed else set()

        fresh: list[tuple[int, ComplaintSubmitted, FiledRecord]] = []
        first_with_ref: dict[ChannelRef, int] = {}
        first_of_submission: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []  # (i, the first in this batch it repeats)
        for i, submission in enumerate(submissions):
            key = ref(submission)
            if submission.event_id in redelivered:
                results[i] = (redelivered[submission.event_id], True)
            elif key is not None and key in existing:
                results[i] = (existing[key], True)
            elif submission.event_id in first_of_submission:
                repeats.append((i, first_of_submission[submission.event_id]))
            elif key is not None and key in first_with_ref:
                repeats.append((i, first_with_ref[key]))
            elif submission.resident_token and submission.resident_token not in known:
                results[i] = UnknownResidentToken("resident_token: not issued by an earlier filing")
            else:
                if key is not None:
                    first_with_ref[key] = i
                first_of_submission[submission.event_id] = i
                record = self._new_record(
                    submission,
                    now,
                    arrivals[i].photos,
                    client=arrivals[i].client,
                    contact_unconfirmed=arrivals[i].contact_unconfirmed,
                )
                fresh.append((i, submission, record))

        if fresh:
            issued = {r.resident_token for _, _, r in fresh if r.resident_token}
            await self.store.remember_residents(issued, now)
        lost: list[tuple[int, ComplaintSubmitted]] = []  # a concurrent filing won
        for _ in range(RECEIPT_DRAWS):
            if not fresh:
                break
            outcomes = await self.store.insert_many([record for _, _, record in fresh])
            redraw = []
            for (i, submission, record), outcome in zip(fresh, outcomes, strict=True):
                if outcome is Refused.RECEIPT:
                    redraw.append((i, submission, self._redrawn(submission, record)))
                elif outcome in (Refused.CHANNEL_REF, Refused.SUBMISSION):
                    lost.append((i, submission))
                else:
                    results[i] = (outcome, False)
            fresh = redraw
        for i, _, _ in fresh:
            results[i] = NoFreeReceiptNumber("no free receipt number after several draws")

        if lost:
            by_ref = await self.store.find_by_channel_refs(
                {key for _, s in lost if (key := ref(s)) is not None}
            )
            by_submission = await self.store.find_by_submissions({s.event_id for _, s in lost})
            for i, submission in lost:
                key = ref(submission)
                winner = by_submission.get(submission.event_id) or (
                    by_ref.get(key) if key is not None else None
                )
                results[i] = (
                    (winner, True)
                    if winner is not None
                    else RuntimeError("a unique key was taken, but no complaint holds it")
                )
        for i, first_index in repeats:
            first = results[first_index]
            results[i] = (first[0], True) if isinstance(first, tuple) else first

        spans = {
            r[0].filed.complaint_id: a.span
            for a, r in zip(arrivals, results, strict=True)
            if isinstance(r, tuple)
        }
        with telemetry.following(spans):  # each filing published in its own request's trace
            await self._publish_unpublished([r for r in results if isinstance(r, tuple)])
        for result in results:
            if isinstance(result, tuple):
                record, duplicate = result
                counter = self.duplicates_total if duplicate else self.filed_total
                counter.labels(record.filed.channel.value).inc()
                if not duplicate:
                    with bound(complaint_id=record.filed.complaint_id):
                        log.info("complaint filed", extra={"channel": record.filed.channel.value})
        assert all(r is not None for r in results), "a submission left without an answer"
        return [r for r in results if r is not None]

    def _new_record(
        self,
        submission: ComplaintSubmitted,
        now: datetime,
        photos: Sequence[PhotoRef] = (),
        *,
        client: str | None = None,
        contact_unconfirmed: bool = False,
    ) -> FiledRecord:
        token = new_tracking_token()
        resident_token = submission.resident_token or new_tracking_token()
        filed = file_submission(
            submission,
            complaint_id=new_complaint_id(),
            receipt_number=new_receipt_number(now),
            tracking_token=token,
            resident_token=resident_token,
            filed_at=now,
            photos=photos,
            channel_client=client,
            contact_unconfirmed=contact_unconfirmed,
        )
        return FiledRecord(
            filed, token, resident_token, published=False, submission_id=submission.event_id
        )

    @staticmethod
    def _redrawn(submission: ComplaintSubmitted, record: FiledRecord) -> FiledRecord:
        filed = record.filed
        number = new_receipt_number(filed.occurred_at)
        return replace(record, filed=filed.model_copy(update={"receipt_number": number}))

    async def _publish_unpublished(self, accepted: Sequence[Accepted]) -> None:
        """Publish every ComplaintFiled not yet published (a duplicate of one a crash left
        unpublished included), all sends in flight at once, then mark them in one write.
        A send that fails is left to the relay: the complaint is stored, so the caller
        hears it was filed and a retry finds it as a duplicate."""
        pending = {
            record.filed.complaint_id: record for record, _ in accepted if not record.published
        }
        if not pending:
            return
        records = list(pending.values())
        sent = await asyncio.gather(
            *(
                self.publish(topics.FILED, r.filed, correlation_id=r.filed.event_id)
                for r in records
            ),
            return_exceptions=True,
        )
        done = [
            r.filed.complaint_id
            for r, outcome in zip(records, sent, strict=True)
            if not isinstance(outcome, BaseException)
        ]
        failed = len(records) - len(done)
        if failed:
            log.warning("ComplaintFiled not published; the relay will", extra={"count": failed})
        await self.store.mark_published_many(done)

    async def _publish(self, record: FiledRecord) -> None:
        await self.publish(topics.FILED, record.filed, correlation_id=record.filed.event_id)
        await self.store.mark_published(record.filed.complaint_id)

    async def relay(self) -> None:
        """Publish what a crash left unpublished (the outbox's other half)."""
        for record in await self.store.unpublished(older_than=self.clock() - RELAY_GRACE):
            with bound(complaint_id=record.filed.complaint_id):
                log.warning("relaying unpublished ComplaintFiled")
                await self._publish(record)

    async def published_since(
        self, since: datetime
    ) -> AsyncIterator[tuple[str, KeyedEvent, str | None]]:
        """What a replay publishes again (``services.replay``): the filings of the window."""
        async for record in self.store.published_since(since):
            yield topics.FILED, record.filed, record.filed.event_id

    async def relay_forever(self, interval: float, replayer: Replayer | None = None) -> None:
        """Relay every ``interval`` seconds, after checking the broker is the one last
        published to (a replay if not); a failed pass is logged and tried again."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    if replayer is not None:
                        await replayer.check()
                    await self.relay()
                except Exception:
                    log.exception("outbox relay failed; will try again")
        finally:
            if replayer is not None:
                await replayer.close()


Handler = Callable[..., Awaitable[None]]


class Subscriber(Protocol):
    """Makes an at-least-once subscriber for a topic: ``Runtime.subscriber``."""

    def __call__(
        self, *topic_names: str, group: str | None = None, **kwargs: object
    ) -> Callable[[Handler], object]: ...


RejectRecords = Callable[[Sequence[tuple[Any, BaseException]]], Awaitable[None]]
"""Dead-letters records of a batch, each with its reason: ``DeadLetters.dead_letter_records``."""


@dataclass(frozen=True)
class SubmissionBatches:
    max_records: int = 200
    timeout_ms: int = 20
    """How long a batch waits to fill: a lone submission waits this long at most."""


@dataclass
class Submissions:
    """``complaint.submissions`` a batch at a time. Each record is parsed on its own; the
    valid ones are filed side by side, so the group commit stores and publishes them
    together (a handful of commands for the batch, not per record); what cannot be filed
    (invalid, an unknown resident token) is dead-lettered alone, the batch's letters
    published side by side. A retryable failure (the database away) fails the whole
    batch, which the kit retries: what was filed is found again by its submission id."""

    intake: Intake
    reject: RejectRecords

    async def on_batch(self, message: KafkaMessage) -> None:
        await self.handle(records_of(message))

    async def handle(self, records: Sequence[Any]) -> None:
        parsed: list[tuple[ComplaintSubmitted, Any]] = []
        failed: list[tuple[Any, BaseException]] = []
        for record in records:
            try:
                submission = ComplaintSubmitted.model_validate_json(record.value or b"")
            except ValidationError as exc:
                failed.append((record, InvalidMessage(exc)))
            else:
                parsed.append((submission, record))
        results = await asyncio.gather(
            *(self.intake.accept(submission) for submission, _ in parsed), return_exceptions=True
        )
        for (_, record), result in zip(parsed, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception) or is_retryable(result):
                    raise result
                failed.append((record, result))
        if failed:
            await self.reject(failed)


def subscribe(
    subscriber: Subscriber,
    intake: Intake,
    *,
    reject: RejectRecords,
    batch: SubmissionBatches | None = None,
) -> Submissions:
    """Channels without HTTP (KakaoTalk, chatbot, call centre bridges) publish submissions
    on Kafka; they are filed exactly as the HTTP route files them (:class:`Submissions`)."""
    batch = batch or SubmissionBatches()
    submissions = Submissions(intake, reject)
    # registered by call: Runtime.subscriber is typed Any (see notifier.handlers)
    subscriber(
        topics.SUBMISSIONS,
        batch=True,
        max_records=batch.max_records,
        batch_timeout_ms=batch.timeout_ms,
        decoder=raw_values,
    )(submissions.on_batch)
    return submissions


def filing_channel(
    submission: FilingRequest, key: str | None, *, channels: ApiKeys, credentialed: frozenset[str]
) -> str | None:
    """The channel whose credential was presented, after checking the filing may be made
    as the channel it names: a channel with a credential is filed as only by its holder, so
    only its own (channel, channel_ref) duplicates are recognised; anyone may file as
    ``web`` without a channel_ref (the Idempotency-Key serves them)."""
    named = submission.channel.value
    if key:
        holder = channels.department(key)
        if holder is None:
            raise ApiError(401, "unauthorized", "X-Api-Key: not a channel credential")
        if holder != named:
            raise ApiError(
                403, "forbidden", f"channel: this credential files as {holder!r}, not {named!r}"
            )
        return holder
    if named in credentialed:
        if named != Channel.WEB.value:
            raise ApiError(401, "unauthorized", f"channel: {named!r} files with its X-Api-Key")
        if submission.channel_ref is not None:
            raise ApiError(
                401,
                "unauthorized",
                "channel_ref: only a channel's own credential may name its references; "
                "send an Idempotency-Key header to retry safely",
            )
    return None


def routes(
    *,
    intake: Intake,
    store: SubmissionStore,
    publish: Publish,
    keys: ApiKeys,
    channels: ApiKeys,
    credentialed: frozenset[str],
    photos: Photos,
    clock: Clock,
    admit_phone: Callable[[str | None], Awaitable[None]] | None = None,
    contacts: Contacts | None = None,
) -> APIRouter:
    """The HTTP API, bound to the collaborators the composition root chose. ``admit_phone``
    counts a filing against its phone number's daily limit (``intake.limits``), raising
    the 429 past it."""
    router = APIRouter()

    @router.post(
        "/v1/complaints",
        status_code=201,
        response_model=FiledResponse,
        response_model_exclude_none=True,
        responses={
            201: {"description": "Filed: a new complaint (`duplicate: false`), with its tokens."},
            200: {
                "model": FiledResponse,
                "description": "Filed before: this (channel, channel_ref) was filed already, "
                "and this is that complaint (`duplicate: true`): its id and receipt number "
                "only, never its tokens.",
            },
            **refusals(401, 403, 409, 422, 429),
        },
        tags=["channels"],
    )
    async def file_complaint(
        request: Annotated[FilingRequest, Body()],
        response: Response,
        http: Request,
        key: Annotated[str | None, Security(API_KEY)] = None,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                description="Retry safely: the same key and body answer what the first did.",
                pattern=r"^[\x20-\x7e]{1,255}$",
            ),
        ] = None,
    ) -> FiledResponse:
        """File a complaint; the same (channel, channel_ref) again answers 200 with the same
        one, and the same Idempotency-Key and body again answer what the first answered."""
        del idempotency_key  # read by the middleware (intake.idempotency); named for the docs
        holder = filing_channel(request, key, channels=channels, credentialed=credentialed)
        if admit_phone is not None:
            await admit_phone(request.resident.phone)
        unconfirmed = contacts is not None and await contacts.needed(
            request.channel, holder, request.resident, request.resident_token
        )
        fields = {**request.model_dump(exclude={"photos"}), "occurred_at": clock()}
        keyed = getattr(http.state, STATE_KEY, None)
        if keyed is not None:  # a retry after a crash finds the first attempt's complaint
            fields["event_id"] = derived_id(keyed, "submission")
        submission = ComplaintSubmitted.model_validate(fields)
        attached = await photos.attach(request.photos, submission.event_id)
        try:
            record, duplicate = await intake.accept(
                submission,
                redelivery_possible=keyed is not None,
                photos=attached,
                contact_unconfirmed=unconfirmed,
            )
        except UnknownResidentToken as exc:
            raise ApiError(422, "invalid_request", str(exc)) from exc
        if duplicate:
            response.status_code = 200
            return FiledResponse(
                complaint_id=record.filed.complaint_id,
                receipt_number=record.filed.receipt_number,
                duplicate=True,
            )
        return FiledResponse(
            complaint_id=record.filed.complaint_id,
            receipt_number=record.filed.receipt_number,
            tracking_token=record.tracking_token,
            resident_token=record.resident_token,
            duplicate=False,
            contact=(
                await contacts.issue(record)
                if contacts is not None and record.filed.contact_unconfirmed
                else None
            ),
        )

    IdempotencyKey = Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retry safely: the same key and body answer what the first did.",
            pattern=r"^[\x20-\x7e]{1,255}$",
        ),
    ]

    async def publish_command(fields: dict[str, Any], http: Request) -> CommandAccepted:
        fields = fields | {"occurred_at": clock()}
        keyed = getattr(http.state, STATE_KEY, None)
        if keyed is not None:  # the same command id on a retry: routing applies it once
            fields["event_id"] = derived_id(keyed, "command")
        try:
            command = COMMAND_ADAPTER.validate_python(fields)
        except ValidationError as exc:
            fields_ = field_errors(exc)
            message = "; ".join(f"{f.field}: {f.reason}" for f in fields_)
            raise ApiError(422, "invalid_request", message) from exc
        await publish(topics.COMMANDS, command, correlation_id=command.event_id)
        return CommandAccepted(
            command_id=command.event_id, complaint_id=command.complaint_id, action=command.action
        )

    async def acting_department(key: Annotated[str | None, Security(API_KEY)] = None) -> str:
        """The department the key belongs to; checked before the body, so a caller without
        a key learns that first."""
        department = keys.department(key)
        if department is None:
            raise ApiError(401, "unauthorized", "a valid X-Api-Key header is required")
        return department

    @router.post(
        "/v1/complaints/{complaint_id}/commands",
        status_code=202,
        response_model=CommandAccepted,
        responses={
            202: {"description": "Accepted: published for routing."},
            **refusals(401, 409, 422, 429),
        },
        tags=["departments"],
    )
    async def send_command(
        complaint_id: Annotated[ComplaintId, Path(description="The complaint's id from filing.")],
        request: Annotated[DepartmentCommand, Body()],
        department: Annotated[str, Depends(acting_department)],
        http: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> CommandAccepted:
        """Publish a department command, acting as the department the API key belongs to.

        What the action needs is checked here (422); whether it is legal now (only the
        responsible department may act, and only from some states) routing decides: a
        refusal appears on ``complaint.rejections`` and in the tracker view.
        """
        del idempotency_key  # read by the middleware (intake.idempotency); named for the docs
        fields = request.model_dump(exclude_none=True)
        return await publish_command(
            fields | {"complaint_id": str(complaint_id), "actor": department}, http
        )

    @router.post(
        "/v1/complaints/{complaint_id}/resident-actions",
        status_code=202,
        response_model=CommandAccepted,
        responses={
            202: {"description": "Accepted: published for routing."},
            **refusals(
                404,
                409,
                422,
                429,
                described={404: "No complaint with this id and tracking token."},
            ),
        },
        tags=["residents"],
    )
    async def resident_action(
        complaint_id: Annotated[ComplaintId, Path(description="The complaint's id from filing.")],
        request: Annotated[ResidentRequest, Body()],
        http: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> CommandAccepted:
        """The resident answers a 보완 요청, withdraws (취하), reopens (재민원), corrects
        (정정: address, 행정동, title, or photos added, before the site check) or rates
        (만족도) a complaint. A correction's photos are attached here, before routing
        hears of it, and travel as references."""
        if not await store.token_matches(str(complaint_id), request.token):
            raise ApiError(404, "not_found", "no such complaint")
        del idempotency_key  # read by the middleware (intake.idempotency); named for the docs
        fields = request.model_dump(exclude_none=True, exclude={"token"})
        if isinstance(request, CorrectAction):
            added = await photos.add(request.photos, str(complaint_id))
            fields["photos"] = [ref.model_dump(mode="json") for ref in added]
        return await publish_command(
            fields | {"complaint_id": str(complaint_id), "actor": RESIDENT}, http
        )

    return router


def similar_routes(
    *, lookup: OpenCases, channels: ApiKeys, credentialed: frozenset[str]
) -> APIRouter:
    """'이미 접수된 민원이 있어요' for any channel (``intake.similar``), limited per end user
    as filings are (``intake.limits``), on a budget of its own."""
    router = APIRouter()

    @router.post(
        "/v1/complaints/similar",
        response_model=SimilarAnswer,
        responses=refusals(401, 403, 422, 429),
        tags=["channels"],
    )
    async def similar(
        request: Annotated[FilingRequest, Body()],
        key: Annotated[str | None, Security(API_KEY)] = None,
    ) -> SimilarAnswer:
        """Before filing: the open complaints this filing may be repeating — the same
        department (from `service_code`), the same 행정동, an alike text, filed recently —
        as public summaries, nothing of their reporters. The body is a filing's, checked as
        a filing is (credential included); nothing is filed or counted against the phone.
        To join one, file the same body with `joins` set to its `complaint_id`; to file
        anyway, file it without."""
        filing_channel(request, key, channels=channels, credentialed=credentialed)
        return await lookup.like(request)

    return router
