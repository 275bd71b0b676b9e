"""intake's composition root: settings → runtime → store → handlers (HTTP and Kafka)."""

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from intake.contacts import (
    CodeRules,
    ConfirmedPhones,
    ContactCodeStore,
    Contacts,
    MongoConfirmedPhones,
    MongoContactCodes,
    contact_routes,
)
from intake.handlers import Accepted, Intake, SubmissionBatches, routes, similar_routes, subscribe
from intake.idempotency import (
    Idempotency,
    IdempotencyStore,
    IdempotentRequests,
    MongoIdempotencyStore,
)
from intake.limits import (
    PhoneCounts,
    PhoneLimit,
    Rates,
    hash_key,
    open311_answer,
    open311_limits,
    open311_read_limits,
    route_limits,
)
from intake.open311 import routes as open311
from intake.open311.routes import PREFIX as OPEN311_PREFIX
from intake.open311.services import open311_services
from intake.photo_routes import Photos, photo_routes
from intake.photo_store import MongoPhotoStore, PhotoStore, sweep_forever
from intake.photos import Limits
from intake.recovery import RECOVERY_CODES, Recovery, recovery_limits, recovery_routes
from intake.settings import IntakeSettings
from intake.similar import Classifies, OpenCases, RoutingClassifier
from intake.store import MongoSubmissionStore, SubmissionStore
from intake.tracker_client import TrackerClient
from schemas import topics
from schemas.commands import COMMAND_ADAPTER
from schemas.events import ComplaintSubmitted, utcnow
from services.draining import DrainGate
from services.http import ApiError, BodyLimit, error_body
from services.keys import ApiKeys
from services.ratelimit import Limits as RateLimits
from services.ratelimit import Rate, RateLimitMetrics
from services.replay import PublishedLog, Replayer, ReplaySource, chained
from services.runtime import Clock, Publish, Runtime
from services.signing import signer_from, signing_publish

PHOTO_SWEEP_SECONDS = 600.0
"""How often unattached photos are looked for (the age that deletes them is a setting)."""

log = logging.getLogger("sotong.intake")

IDEMPOTENT_PATHS = re.compile(r"/v1/complaints(/[^/]+/(commands|resident-actions))?")
"""The POST routes that honour an Idempotency-Key: filing and the commands."""


async def ensure_indexes(
    store: SubmissionStore,
    idempotency: IdempotencyStore,
    photos: PhotoStore,
    codes: ContactCodeStore | None = None,
    *more: ContactCodeStore | ConfirmedPhones,
) -> None:
    await store.ensure_indexes()
    await idempotency.ensure_indexes()
    await photos.ensure_indexes()
    if codes is not None:
        await codes.ensure_indexes()
    for other in more:  # recovery codes, confirmed phones
        await other.ensure_indexes()


MULTIPART_OVERHEAD = 64 * 1024
"""Room for a multipart body's boundaries and part headers around the photo itself."""


class BodyLimitBesidesUploads:
    """The kit's body limit for every route but the photo upload, which has its own."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limited = BodyLimit(app, limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/photos":
            await self.app(scope, receive, send)
        else:
            await self.limited(scope, receive, send)


def create_app(
    settings: IntakeSettings | None = None,
    *,
    store: SubmissionStore | None = None,
    publish: Publish | None = None,
    clock: Clock | None = None,
    runtime: Runtime | None = None,
    tracker: TrackerClient | None = None,
    idempotency_store: IdempotencyStore | None = None,
    photo_store: PhotoStore | None = None,
    contact_store: ContactCodeStore | None = None,
    recovery_store: ContactCodeStore | None = None,
    confirmed_phones: ConfirmedPhones | None = None,
    classify: Classifies | None = None,
) -> FastAPI:
    """Build intake; each collaborator left out is the real one built from ``settings``."""
    settings = settings or IntakeSettings()
    # a photo upload may be larger than any JSON body: the kit's limit admits it, and a
    # limit of intake's own keeps every other route at max_request_bytes
    upload_bytes = settings.photo_max_bytes + MULTIPART_OVERHEAD
    runtime = runtime or Runtime.build(
        "intake",
        settings.model_copy(
            update={"max_request_bytes": max(settings.max_request_bytes, upload_bytes)}
        ),
    )
    store = store if store is not None else MongoSubmissionStore(runtime.db)
    publish = publish if publish is not None else runtime.publish
    clock = clock if clock is not None else utcnow
    intake = Intake(store=store, publish=publish, clock=clock, registry=runtime.registry)
    photo_store = photo_store if photo_store is not None else MongoPhotoStore(runtime.db)
    photos = Photos(photo_store, store, settings.photos_per_complaint, clock)
    swept = Counter(
        "sotong_intake_photos_swept_total",
        "Uploaded photos deleted because no filing attached them in time.",
        registry=runtime.registry,
    )
    ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
    if idempotency_store is None:
        idempotency_store = MongoIdempotencyStore(runtime.db, ttl)
    idempotency = Idempotency(
        idempotency_store,
        clock=clock,
        ttl=ttl,
        lease=timedelta(seconds=settings.idempotency_lease_seconds),
    )
    limit_metrics = RateLimitMetrics(runtime.registry, "intake")
    secret = settings.phone_hash_key
    phone_limit = PhoneLimit(
        per_day=settings.filings_per_day_per_phone,
        key=hash_key(secret.get_secret_value().encode() if secret else None),
        counts=PhoneCounts(store),
        clock=clock,
        metrics=limit_metrics,
    )
    contact_store = contact_store if contact_store is not None else MongoContactCodes(runtime.db)
    if confirmed_phones is None:
        confirmed_phones = MongoConfirmedPhones(runtime.db)
    code_rules = CodeRules(
        ttl=timedelta(seconds=settings.contact_code_ttl_seconds),
        max_attempts=settings.contact_code_max_attempts,
        resends_per_hour=settings.contact_code_resends_per_hour,
        keep=timedelta(seconds=settings.contact_code_keep_seconds),
    )
    contacts = Contacts(
        store=contact_store,
        publish=publish,
        clock=clock,
        rules=code_rules,
        channels={c.value for c in settings.contact_code_channels},
        credentialed={c.value for c in settings.channel_keys},
        registry=runtime.registry,
        phones=confirmed_phones,
        phone_key=phone_limit.key,
        remember_for=timedelta(days=settings.confirmed_phone_days),
        owns=store.token_matches,
    )
    if recovery_store is None:
        recovery_store = MongoContactCodes(runtime.db, RECOVERY_CODES)
    recovery = Recovery(
        store=store,
        codes=recovery_store,
        contacts=contacts,
        publish=publish,
        clock=clock,
        # a recovery code's record is kept a day (no messages wait on it)
        rules=replace(code_rules, keep=timedelta(days=1)),
        per_receipt=RateLimits.of(
            [Rate(settings.recovery_codes_per_hour_per_receipt, 3600)],
            max_keys=settings.rate_limit_max_keys,
        ),
        metrics=limit_metrics,
        registry=runtime.registry,
    )
    tracker = tracker or TrackerClient.build(settings.tracker_url, settings.tracker_api_key)
    routing = (
        RoutingClassifier.build(settings.routing_url)
        if classify is None and settings.routing_url
        else None
    )
    classify = classify or routing
    subscribe(
        runtime.subscriber,
        intake,
        reject=runtime.dead_letters.dead_letter_records,
        batch=SubmissionBatches(settings.batch_max_records, settings.batch_timeout_ms),
    )
    source: ReplaySource = intake.published_since
    command_publish = publish
    if settings.kafka.replay_after_broker_loss:  # commands have no outbox: keep them too
        commands = PublishedLog(
            runtime.db,
            "intake_published_commands",
            timedelta(seconds=settings.kafka.replay_window_seconds),
            {topics.COMMANDS: COMMAND_ADAPTER.validate_json},
        )
        command_publish = commands.retaining(publish)
        source = chained(intake.published_since, commands.since)
    # signed before they are kept, so a replay publishes them signed too
    command_publish = signing_publish(command_publish, signer_from(settings.signing))
    replayer = Replayer(
        service="intake",
        kafka=settings.kafka,
        db=runtime.db,
        source=source,
        publish=publish,
        clock=clock,
        registry=runtime.registry,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with runtime.running(
                before_start=lambda: ensure_indexes(
                    store,
                    idempotency_store,
                    photo_store,
                    contact_store,
                    recovery_store,
                    confirmed_phones,
                ),
                background=[
                    lambda: intake.relay_forever(settings.relay_interval_seconds, replayer),
                    lambda: sweep_forever(
                        photo_store,
                        clock=clock,
                        keep=timedelta(hours=settings.photo_unattached_hours),
                        interval=PHOTO_SWEEP_SECONDS,
                        swept=swept,
                    ),
                ],
            ):
                yield
        finally:
            await tracker.aclose()
            if routing is not None:
                await routing.aclose()

    app = runtime.http_app(
        description="File complaints (민원) and send department commands.",
        lifespan=lifespan,
    )

    if not settings.api_keys:
        log.warning("no department API keys configured: every command will be refused")
    keys = ApiKeys(settings.api_keys)
    channels = ApiKeys({c.value: key for c, key in settings.channel_keys.items()})
    if not settings.channel_keys:
        log.warning("no channel credentials configured: any caller may file as any channel")
    app.add_middleware(
        IdempotentRequests,
        idempotency=idempotency,
        paths=IDEMPOTENT_PATHS,
        departments=keys,
        channels=channels,
        max_body=settings.max_request_bytes,
    )
    app.add_middleware(BodyLimitBesidesUploads, limit=settings.max_request_bytes)
    app.add_middleware(DrainGate)  # sotong up's Ctrl-C: 503 + Retry-After while draining
    rates = Rates(
        filings_per_minute=settings.filings_per_minute,
        filings_per_hour=settings.filings_per_hour,
        channel_filings_per_minute=settings.channel_filings_per_minute,
        commands_per_minute=settings.commands_per_minute_per_key,
        photos_per_minute=settings.photos_per_minute,
        similar_per_minute=settings.similar_per_minute,
        max_keys=settings.rate_limit_max_keys,
        resident_actions_per_minute=settings.resident_actions_per_minute,
        resident_actions_per_hour=settings.resident_actions_per_hour,
        complaint_actions_per_minute=settings.complaint_actions_per_minute,
        complaint_actions_per_hour=settings.complaint_actions_per_hour,
    )
    limits = route_limits(
        rates,
        channels=channels,
        departments=keys,
        metrics=limit_metrics,
    )
    app.include_router(
        routes(
            intake=intake,
            store=store,
            publish=command_publish,
            keys=keys,
            channels=channels,
            credentialed=frozenset(c.value for c in settings.channel_keys),
            photos=photos,
            clock=clock,
            admit_phone=phone_limit.admit_http,
            contacts=contacts,
        ),
        dependencies=[Depends(limit) for limit in limits],
    )
    services = open311_services()
    app.include_router(
        similar_routes(
            lookup=OpenCases(
                tracker,
                listed=lambda code: (
                    code is not None
                    and code in services.by_code
                    and services.by_code[code].text.listed
                ),
                classify=classify,
            ),
            channels=channels,
            credentialed=frozenset(c.value for c in settings.channel_keys),
        ),
        dependencies=[Depends(limit) for limit in limits],
    )
    app.include_router(contact_routes(contacts), dependencies=[Depends(limit) for limit in limits])
    app.include_router(
        recovery_routes(recovery),
        dependencies=[
            Depends(
                recovery_limits(
                    per_minute=settings.recovery_per_minute,
                    per_hour=settings.recovery_per_hour,
                    per_credential_minute=settings.channel_filings_per_minute,
                    max_keys=settings.rate_limit_max_keys,
                    channels=channels,
                    metrics=limit_metrics,
                )
            )
        ],
    )
    app.include_router(
        photo_routes(
            photos=photo_store,
            store=store,
            keys=keys,
            tracker=tracker,
            limits=Limits(
                max_bytes=settings.photo_max_bytes,
                max_pixels=settings.photo_max_pixels,
                thumbnail_pixels=settings.photo_thumbnail_pixels,
            ),
            public=settings.open311_media_urls,
            clock=clock,
        ),
        dependencies=[Depends(limit) for limit in limits],
    )

    async def media_urls(complaint_ids: list[str]) -> dict[str, str]:
        base = settings.public_url.rstrip("/")
        photos = await store.photos_of(complaint_ids)
        return {c: f"{base}/v1/photos/{refs[0].photo_id}/public" for c, refs in photos.items()}

    async def accept_open311(submission: ComplaintSubmitted, client: str) -> Accepted:
        return await intake.accept(submission, redelivery_possible=False, client=client)

    app.include_router(
        open311.routes(
            open311.Open311(
                services=open311_services(),
                accept=accept_open311,
                tracker=tracker,
                keys=open311.ClientKeys(settings.open311_keys),
                clock=clock,
                media=media_urls if settings.open311_media_urls else None,
                admit=open311_limits(rates, phone_limit, limit_metrics).admit,
            )
        ),
        dependencies=[
            Depends(
                open311_read_limits(
                    settings.open311_reads_per_minute, settings.rate_limit_max_keys, limit_metrics
                )
            )
        ],
    )

    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> Response:
        """The kit's answer, except on Open311's paths, whose clients read GeoReport's."""
        if request.url.path.startswith(OPEN311_PREFIX):
            return open311_answer(request, exc)
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers
        )

    return app
