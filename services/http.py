"""Every service's HTTP face: /metrics, /healthz, /readyz, JSON errors, RED metrics."""

import re
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.events import FieldError

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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


def service_app(
    *,
    name: str,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    registry: CollectorRegistry,
    readiness: Callable[[FastAPI], Awaitable[dict[str, bool]]],
) -> FastAPI:
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
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
            requests.labels(request.method, template, str(status)).inc()
            latency.labels(request.method, template).observe(time.perf_counter() - start)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _validation_fields(exc)
        message = "; ".join(f"{f.field}: {f.reason}" for f in fields)
        return JSONResponse(error_body("invalid_request", message, fields), status_code=422)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

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
