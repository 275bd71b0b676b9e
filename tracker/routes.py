"""tracker's HTTP API: residents, departments, staff search and statistics.

Who may see what:

- a resident, with a complaint's tracking token (``?token=``) or their resident token
  (``X-Resident-Token``): that complaint, the name masked; with the resident token, the
  list of all their complaints. Any failure is the same 404, so an answer never tells
  whether a complaint exists;
- a department, with its key (``X-Api-Key``): its queue, and the complaints it is
  responsible for *now*, with the resident's name, phone and address. Another
  department's complaint is a 404, another department's queue a 403;
- staff, with a staff key (``X-Api-Key``): search over every complaint, no personal data
  in the results. A department's key searches that department's complaints only;
- anyone: the statistics, which are counts and durations and nothing else.
"""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from prometheus_client import Gauge

from schemas import ComplaintState
from schemas.states import OPEN_STATES
from schemas.tokens import hash_token, token_matches
from services.http import ApiError
from services.keys import ApiKeys
from tracker.projection import ReadModel
from tracker.search import SearchQuery, query_terms
from tracker.sse import StreamTiming, last_event_id, timeline_stream
from tracker.statistics import Statistics, statistics
from tracker.store import TrackerStore
from tracker.view import (
    ComplaintSummary,
    ComplaintView,
    DepartmentComplaintView,
    DepartmentQueue,
    Page,
    SearchResults,
    department_view,
    page,
    public_view,
    queue_item,
    search_hit,
    summary,
)

KST = ZoneInfo("Asia/Seoul")

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=10_000, description="Items to skip.")]
ApiKey = Annotated[
    str | None, Header(alias="X-Api-Key", description="A department's or a staff key.")
]
ResidentToken = Annotated[
    str | None,
    Header(alias="X-Resident-Token", description="The resident token given at filing."),
]
TrackingToken = Annotated[
    str | None, Query(description="The complaint's tracking token from filing.")
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
    return token_matches(token, model.get("tracking_token_hash")) or token_matches(
        resident_token, model.get("resident_token_hash")
    )


def build_router(
    *,
    store: TrackerStore,
    departments: ApiKeys,
    staff: ApiKeys,
    timing: StreamTiming,
    streams: Gauge,
) -> APIRouter:
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
        complaint_id: str, token: TrackingToken = None, x_resident_token: ResidentToken = None
    ) -> ComplaintView:
        """A complaint as its resident may see it: with its tracking token, or with the
        resident token of whoever filed it."""
        model = await store.read_model(complaint_id)
        if model is None or not residents_own(model, token, x_resident_token):
            raise not_found()
        return public_view(model)

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
        token: TrackingToken = None,
        x_resident_token: ResidentToken = None,
        last_event: Annotated[
            str | None,
            Header(alias="Last-Event-ID", description="Resume after this sequence."),
        ] = None,
    ) -> StreamingResponse:
        """The complaint's timeline, live. A browser's EventSource cannot send headers, so
        it passes the tracking token as ``?token=``."""
        model = await store.read_model(complaint_id)
        if model is None or not residents_own(model, token, x_resident_token):
            raise not_found()

        async def events() -> AsyncIterator[str]:
            streams.inc()
            try:
                async for chunk in timeline_stream(
                    lambda: store.timeline(complaint_id),
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
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
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
        return Page[ComplaintSummary](
            **page([summary(m) for m in items], total, limit=limit, offset=offset)
        )

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
            **page([queue_item(m) for m in items], total, limit=limit, offset=offset),
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
        if model is None or model.get("department") != department:
            raise ApiError(404, "not_found", "No complaint of this department has this id.")
        return department_view(model)

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
            filed_from=aware(filed_from),
            filed_to=aware(filed_to),
            overdue=overdue,
        )
        items, total = await store.search(query, limit=limit, offset=offset)
        return SearchResults(
            terms=terms, **page([search_hit(m) for m in items], total, limit=limit, offset=offset)
        )

    @router.get("/v1/stats", response_model=Statistics, tags=["ops"])
    async def stats(
        department: str | None = None, filed_from: From = None, filed_to: To = None
    ) -> Statistics:
        """Counts per state and department, time per stage, deadline, reopen, transfer
        and auto-routing rates, over complaints filed in the period. Open: aggregates
        only, never a complaint or a person."""
        rows = await store.statistics_rows(
            department=department, filed_from=aware(filed_from), filed_to=aware(filed_to)
        )
        return statistics(rows)

    return router
