"""Every service's HTTP face: /metrics, /healthz, /readyz, JSON errors, RED metrics."""

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import fastapi_offline
import h11
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, swagger_ui_default_parameters
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from schemas.events import FieldError
from services.errors import TRANSIENT
from services.openapi import document

log = logging.getLogger("sotong.http")

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with its status."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str, fields: list[FieldError] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = [f.model_dump() for f in fields]
    return {"error": body}


_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


def _validation_fields(exc: RequestValidationError) -> list[FieldError]:
    """Each invalid field by its name in the request: ``note``, not ``body.resolve.note``.

    A body that is one schema per value of a discriminator (``action``) reports the
    discriminator itself when its value is missing or unknown, and drops the tag pydantic
    puts in the location of a field of the chosen schema.
    """
    body = exc.body if isinstance(exc.body, dict) else {}
    tags = {v for v in body.values() if isinstance(v, str)}
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
            if loc and loc[0] in tags and loc[0] not in body:
                loc = loc[1:]
        reason = str(err.get("msg", ""))
        if not loc and err.get("type") == "missing":
            reason = "a JSON body is required"
        ctx = err.get("ctx", {})
        discriminator = str(ctx.get("discriminator", "")).strip("'")
        if err.get("type") in _TAG_ERRORS and discriminator:
            loc.append(discriminator)
            expected = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected_tags", ""))))
            if "tag" in ctx:
                reason = f"{ctx['tag']!r} is not one of: {expected}"
            else:
                reason = "Field required"
        fields.append(FieldError(field=".".join(loc) or "(body)", reason=reason))
    return fields


NOT_JSON = "Content-Type must be application/json"
NOT_UTF8 = "malformed JSON: the body is not UTF-8"
UNREADABLE_BODY = "There was an error parsing the body"


def refusal(exc: RequestValidationError) -> tuple[int, dict[str, Any]]:
    """The status and error body for a request FastAPI could not validate."""
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid" and loc[:1] == ("body",):
            position = loc[1] if len(loc) > 1 else 0
            message = f"malformed JSON at position {position}"
            detail = str(err.get("ctx", {}).get("error", "")) or "not JSON"
            field = FieldError(field="(body)", reason=f"{message}: {detail}")
            return 422, error_body("invalid_request", message, [field])
        if loc == ("body",) and isinstance(exc.body, bytes):
            # FastAPI leaves a body undecoded only when its Content-Type is not JSON.
            return 415, error_body("unsupported_media_type", NOT_JSON)
    fields = _validation_fields(exc)
    message = "; ".join(f"{f.field}: {f.reason}" for f in fields)
    return 422, error_body("invalid_request", message, fields)


MALFORMED_HTTP = (
    "malformed HTTP request: a URL must be ASCII (percent-encode other characters, "
    "e.g. %ED%95%9C for 한) and every header valid HTTP/1.1"
)


PRIVATE_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)
"""What :class:`PrivateByDefault` adds, for the answers given before or outside it."""


def headers_too_large(limit: int) -> str:
    return f"the request's line and headers are larger than {limit} bytes"


class BoundedHeadConnection(h11.Connection):
    """h11's server side, refusing a request head (line and headers) over
    ``max_head_bytes`` with the hint 431. h11 bounds a head only while it is incomplete
    (``max_incomplete_event_size``), so one that arrives whole in a single read passes
    that bound; this one counts the complete head too. The last refusal is kept for the
    protocol's answer, since uvicorn passes on only that there was one."""

    def __init__(self, max_head_bytes: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self.max_head_bytes = max_head_bytes
        self.refusal: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refusal = exc
            raise
        if isinstance(event, h11.Request):
            size = len(event.method) + len(event.target) + 12  # "M T HTTP/1.1\r\n"
            size += sum(len(name) + len(value) + 4 for name, value in event.headers.raw_items())
            if size > self.max_head_bytes:
                self.refusal = h11.RemoteProtocolError("head too large", error_status_hint=431)
                raise self.refusal
        return event


class JsonErrorsH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the kit's edges: a request it cannot parse gets the
    same JSON error as every other refusal instead of uvicorn's plain-text 400, a head over
    ``max_head_bytes`` gets 431 in that shape, and a connection closed while the client is
    still sending is closed gently (a lingering close).

    h11 refuses a request before any application runs: raw non-ASCII bytes in the URL (a
    client that did not percent-encode 한글), a malformed request line or header, too large
    a head. ``sotong run`` passes a subclass with the settings' bounds
    (:func:`server_protocol`) to ``uvicorn.run(http=...)``.

    Lingering close: closing a socket whose received data is unread makes the kernel send
    a reset, and a client still sending its body (one the server refused with 413 or 431
    before reading it) then loses the answer it had not read yet. So while the client has
    not finished its request, closing means: send what is queued, half-close, and read and
    discard what still comes until the client closes too, ``linger_bytes`` have come or
    ``linger_seconds`` have passed (RFC 9112 §9.6); only then close.
    """

    max_head_bytes = 16 * 1024
    linger_bytes = 16 * 1024 * 1024
    linger_seconds = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bounded = BoundedHeadConnection(self.max_head_bytes)
        self.conn = self.bounded
        self.lingering = False
        self.discarded = 0
        self._raw: asyncio.Transport | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        super().connection_made(_GentleClose(transport, self))

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self.discarded += len(data)
            if self.discarded > self.linger_bytes:
                self._close_now()
            return
        super().data_received(data)

    def eof_received(self) -> None:
        # the client has finished sending: nothing more to discard, and asyncio closes
        self._stop_lingering()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_lingering()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The server stops: a connection only discarding a refused request closes now
        rather than holding the graceful shutdown for the rest of its lingering."""
        if self.lingering:
            self._close_now()
            return
        super().shutdown()

    def client_still_sending(self) -> bool:
        """Whether the client may still be sending its request: mid-body, or mid-way
        through a request h11 refused."""
        return self.conn.their_state in (h11.SEND_BODY, h11.ERROR)

    def close_gently(self) -> None:
        raw = self._raw
        assert raw is not None
        if self.lingering or raw.is_closing():
            return
        if not self.client_still_sending():
            raw.close()
            return
        self.lingering = True
        raw.resume_reading()
        if raw.can_write_eof():
            raw.write_eof()  # after what is queued: the client reads the answer, then EOF
        self._linger_timer = self.loop.call_later(self.linger_seconds, self._close_now)

    def _close_now(self) -> None:
        self._stop_lingering()
        if self._raw is not None:
            self._raw.close()

    def _stop_lingering(self) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None

    def send_400_response(self, msg: str) -> None:
        refusal = self.bounded.refusal
        if refusal is not None and refusal.error_status_hint == 431:
            status, reason = 431, b"Request Header Fields Too Large"
            error = error_body(
                "request_header_fields_too_large", headers_too_large(self.max_head_bytes)
            )
        else:
            status, reason = 400, b"Bad Request"
            error = error_body("invalid_request", MALFORMED_HTTP)
        body = json.dumps(error).encode()
        response = h11.Response(
            status_code=status,
            headers=[
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *PRIVATE_HEADERS,
            ],
            reason=reason,
        )
        for event in (response, h11.Data(data=body), h11.EndOfMessage()):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()


class _GentleClose(asyncio.Transport):
    """The transport as uvicorn's protocol and its request cycles hold it: everything
    passes through, but ``close`` is the protocol's lingering close."""

    def __init__(self, raw: asyncio.Transport, protocol: JsonErrorsH11Protocol) -> None:
        super().__init__()
        self._transport = raw
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_gently()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def abort(self) -> None:
        self._transport.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        if not self._protocol.lingering:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


def server_protocol(
    *, max_head_bytes: int, linger_bytes: int, linger_seconds: float
) -> type[JsonErrorsH11Protocol]:
    """The protocol class ``uvicorn.run(http=...)`` takes, with these bounds."""
    return type(
        "BoundedH11Protocol",
        (JsonErrorsH11Protocol,),
        {
            "max_head_bytes": max_head_bytes,
            "linger_bytes": linger_bytes,
            "linger_seconds": linger_seconds,
        },
    )


DOCS_ASSETS = "/docs-assets"
"""Swagger UI 5 and ReDoc as the ``fastapi-offline`` package ships them (Swagger UI 4, as
``swagger-ui-bundle`` ships it, cannot render OpenAPI 3.1), so /docs works on an office
network that reaches no CDN."""


def serve_docs(app: FastAPI) -> None:
    """/docs (Swagger UI, with "Authorize" for the API key) and /redoc, from local assets."""
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # no online validator: it would send the document to a host outside
            swagger_ui_parameters=swagger_ui_default_parameters | {"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods that are their own metric label; any other a client invents is ``OTHER``, so a
stranger cannot grow the metric's label set."""


class BodyTooLarge(HTTPException):
    """Raised while the body is read. FastAPI passes its own ``HTTPException`` through
    (any other exception while it reads a body becomes its 400 "error parsing the body"),
    so the kit's JSON error handler answers it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413: at once when Content-Length
    says so, and while reading when it is chunked or lies, so no handler ever buffers more.

    Reading past the limit raises :class:`BodyTooLarge` in whoever reads, and what the
    layers between make of it varies (FastAPI's own 413, or a 400 when a middleware's task
    group wraps it in an exception group): whatever answer the application then starts is
    dropped and this limit's 413 sent instead, unless the application had already started
    answering before the body ran over."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        started = False
        too_large = False

        async def counted() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    too_large = True
                    raise BodyTooLarge(self.limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # the application's answer to a body it never had
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body("payload_too_large", BodyTooLarge(self.limit).detail),
            ensure_ascii=False,
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    # this limit may sit outside PrivateByDefault (intake's does)
                    *PRIVATE_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class PrivateByDefault:
    """Every answer says: not to be cached (a resident's complaint, a department's queue)
    unless the route said otherwise, never to leak its URL in a Referer, and to be taken
    as the type it says it is."""

    def __init__(self, app: ASGIApp, referrer_policy: str = "no-referrer") -> None:
        self.app = app
        self.headers = (
            (b"referrer-policy", referrer_policy.encode()),
            (b"x-content-type-options", b"nosniff"),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in self.headers if n not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class ServiceApp(FastAPI):
    """FastAPI whose OpenAPI document says what the kit answers (``services/openapi.py``)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document(super().openapi())
        return self.openapi_schema


def service_app(
    *,
    name: str,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    registry: CollectorRegistry,
    readiness: Callable[[FastAPI], Awaitable[dict[str, bool]]],
    max_request_bytes: int = 1024 * 1024,
    referrer_policy: str = "no-referrer",
) -> FastAPI:
    """``referrer_policy``: ``no-referrer`` for APIs; a site whose own forms post back
    needs ``same-origin``, since under ``no-referrer`` a browser sends ``Origin: null``
    and the site cannot tell its own forms from another's."""
    # A body without a Content-Type is read as JSON (strict_content_type=False): it makes
    # no other claim, and a body that is not JSON gets the malformed-JSON answer anyway. A
    # body that says it is something else is refused (415) rather than guessed at.
    app = ServiceApp(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        strict_content_type=False,
        docs_url=None,
        redoc_url=None,
    )
    serve_docs(app)
    requests = Counter(
        "sotong_http_requests_total",
        "HTTP requests by route template and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "sotong_http_request_duration_seconds",
        "HTTP request latency by route template.",
        ["method", "route"],
        registry=registry,
    )

    app.add_middleware(BodyLimit, limit=max_request_bytes)  # inside the metrics: 413s counted
    app.add_middleware(PrivateByDefault, referrer_policy=referrer_policy)

    @app.middleware("http")
    async def red_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = request.method if request.method in METHODS else "OTHER"
            requests.labels(method, template, str(status)).inc()
            latency.labels(method, template).observe(time.perf_counter() - start)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, body = refusal(exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers
        )

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        """The database or the broker is away (a retryable failure): 503 with Retry-After,
        not a 500 — the client should retry, and nothing half-done is answered as done."""
        log.warning("answering 503: a dependency is unavailable (%s)", type(exc).__name__)
        return JSONResponse(
            error_body("unavailable", "a service this request needs is unavailable; retry later"),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for transient in TRANSIENT:
        app.add_exception_handler(transient, unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
            # FastAPI's answer to a JSON body that is not even text (not UTF-8).
            field = FieldError(field="(body)", reason=f"{NOT_UTF8}: {exc.detail}")
            return JSONResponse(error_body("invalid_request", NOT_UTF8, [field]), status_code=422)
        code = {404: "not_found", 413: "payload_too_large"}.get(
            exc.status_code, f"http_{exc.status_code}"
        )
        # the rest of a body too large is not read: the connection closes after the answer
        headers = {"Connection": "close"} if exc.status_code == 413 else None
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await readiness(app)
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    return app
