"""What reaches tracker and what it does about it: Kafka batches in, HTTP answers out.

**Kafka.** Records arrive a batch at a time, so tracker keeps up with the broker: one bulk
insert stores the batch and one query reads the histories of the complaints it touched,
whose read models are projected again and replaced, instead of two round trips per event.
Each record is parsed here, not by FastStream, so one invalid record is dead-lettered
alone while the rest of its batch is stored; so is an event that claims a sequence another
event holds. Anything else (the database or the broker unreachable) fails the batch, and
the shared middleware retries it in place: redelivered events are duplicates, and
duplicates change nothing.

**HTTP.** Who may see what:

- a resident, with a complaint's tracking token (``X-Tracking-Token``) or their resident
  token (``X-Resident-Token``), or for the live timeline a stream ticket (``?ticket=``):
  that complaint, the name masked; with the resident token, the list of all their
  complaints. Any failure is the same 404, so an answer never tells
  whether a complaint exists;
- a department, with its key (``X-Api-Key``): its queue, and the complaints it is
  responsible for *now*, with the resident's name, phone and address. Another
  department's complaint is a 404, another department's queue a 403;
- staff, with a staff key (``X-Api-Key``): search over every complaint, and any one
  complaint by id, with no personal data in either. A department's key searches and
  looks up that department's complaints only;
- anyone: the statistics, which are counts and durations and nothing else.
"""

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Query, Request, Security
from fastapi.responses import StreamingResponse
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaMessage as KafkaStreamMessage
from faststream.kafka.parser import AioKafkaParser
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, Field, ValidationError

from schemas import ComplaintState, topics
from schemas.catalogue import catalogue
from schemas.events import utcnow
from schemas.states import OPEN_STATES
from schemas.tokens import hash_token, token_matches
from services.broker import records_of
from services.errors import PermanentError
from services.http import ApiError
from services.keys import API_KEY, ApiKeys
from services.logs import bound
from services.openapi import refusals
from services.runtime import Clock
from tracker.projection import TRACKED_EVENT, ReadModel, TrackedEvent, read_model_of
from tracker.search import SearchQuery, query_terms
from tracker.similar import SimilarComplaints, SimilarPolicy, likely_duplicates
from tracker.sse import (
    StreamTickets,
    StreamTiming,
    TimelineHub,
    last_event_id,
    stream_tickets,
    timeline_stream,
)
from tracker.statistics import Statistics, statistics, suppressed
from tracker.store import Appended, TrackerStore
from tracker.view import (
    ComplaintSummary,
    ComplaintView,
    DepartmentComplaintView,
    DepartmentQueue,
    Page,
    SearchResults,
    StaffComplaintView,
    page,
)

log = logging.getLogger("sotong.tracker")

PublishDeadLetter = Callable[[StreamMessage[Any], BaseException, int], Awaitable[None]]
"""Publishes one dead letter: ``DeadLetters.dead_letter`` from the kit, or a fake."""
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)

# -- Kafka ---------------------------------------------------------------------------


class SequenceConflict(PermanentError):
    """A different status change already holds this (complaint, sequence): two histories.

    The stored one stays; this one is dead-lettered so an operator sees the conflict.
    """


def conflict(event: TrackedEvent) -> SequenceConflict:
    sequence = getattr(event, "sequence", None)
    return SequenceConflict(f"sequence {sequence} of this complaint is held by another event")


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stored = Counter(
            "sotong_tracker_events_stored_total",
            "Events stored for the first time, by event type.",
            ["event_type"],
            registry=registry,
        )
        self.refreshed = Counter(
            "sotong_tracker_read_models_refreshed_total",
            "Complaint read models rebuilt from their history (one per complaint per batch).",
            registry=registry,
        )
        self.unfiled = Counter(
            "sotong_tracker_unfiled_complaints_total",
            "Complaints a batch had events for but no filing stored, so no read model "
            "(one per complaint per batch): an id intake never issued, or a filing still "
            "on its way.",
            registry=registry,
        )
        self.commands_passed = Counter(
            "sotong_tracker_commands_passed_total",
            "Commands tracker read and does not keep (all but corrections): routing reports "
            "their outcome on complaint.lifecycle and complaint.rejections.",
            registry=registry,
        )
        self.batch_records = Histogram(
            "sotong_tracker_batch_records",
            "Records per consumed batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )


def _tracked_command(value: bytes | None) -> bool:
    """Whether a record on ``complaint.commands`` is one tracker keeps (a valid correction).
    Anything else is passed over, counted: routing owns that topic and dead-letters what
    it cannot process, so a second dead letter from tracker would only repeat it."""
    try:
        action = json.loads(value or b"").get("action")
    except (ValueError, AttributeError):
        return False
    if action not in topics.TRACKED_COMMANDS:
        return False
    try:
        TRACKED_EVENT.validate_json(value or b"")
    except ValidationError:
        return False
    return True


async def refresh(store: TrackerStore, complaint_ids: Collection[str]) -> int:
    """Project these complaints' read models from their whole histories and replace them
    (conditionally: see ``replace_read_models``); how many were written.

    A complaint whose filing is not stored gets none (see ``read_model_of``): its events
    wait in the log, and the batch that stores the filing projects them all.
    """
    if not complaint_ids:
        return 0
    histories = await store.histories(complaint_ids)
    models = [model for events in histories.values() if (model := read_model_of(events))]
    await store.replace_read_models(models)
    return len(models)


@dataclass(kw_only=True)
class Ingest:
    """The batch subscriber's work: parse, store once, refresh the read models."""

    service: str
    store: TrackerStore
    dead_letter: PublishDeadLetter
    duplicates: Counter
    metrics: IngestMetrics
    clock: Clock = utcnow
    _parser: AioKafkaParser = field(
        init=False,
        repr=False,
        default_factory=lambda: AioKafkaParser(msg_class=KafkaStreamMessage, regex=None),
    )

    async def on_batch(self, message: KafkaMessage) -> None:
        """The subscriber: a batch of raw records (see :func:`raw_values`)."""
        await self.handle(records_of(message))

    async def handle(self, records: Sequence[Any]) -> None:
        """Store a batch of records and refresh the read models of the complaints it names.

        A duplicate still refreshes its complaint: the earlier delivery may have stored
        the event and then died before the read model was written.
        """
        self.metrics.batch_records.observe(len(records))
        parsed: list[tuple[TrackedEvent, Any]] = []
        for record in records:
            # topics may carry a prefix (SOTONG_KAFKA_TOPIC_PREFIX) before their name
            if record.topic.endswith(topics.COMMANDS) and not _tracked_command(record.value):
                self.metrics.commands_passed.inc()
                continue
            try:
                parsed.append((TRACKED_EVENT.validate_json(record.value or b""), record))
            except ValidationError as exc:
                await self._reject(record, exc)
        outcomes = await self.store.append_many(
            [event for event, _ in parsed], stored_at=self.clock()
        )
        touched: set[str] = set()
        for (event, record), outcome in zip(parsed, outcomes, strict=True):
            if outcome is Appended.CONFLICT:
                await self._reject(record, conflict(event))
                continue
            touched.add(event.complaint_id)
            if outcome is Appended.STORED:
                self.metrics.stored.labels(event.event_type).inc()
            else:
                self.duplicates.labels(self.service, record.topic).inc()
                with bound(complaint_id=event.complaint_id):
                    log.info("duplicate event", extra={"event_id": event.event_id})
        written = await refresh(self.store, touched)
        self.metrics.refreshed.inc(written)
        self.metrics.unfiled.inc(len(touched) - written)

    async def _reject(self, record: Any, exc: BaseException) -> None:
        """Dead-letter one record, with the reason and its original bytes and headers."""
        key = record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else None
        with bound(complaint_id=key):
            await self.dead_letter(await self._parser.parse_message(record), exc, 1)


# -- HTTP ----------------------------------------------------------------------------

KST = ZoneInfo("Asia/Seoul")

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=10_000, description="Items to skip.")]
ApiKey = Annotated[str | None, Security(API_KEY)]
"""``X-Api-Key``: a department's or a staff key, declared as the ``ApiKey`` security scheme."""
ResidentToken = Annotated[
    str | None,
    Header(alias="X-Resident-Token", description="The resident token given at filing."),
]
StreamTicketQuery = Annotated[
    str | None,
    Query(
        alias="ticket",
        description="A stream ticket from `POST /v1/complaints/{complaint_id}/stream-ticket`, "
        "for a browser's EventSource (which cannot send headers): it opens this complaint's "
        "stream for a minute after it was issued, and no other.",
    ),
]
TrackingTokenHeader = Annotated[
    str | None,
    Header(alias="X-Tracking-Token", description="The complaint's tracking token from filing."),
]
From = Annotated[
    datetime | None,
    Query(alias="from", description="Filed at or after (ISO 8601; without offset: KST)."),
]
To = Annotated[
    datetime | None, Query(alias="to", description="Filed before (ISO 8601; without offset: KST).")
]

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "Unknown, or not yours: the same answer either way."}}
UNAUTHORISED: Responses = {401: {"description": "No valid key."}}
FORBIDDEN: Responses = {403: {"description": "The key does not act for this department."}}


def not_found() -> ApiError:
    return ApiError(404, "not_found", "No complaint matches this id and tracking token.")


class StreamTicket(BaseModel):
    """What opens one complaint's live timeline from a browser, for a short while."""

    ticket: str = Field(description="Pass as `?ticket=` to the stream; opaque.")
    expires_at: datetime = Field(description="After this the stream refuses it (404).")
    stream: str = Field(description="The stream's path, ticket included.")


@dataclass(frozen=True)
class StreamCaps:
    """Live timelines open at once: on one complaint, and in all."""

    per_complaint: int = 8
    total: int = 2000


@dataclass(frozen=True)
class StatsLimits:
    """How much statistics show: the smallest cell, the default and the longest period."""

    min_cell: int = 5
    default_days: int = 30
    max_days: int = 366


def unauthorised() -> ApiError:
    return ApiError(401, "unauthorized", "A valid X-Api-Key header is required.")


def forbidden() -> ApiError:
    return ApiError(403, "forbidden", "This key does not act for that department.")


def aware(moment: datetime | None) -> datetime | None:
    """Officials think in Korean time: a time without an offset is KST."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=KST)


def residents_own(model: ReadModel | None, token: str | None, resident_token: str | None) -> bool:
    if model is None:
        return False
    residents = [model.resident_token_hash, *model.bound_resident_hashes]
    return token_matches(token, model.tracking_token_hash) or any(
        token_matches(resident_token, h) for h in residents
    )


def build_router(
    *,
    store: TrackerStore,
    departments: ApiKeys,
    staff: ApiKeys,
    timing: StreamTiming,
    streams: Gauge,
    limits: StatsLimits | None = None,
    hub: TimelineHub | None = None,
    stream_caps: StreamCaps | None = None,
    tickets: StreamTickets | None = None,
) -> APIRouter:
    limits = limits or StatsLimits()
    tickets = tickets or stream_tickets(None, lifetime=timedelta(seconds=60), clock=utcnow)
    hub = hub or TimelineHub(store.timeline, poll_seconds=timing.poll_seconds)
    caps = stream_caps or StreamCaps()
    router = APIRouter()

    def department_of(key: str | None, code: str) -> str:
        department = departments.department(key)
        if department is None:
            raise unauthorised()
        if department != code:
            raise forbidden()
        return department

    # -- residents ----------------------------------------------------------------------

    @router.get(
        "/v1/complaints/{complaint_id}",
        response_model=ComplaintView,
        responses=NOT_FOUND,
        tags=["resident"],
    )
    async def get_complaint(
        complaint_id: str,
        x_tracking_token: TrackingTokenHeader = None,
        x_resident_token: ResidentToken = None,
    ) -> ComplaintView:
        """A complaint as its resident may see it: with its tracking token, or with the
        resident token of whoever filed it."""
        model = await store.read_model(complaint_id)
        if model is None or not residents_own(model, x_tracking_token, x_resident_token):
            raise not_found()
        return ComplaintView.model_validate(model, from_attributes=True)

    @router.post(
        "/v1/complaints/{complaint_id}/stream-ticket",
        response_model=StreamTicket,
        status_code=201,
        responses=NOT_FOUND,
        tags=["resident"],
    )
    async def stream_ticket(
        complaint_id: str,
        x_tracking_token: TrackingTokenHeader = None,
        x_resident_token: ResidentToken = None,
    ) -> StreamTicket:
        """A ticket with which a browser's EventSource opens this complaint's live timeline
        (`GET …/events?ticket=`), proven by the tracking token or the resident token in a
        header. It lasts a minute (`SOTONG_TRACKER_STREAM_TICKET_SECONDS`): ask for a new
        one each time the page opens the stream, after `event: end` or an error too."""
        model = await store.read_model(complaint_id)
        if model is None or not residents_own(model, x_tracking_token, x_resident_token):
            raise not_found()
        ticket, expires_at = tickets.issue(complaint_id)
        return StreamTicket(
            ticket=ticket,
            expires_at=expires_at,
            stream=f"/v1/complaints/{complaint_id}/events?ticket={ticket}",
        )

    @router.get(
        "/v1/complaints/{complaint_id}/events",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "Server-Sent Events: `event: timeline`, `id:` the sequence, "
                "`data:` a TimelineEntry as JSON; first every stored entry, then each new "
                "one. Comment lines keep the connection alive.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **NOT_FOUND,
        },
        tags=["resident"],
    )
    async def stream_timeline(
        complaint_id: str,
        request: Request,
        x_tracking_token: TrackingTokenHeader = None,
        ticket: StreamTicketQuery = None,
        x_resident_token: ResidentToken = None,
        last_event: Annotated[
            str | None,
            Header(alias="Last-Event-ID", description="Resume after this sequence."),
        ] = None,
    ) -> StreamingResponse:
        """The complaint's timeline, live. A browser's EventSource cannot send headers, so
        it passes a ticket (`POST …/stream-ticket`) as `?ticket=`; other clients send the
        tracking or resident token in a header. A wrong, expired or other complaint's
        ticket is the same 404 as a wrong token."""
        model = await store.read_model(complaint_id)
        admitted = tickets.admits(ticket, complaint_id) or residents_own(
            model, x_tracking_token, x_resident_token
        )
        if model is None or not admitted:
            raise not_found()
        if hub.followers(complaint_id) >= caps.per_complaint:
            raise ApiError(
                429,
                "too_many_streams",
                f"At most {caps.per_complaint} live timelines of one complaint at once.",
                headers={"Retry-After": "30"},
            )
        if hub.total() >= caps.total:
            raise ApiError(
                503, "busy", "Too many live timelines open; try again shortly.",
                headers={"Retry-After": "30"},
            )  # fmt: skip

        async def events() -> AsyncIterator[str]:
            streams.inc()
            try:
                async with hub.follow(complaint_id) as latest:
                    async for chunk in timeline_stream(
                        latest,
                        timing=timing,
                        after=last_event_id(last_event),
                        disconnected=request.is_disconnected,
                    ):
                        yield chunk
            finally:
                streams.dec()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            # no-store, as every resident answer: no-cache would still let a cache keep it
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get(
        "/v1/residents/me/complaints",
        response_model=Page[ComplaintSummary],
        responses={401: {"description": "No X-Resident-Token header."}},
        tags=["resident"],
    )
    async def my_complaints(
        x_resident_token: ResidentToken = None, limit: Limit = 20, offset: Offset = 0
    ) -> Page[ComplaintSummary]:
        """Every complaint filed with this resident token, newest first. A token nobody
        was given has no complaints."""
        if not x_resident_token:
            raise ApiError(
                401, "resident_token_required", "The X-Resident-Token header is required."
            )
        items, total = await store.resident_complaints(
            hash_token(x_resident_token), limit=limit, offset=offset
        )
        return Page[ComplaintSummary](**page(items, total, limit=limit, offset=offset))

    # -- departments --------------------------------------------------------------------

    @router.get(
        "/v1/departments/{code}/queue",
        response_model=DepartmentQueue,
        responses={**UNAUTHORISED, **FORBIDDEN},
        tags=["department"],
    )
    async def department_queue(
        code: str,
        x_api_key: ApiKey = None,
        state: Annotated[
            list[ComplaintState] | None, Query(description="Only these open states.")
        ] = None,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> DepartmentQueue:
        """The department's open complaints: overdue first, then by due time. No
        personal data: open a complaint for the resident's contact."""
        department = department_of(x_api_key, code)
        wanted = set(state or [])
        if wanted - OPEN_STATES:
            raise ApiError(422, "invalid_request", "state: the queue holds open states only")
        items, total = await store.queue(department, wanted, limit=limit, offset=offset)
        return DepartmentQueue(
            department=department,
            counts=await store.queue_counts(department),
            **page(items, total, limit=limit, offset=offset),
        )

    @router.get(
        "/v1/departments/{code}/complaints/{complaint_id}",
        response_model=DepartmentComplaintView,
        responses={**UNAUTHORISED, **FORBIDDEN, **NOT_FOUND},
        tags=["department"],
    )
    async def department_complaint(
        code: str, complaint_id: str, x_api_key: ApiKey = None
    ) -> DepartmentComplaintView:
        """A complaint the department is responsible for now, with the resident's name,
        phone and address. Transferred away, it is no longer theirs to see."""
        department = department_of(x_api_key, code)
        model = await store.read_model(complaint_id)
        if model is None or model.department != department:
            raise ApiError(404, "not_found", "No complaint of this department has this id.")
        return DepartmentComplaintView.model_validate(model, from_attributes=True)

    # -- staff and ops ------------------------------------------------------------------

    @router.get(
        "/v1/search",
        response_model=SearchResults,
        responses={**UNAUTHORISED, **FORBIDDEN},
        tags=["staff"],
    )
    async def search(
        x_api_key: ApiKey = None,
        q: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=200,
                description="Korean free text; every content word must appear in the "
                "title or body (버릴라면 finds 버리다).",
            ),
        ] = None,
        state: ComplaintState | None = None,
        department: str | None = None,
        dong: Annotated[str | None, Query(description="행정동, e.g. 청라1동.")] = None,
        service_code: Annotated[
            str | None, Query(description="The service code filed with.")
        ] = None,
        receipt_number: Annotated[
            str | None, Query(description="접수번호, e.g. 261202-004211.")
        ] = None,
        filed_from: From = None,
        filed_to: To = None,
        overdue: bool | None = None,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> SearchResults:
        """Newest first. Never carries a resident's name, phone or address."""
        if staff.department(x_api_key) is None:
            own = departments.department(x_api_key)
            if own is None:
                raise unauthorised()
            if department not in (None, own):
                raise forbidden()
            department = own
        terms = query_terms(q) if q else []
        query = SearchQuery(
            terms=tuple(terms),
            state=state,
            department=department,
            dong=dong,
            service_code=service_code,
            receipt_number=receipt_number,
            filed_from=aware(filed_from),
            filed_to=aware(filed_to),
            overdue=overdue,
        )
        items, total = await store.search(query, limit=limit, offset=offset)
        return SearchResults(terms=terms, **page(items, total, limit=limit, offset=offset))

    @router.get(
        "/v1/staff/complaints/{complaint_id}",
        response_model=StaffComplaintView,
        responses={
            **UNAUTHORISED,
            404: {"description": "No complaint this key may see has this id."},
        },
        tags=["staff"],
    )
    async def staff_complaint(complaint_id: str, x_api_key: ApiKey = None) -> StaffComplaintView:
        """Where a complaint stands now: state, department, handler, due time. For staff
        and operators who hold only its id (``sotong act`` asks it which department a
        command must come from). The fields of a search hit and nothing more: a staff key
        sees no name, phone or address here either. A department's key sees the
        complaints it is responsible for now; any other is the same 404 as an unknown id."""
        own: str | None = None
        if staff.department(x_api_key) is None:
            own = departments.department(x_api_key)
            if own is None:
                raise unauthorised()
        model = await store.read_model(complaint_id)
        if model is None or own not in (None, model.department):
            raise ApiError(404, "not_found", "No complaint has this id.")
        return StaffComplaintView.model_validate(model, from_attributes=True)

    @router.get(
        "/v1/stats",
        response_model=Statistics,
        responses={**UNAUTHORISED, **refusals(422)},
        tags=["staff"],
    )
    async def stats(
        x_api_key: ApiKey = None,
        department: str | None = None,
        filed_from: From = None,
        filed_to: To = None,
    ) -> Statistics:
        """Counts per state and department, time per stage, deadline, reopen, transfer
        and auto-routing rates, over complaints filed in a period (by default the last
        ``stats_default_days``; at most ``stats_max_days``). For staff keys only; counts
        below ``stats_min_cell`` are withheld (null), and so is every figure derived from
        them, so no cell singles out a resident. Never a complaint or a person."""
        if staff.department(x_api_key) is None:
            raise unauthorised()
        until = aware(filed_to) or utcnow()
        since = aware(filed_from) or until - timedelta(days=limits.default_days)
        if since >= until:
            raise ApiError(422, "invalid_request", "from: must be before to")
        if until - since > timedelta(days=limits.max_days):
            raise ApiError(
                422,
                "invalid_request",
                f"from: the period may cover at most {limits.max_days} days",
            )
        rows = await store.statistics_rows(department=department, filed_from=since, filed_to=until)
        figures = statistics(rows).model_copy(update={"period_from": since, "period_to": until})
        return suppressed(figures, limits.min_cell)

    return router


def similar_routes(
    *,
    store: TrackerStore,
    policy: SimilarPolicy,
    clock: Clock = utcnow,
) -> APIRouter:
    """'이미 접수된 민원이 있어요' (``tracker.similar``): public, bounded and rate-limited
    per caller (the composition root's ``services.ratelimit.RouteLimits``). Registered
    before ``/v1/complaints/{complaint_id}``, whose path would take it."""
    router = APIRouter()

    @router.get(
        "/v1/complaints/similar",
        response_model=SimilarComplaints,
        responses=refusals(422, 429),
        tags=["residents"],
    )
    async def similar(
        dong: Annotated[str, Query(min_length=1, max_length=40, description="행정동.")],
        text: Annotated[
            str, Query(min_length=1, max_length=500, description="What the resident wrote.")
        ],
        department: Annotated[str | None, Query(max_length=64)] = None,
        service_code: Annotated[str | None, Query(max_length=64)] = None,
    ) -> SimilarComplaints:
        """Open complaints at the same 행정동 about the same problem, for a resident about
        to file: the department (or the service code it belongs to), the 행정동 and the text.
        Public summaries only — no text, name, address or receipt number of another
        reporter; ``complaint_id`` lets the resident follow one instead of filing anew."""
        departments = catalogue()
        if service_code is not None:
            owner = departments.by_service_code(service_code)
            if owner is None:
                raise ApiError(422, "invalid_request", "service_code: not a known service code")
            if department is not None and department != owner.code:
                raise ApiError(
                    422, "invalid_request", "department: not the service code's department"
                )
            department = owner.code
        if department is None:
            raise ApiError(422, "invalid_request", "department: give it, or a service_code")
        if department not in departments.by_code:
            raise ApiError(422, "invalid_request", "department: not a known department code")
        terms = query_terms(text)
        rows = await store.open_at(department, dong, limit=policy.max_candidates)
        return SimilarComplaints(
            items=likely_duplicates(
                terms,
                rows,
                policy=policy,
                now=clock(),
                day_of=lambda moment: moment.astimezone(KST).date(),
            )
        )

    return router
