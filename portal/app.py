"""portal's composition root: settings → HTTP clients for intake and tracker → its own
MongoDB store → pages.

The only module that reads settings. Every collaborator can be passed in: the unit tier
passes in-memory doubles (``tests/fakes/portal.py``), the browser tier runs the real
services; ``chatbot`` is the 24/7 bot (``portal.chatbot``), and without one the chat
page says it is not available and offers to file instead.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.chat import ChatbotLike
from portal.chatbot.assemble import assemble
from portal.chatbot.bot import Classify
from portal.chatbot.handoff import RoutingClassifier
from portal.chatbot.settings import ChatbotSettings
from portal.clients import END_USER, HttpIntake, HttpTracker, IntakeApi, TrackerApi
from portal.handlers import Portal, routes, same_origin
from portal.limits import PageLimits, TooManyPage
from portal.menu import dongs, menu
from portal.recovery import POSTS as RECOVERY_POSTS
from portal.settings import PortalSettings
from portal.store import MongoPortalStore, PortalStore
from portal.suggestions import shipped
from portal.texts import texts
from schemas.events import utcnow
from services import telemetry
from services.http import ApiError, error_body, service_app
from services.mongo import Document, database, make_client, ping
from services.ratelimit import (
    EndUsers,
    Limits,
    Rate,
    RateLimitMetrics,
    RouteLimit,
    RouteLimits,
    address_key,
)
from services.runtime import Clock

log = logging.getLogger("sotong.portal")

STATIC = Path(__file__).parent / "static"

FILING_POSTS = ("/file", "/chat/handoff")
"""Form posts that file through intake: limited per client address together."""

ACTING_POSTS = (
    "/complaints/{complaint_id}/withdraw",
    "/complaints/{complaint_id}/reopen",
    "/complaints/{complaint_id}/answer",
    "/complaints/{complaint_id}/correct",
    "/complaints/{complaint_id}/rate",
    "/complaints/{complaint_id}/contact",
    "/complaints/{complaint_id}/contact/code",
    "/favourites",
)
"""A resident's actions on a complaint through intake (and the 인증번호), and starring a
page (a database write): limited per client address together, apart from filing."""


def post_limits(settings: PortalSettings, metrics: RateLimitMetrics) -> RouteLimits:
    """The portal is the edge: its client address is the resident's, so no credential
    and no X-End-User are read here."""
    filing = RouteLimit(
        "filing", Limits.of([Rate(settings.filings_per_minute, 60)]), what="requests"
    )
    acting = RouteLimit(
        "actions", Limits.of([Rate(settings.actions_per_minute, 60)]), what="requests"
    )
    chat = RouteLimit("chat", Limits.of([Rate(settings.chat_per_minute, 60)]), what="messages")
    recovery = RouteLimit(
        "recovery", Limits.of([Rate(settings.filings_per_minute, 60)]), what="requests"
    )
    return RouteLimits(
        {("POST", path): filing for path in FILING_POSTS}
        | {("POST", path): acting for path in ACTING_POSTS}
        | {("POST", "/chat"): chat}
        | {("POST", path): recovery for path in RECOVERY_POSTS},
        end_users=EndUsers(None),
        metrics=metrics,
    )


class EndUserContext:
    """Sets ``portal.clients.END_USER`` to the client's address for the request, so the
    calls the portal makes for it name that resident to intake and tracker."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        token = END_USER.set(address_key(client[0]) if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            END_USER.reset(token)


def create_app(
    settings: PortalSettings | None = None,
    *,
    intake: IntakeApi | None = None,
    tracker: TrackerApi | None = None,
    store: PortalStore | None = None,
    chatbot: ChatbotLike | None = None,
    clock: Clock | None = None,
    classify: Classify | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Build the portal; each collaborator left out is the real one built from ``settings``.
    ``tracer_provider`` defaults to the one ``settings.telemetry`` asks for (none when off)."""
    settings = settings or PortalSettings()
    registry = CollectorRegistry()
    if tracer_provider is None:
        tracer_provider = telemetry.provider("portal", settings.telemetry)
    if tracer_provider is not None:
        # outgoing calls to intake, tracker and routing carry the request's traceparent
        telemetry.install_process_wide(tracer_provider)
    mongo: AsyncMongoClient[Document] | None = None
    if store is None:
        mongo = make_client(
            settings.mongo, app_name="portal", listeners=telemetry.mongo_listeners(tracer_provider)
        )
        store = MongoPortalStore(database(mongo, settings.mongo))
    http = httpx.AsyncClient(timeout=settings.http_timeout_seconds)
    streams = httpx.AsyncClient(
        timeout=settings.http_timeout_seconds,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
    )
    limit_metrics = RateLimitMetrics(registry, "portal")
    kakao = None
    bot_settings = ChatbotSettings()
    if chatbot is None and settings.chatbot_enabled:
        parts = assemble(bot_settings, http, refused=limit_metrics.count)
        chatbot, kakao = parts.bot, parts.kakao
    if intake is None:
        keys = {c: k.get_secret_value() for c, k in settings.intake_keys.items()}
        intake = HttpIntake(http, settings.intake_url, keys)
    if tracker is None:
        key = settings.tracker_key.get_secret_value() if settings.tracker_key else None
        tracker = HttpTracker(http, settings.tracker_url, streams, key)
    loaded_menu, rules = menu(), shipped()
    rules.check(loaded_menu)
    portal = Portal(
        intake=intake,
        tracker=tracker,
        store=store,
        chatbot=chatbot,
        menu=loaded_menu,
        rules=rules,
        texts=texts(),
        dongs=dongs(),
        clock=clock or utcnow,
        cookie_secure=settings.cookie_secure,
        cookie_max_age=settings.cookie_max_age_days * 86_400,
        transcript_accepted=settings.intake_accepts_transcript,
        classify=classify
        or RoutingClassifier(
            http, bot_settings.routing_url, timeout=bot_settings.classify_timeout_seconds
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.ensure_indexes()
        try:
            yield
        finally:
            await http.aclose()
            await streams.aclose()
            if mongo is not None:
                await mongo.close()

    async def readiness(_: FastAPI) -> dict[str, bool]:
        checks = {"mongodb": await ping(mongo) if mongo is not None else True}
        for name, url in (("intake", settings.intake_url), ("tracker", settings.tracker_url)):
            try:
                checks[name] = (await http.get(f"{url.rstrip('/')}/healthz")).status_code == 200
            except httpx.HTTPError:
                checks[name] = False
        return checks

    app = service_app(
        name="portal",
        title="Sotong portal (소통1번가)",
        description="The residents' web pages: file in one screen, follow live, come back "
        "without logging in.",
        lifespan=lifespan,
        registry=registry,
        readiness=readiness,
        referrer_policy="same-origin",  # its forms prove their origin; no token is in a URL
    )

    @app.middleware("http")
    async def refuse_cross_site_posts(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method == "POST" and not same_origin(request):
            return PlainTextResponse("다른 사이트에서 보낸 요청은 받지 않아요.", status_code=403)
        return await call_next(request)

    telemetry.instrument_http(app, tracer_provider)

    too_many = TooManyPage(portal.texts)

    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> Response:
        """A page's 429 as a page in words a resident reads; any other refusal as the kit
        answers it."""
        if exc.status == 429:
            seconds = (exc.headers or {}).get("Retry-After", "60")
            return too_many(request, int(seconds) if seconds.isdigit() else 60)
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers
        )

    app.add_middleware(EndUserContext)
    app.add_middleware(
        PageLimits,
        pages=Limits.of([Rate(settings.pages_per_minute, 60)]),
        static=Limits.of([Rate(settings.static_per_minute, 60)]),
        metrics=limit_metrics,
        refusal=too_many,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    limits = post_limits(settings, limit_metrics)
    app.include_router(routes(portal), dependencies=[Depends(limits)])
    if kakao is not None:
        app.include_router(kakao)
    return app
