"""The GeoReport v2 paths under ``/open311/v2/``, each in JSON or XML by its extension.

``POST requests`` files through ``Intake.accept``, as the HTTP route and the Kafka
subscriber do (channel ``open311``). The GETs read the tracker's staff API through
``TrackerClient`` and show what a public page may show: no name, phone, e-mail or
address of a resident, the description masked (phone numbers, e-mail addresses and
resident registration numbers) and cut short, and nothing at all from the services a
resident files about their own circumstances (``listed: false``) except by id.

The routes read the request themselves (no FastAPI parameters): every refusal, a bad
date or an unknown extension included, is answered in the spec's error shape, not in
the kit's.
"""

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import SecretStr

from intake.open311.form import MAX_FORM_BYTES, Form, service_request
from intake.open311.render import KST, Format, Open311Error, answer, error_answer
from intake.open311.services import Open311Services
from intake.tracker_client import TrackedComplaint, TrackerClient, TrackerUnavailable
from schemas.events import ComplaintSubmitted
from schemas.open311 import Status, states_of, status_of, w3c, words
from schemas.pii import mask_text
from schemas.states import ComplaintState
from services.runtime import Clock

log = logging.getLogger("sotong.intake.open311")

PREFIX = "/open311/v2"
WINDOW = timedelta(days=90)
MOST_REQUESTS = 1000
"""At most this many requests in one list, newest first (the spec's suggested cap)."""
MOST_IDS = 100
UNROUTED = 100
"""How many of the newest complaints an open list looks through for unrouted ones."""
SPEC = "http://wiki.open311.org/GeoReport_v2"

Accept = Callable[[ComplaintSubmitted, str], Awaitable[tuple[Any, bool]]]
"""Files a submission for a client app (its name, from its api_key): ``Intake.accept``
with ``redelivery_possible=False``."""
Admit = Callable[[str, str | None, ComplaintSubmitted], Awaitable[None]]
"""Counts a filing against the abuse limits — (client app, the end user it names in
X-End-User, the submission) — raising a 429 ``Open311Error`` past them (``intake.limits``)."""

_RECEIPT = re.compile(r"^\d{6}-\d{6}$")
_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
"""A service request id is a complaint id: a UUID4, as intake issues them."""


def public_text(excerpt: str) -> str:
    """A description a public answer may carry: the tracker's excerpt, masked again here
    (the tracker masks it, but a public answer does not rely on another service for that)."""
    return mask_text(excerpt)


class ClientKeys:
    """Open311 client apps' keys (``SOTONG_INTAKE_OPEN311_KEYS``: app name → key)."""

    def __init__(self, keys: Mapping[str, SecretStr]) -> None:
        self._keys = {app: key.get_secret_value().encode() for app, key in keys.items()}

    def client(self, presented: str | None) -> str | None:
        """The app whose key this is, or None; every key compared in constant time."""
        found = None
        for app, key in self._keys.items():
            if presented and hmac.compare_digest(key, presented.encode()):
                found = app
        return found


def fmt_of(extension: str) -> Format:
    try:
        return Format(extension)
    except ValueError:
        raise Open311Error(404, "format: use .json or .xml") from None


def instant(name: str, value: str | None) -> datetime | None:
    """A W3C datetime from a query; without an offset it is Korean time."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Open311Error(
            400, f"{name}: not a W3C datetime such as 2026-12-02T09:00:00+09:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=KST)


def window(params: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """[start, end): 90 days ending now by default; one bound given, 90 days from it."""
    start, end = (
        instant("start_date", params.get("start_date")),
        instant("end_date", params.get("end_date")),
    )
    if start is None and end is None:
        end = now
    if start is None:
        assert end is not None
        start = end - WINDOW
    if end is None:
        end = start + WINDOW
    if start >= end:
        raise Open311Error(400, "start_date: must be before end_date")
    if end - start > WINDOW:
        raise Open311Error(400, "start_date: the window may cover at most 90 days")
    return start, end


MediaUrls = Callable[[list[str]], Awaitable[dict[str, str]]]
"""Complaint ids → the public address of each one's first photo (those with photos)."""


class Open311:
    """What the routes do, bound to the services, the filing path and the tracker."""

    def __init__(
        self,
        *,
        services: Open311Services,
        accept: Accept,
        tracker: TrackerClient,
        keys: ClientKeys,
        clock: Clock,
        media: MediaUrls | None = None,
        admit: Admit | None = None,
    ) -> None:
        self.admit = admit
        self.services = services
        self.accept = accept
        self.tracker = tracker
        self.keys = keys
        self.clock = clock
        self.media = media

    # -- services ---------------------------------------------------------------------

    def discovery(self, base_url: str) -> dict[str, Any]:
        data = self.services.data.discovery
        return {
            "changeset": data.changeset,
            "contact": data.contact,
            "key_service": data.key_service,
            "endpoints": [
                {
                    "specification": SPEC,
                    "url": base_url.rstrip("/") + PREFIX,
                    "changeset": data.changeset,
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }

    def service_list(self) -> list[dict[str, Any]]:
        return [
            {
                "service_code": s.code,
                "service_name": s.text.service_name,
                "description": s.text.description,
                "metadata": s.metadata,
                "type": "realtime",
                "keywords": "",
                "group": s.department_name,
            }
            for s in self.services.services
        ]

    def definition(self, code: str) -> dict[str, Any]:
        service = self.services.by_code.get(code)
        if service is None:
            raise Open311Error(404, f"service_code: no service {code!r}")
        return {
            "service_code": service.code,
            "attributes": [
                {
                    "variable": a.variable,
                    "code": a.code,
                    "datatype": a.datatype.value,
                    "required": a.required,
                    "datatype_description": a.datatype_description,
                    "order": a.order,
                    "description": a.description,
                    **({"values": [v.model_dump() for v in a.values]} if a.values else {}),
                }
                for a in sorted(service.text.attributes, key=lambda a: a.order)
            ],
        }

    # -- filing -----------------------------------------------------------------------

    async def file(
        self, body: bytes, content_type: str, end_user: str | None = None
    ) -> list[dict[str, Any]]:
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise Open311Error(400, "Content-Type: must be application/x-www-form-urlencoded")
        form = Form.parse(body)
        client = self.keys.client(form.fields.get("api_key"))
        if client is None:
            raise Open311Error(403, "api_key: missing or not a valid key")
        request = service_request(form, self.services, self.clock())
        if self.admit is not None:
            await self.admit(client, end_user, request.submission)
        record, _ = await self.accept(request.submission, client)
        log.info(
            "open311 request filed",
            extra={"complaint_id": record.filed.complaint_id, "client": client},
        )
        return [
            {
                "service_request_id": record.filed.complaint_id,
                "service_notice": record.filed.receipt_number,
                "account_id": request.account_id,
            }
        ]

    # -- reading ----------------------------------------------------------------------

    def request_view(self, complaint: TrackedComplaint) -> dict[str, Any]:
        service = self.services.by_code.get(complaint.service_code or "")
        listed = service is not None and service.text.listed
        return {
            "service_request_id": complaint.complaint_id,
            "status": status_of(complaint.state).value,
            "status_notes": words().note(complaint.state),
            "service_name": service.text.service_name if service else None,
            "service_code": complaint.service_code,
            "description": public_text(complaint.excerpt) if listed else None,
            "agency_responsible": complaint.department.name if complaint.department else None,
            "service_notice": complaint.receipt_number,
            "requested_datetime": w3c(complaint.filed_at),
            "updated_datetime": w3c(complaint.updated_at),
            "expected_datetime": w3c(complaint.due_at),
            "dong": complaint.dong,
        }

    def _listed(self, complaint: TrackedComplaint) -> bool:
        service = self.services.by_code.get(complaint.service_code or "")
        return service is not None and service.text.listed

    async def one(self, complaint_id: str) -> list[dict[str, Any]]:
        known = _ID.match(complaint_id)
        complaint = await self.tracker.complaint(complaint_id.lower()) if known else None
        if complaint is None:
            raise Open311Error(404, f"service_request_id: no request {complaint_id!r}")
        return await self._with_media([self.request_view(complaint)])

    def _codes(self, params: Mapping[str, str]) -> list[str | None]:
        given = [c for c in params.get("service_code", "").split(",") if c]
        for code in given:
            if code not in self.services.by_code:
                raise Open311Error(400, f"service_code: unknown service code {code!r}")
        return list(given) or [None]

    @staticmethod
    def _statuses(params: Mapping[str, str]) -> list[Status]:
        given = [s for s in params.get("status", "").split(",") if s]
        try:
            return [Status(s) for s in given]
        except ValueError:
            raise Open311Error(400, "status: open or closed (or both, comma-separated)") from None

    async def many(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        if ids := [i for i in params.get("service_request_id", "").split(",") if i]:
            if len(ids) > MOST_IDS:
                raise Open311Error(400, f"service_request_id: at most {MOST_IDS} ids")
            wanted = list(dict.fromkeys(i.lower() for i in ids if _ID.match(i)))
            each = await asyncio.gather(*(self.tracker.complaint(i) for i in wanted))
            return await self._with_media([self.request_view(c) for c in each if c is not None])
        start, end = window(params, self.clock())
        codes = self._codes(params)
        statuses = self._statuses(params)
        # (state, how many): one search per state the statuses stand for; for "open" also
        # the newest of all, for complaints routing has not recorded yet (a state of null
        # cannot be searched for; such a complaint is seconds old, so among the newest).
        queries: list[tuple[ComplaintState | None, int]] = [
            (s, MOST_REQUESTS) for status in statuses for s in states_of(status)
        ]
        if not statuses:
            queries = [(None, MOST_REQUESTS)]
        elif Status.OPEN in statuses:
            queries.append((None, UNROUTED))
        pages = await asyncio.gather(
            *(
                self.tracker.search(
                    filed_from=start, filed_to=end, state=state, service_code=code, at_most=most
                )
                for state, most in queries
                for code in codes
            )
        )
        found = {
            c.complaint_id: c
            for page in pages
            for c in page
            if self._listed(c) and (not statuses or status_of(c.state) in statuses)
        }
        newest = sorted(found.values(), key=lambda c: c.filed_at or start, reverse=True)
        return await self._with_media([self.request_view(c) for c in newest[:MOST_REQUESTS]])

    async def _with_media(self, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each request's first photo as ``media_url``, where the district allows it."""
        if self.media is None or not views:
            return views
        urls = await self.media([v["service_request_id"] for v in views])
        return [
            v | {"media_url": urls[v["service_request_id"]]}
            if v["service_request_id"] in urls
            else v
            for v in views
        ]

    async def token(self, token: str) -> list[dict[str, Any]]:
        """The Open311 token is the receipt number (``service_notice``): what a resident
        reads out on the phone. Not the tracking token, which never leaves the resident."""
        hits = (
            await self.tracker.search(receipt_number=token, at_most=1)
            if _RECEIPT.match(token)
            else []
        )
        if not hits:
            raise Open311Error(404, f"token: no request has the token {token!r}")
        return [{"service_request_id": hits[0].complaint_id, "token": token}]

    async def updates(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """The mySociety updates extension: the latest change of each complaint updated in
        the window, among the complaints filed in the 90 days before its end. (The
        tracker's staff API has no timeline, so earlier steps are not listed one by one.)"""
        start, end = window(params, self.clock())
        complaints = await self.tracker.search(
            filed_from=end - WINDOW, filed_to=end, at_most=MOST_REQUESTS
        )
        changed = [
            c
            for c in complaints
            if self._listed(c) and c.updated_at is not None and start <= c.updated_at < end
        ]
        changed.sort(key=lambda c: c.updated_at or start)
        return [
            {
                "update_id": f"{c.complaint_id}@{w3c(c.updated_at)}",
                "service_request_id": c.complaint_id,
                "status": status_of(c.state).value,
                "updated_datetime": w3c(c.updated_at),
                "description": words().note(c.state),
                "media_url": "",
            }
            for c in changed
        ]


def routes(open311: Open311) -> APIRouter:
    """The Open311 paths; answers and refusals in the format the extension names."""
    # Not in intake's OpenAPI document: GeoReport v2 is the contract here (its own paths,
    # XML beside JSON, errors in its shape), and the README points integrators to it.
    router = APIRouter(prefix=PREFIX, tags=["open311"], include_in_schema=False)

    async def respond(
        extension: str,
        work: Callable[[], Awaitable[Any]],
        *,
        root: str,
        item: str,
        status: int = 200,
    ) -> Response:
        fmt = Format.JSON
        try:
            fmt = fmt_of(extension)
            return answer(await work(), fmt, root=root, item=item, status=status)
        except Open311Error as exc:
            return error_answer(exc, fmt)
        except TrackerUnavailable as exc:
            log.warning("open311 read failed", extra={"reason": str(exc)})
            return error_answer(Open311Error(503, "the tracker is not answering; try later"), fmt)
        except Exception:
            log.exception("open311 request failed")
            return error_answer(Open311Error(500, "internal error; try later"), fmt)

    @router.get("/discovery.{extension}", summary="Discovery: where the endpoints are")
    async def discovery(extension: str, request: Request) -> Response:
        async def work() -> dict[str, Any]:
            return open311.discovery(str(request.base_url))

        return await respond(extension, work, root="discovery", item="endpoint")

    @router.get("/services.{extension}", summary="The district's service codes")
    async def services(extension: str) -> Response:
        async def work() -> list[dict[str, Any]]:
            return open311.service_list()

        return await respond(extension, work, root="services", item="service")

    @router.get("/services/{service_code}.{extension}", summary="A service's attributes")
    async def definition(service_code: str, extension: str) -> Response:
        async def work() -> dict[str, Any]:
            return open311.definition(service_code)

        return await respond(extension, work, root="service_definition", item="attribute")

    @router.post(
        "/requests.{extension}",
        status_code=201,
        summary="File a service request (form-encoded, as the spec says)",
    )
    async def file(extension: str, request: Request) -> Response:
        async def work() -> list[dict[str, Any]]:
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_FORM_BYTES:
                    raise Open311Error(413, f"the form may hold at most {MAX_FORM_BYTES} bytes")
            return await open311.file(
                bytes(body),
                request.headers.get("content-type", ""),
                request.headers.get("x-end-user"),
            )

        return await respond(extension, work, root="service_requests", item="request", status=201)

    @router.get("/requests.{extension}", summary="Service requests (a window of 90 days)")
    async def requests(extension: str, request: Request) -> Response:
        async def work() -> list[dict[str, Any]]:
            return await open311.many(request.query_params)

        return await respond(extension, work, root="service_requests", item="request")

    @router.get("/requests/{service_request_id}.{extension}", summary="One service request")
    async def one(service_request_id: str, extension: str) -> Response:
        async def work() -> list[dict[str, Any]]:
            return await open311.one(service_request_id)

        return await respond(extension, work, root="service_requests", item="request")

    @router.get("/tokens/{token}.{extension}", summary="A request's id from its token")
    async def token(token: str, extension: str) -> Response:
        async def work() -> list[dict[str, Any]]:
            return await open311.token(token)

        return await respond(extension, work, root="service_requests", item="request")

    @router.get(
        "/servicerequestupdates.{extension}",
        summary="Updates in a window (the mySociety extension)",
    )
    async def updates(extension: str, request: Request) -> Response:
        async def work() -> list[dict[str, Any]]:
            return await open311.updates(request.query_params)

        return await respond(extension, work, root="service_request_updates", item="request_update")

    return router
