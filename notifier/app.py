"""notifier's composition root: settings → runtime → store, channels, templates → handlers.

The only module that reads settings. :func:`create_app` builds the real collaborators
for whatever it is not given; a test gives the ones it wants to control or watch (an
in-memory store, a recording publish, a fixed clock, its own channels).
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI

from notifier.alimtalk import AlimTalkChannel
from notifier.audience import ALIMTALK, EMAIL, OUTBOX, SMS, WEBHOOK, Audience
from notifier.caps import DailyCap
from notifier.channel import OPEN311_PREFIX, Channel
from notifier.contacts import (
    CodeSender,
    ConfirmationStore,
    ContactMetrics,
    Contacts,
    MongoConfirmations,
)
from notifier.handlers import (
    BatchSettings,
    DeadLetterSink,
    Delivery,
    PublishDeadLetter,
    Sleep,
    subscribe,
)
from notifier.mail import EmailChannel
from notifier.metrics import NotifierMetrics
from notifier.outbox import OutboxChannel
from notifier.quiet import QuietHours
from notifier.retry import RetryPolicy
from notifier.retrying import RetryTopic
from notifier.settings import NotifierSettings, WebhookSubscription
from notifier.sms import SmsChannel
from notifier.staff import StaffDirectory
from notifier.store import MongoNotifierStore, NotifierStore
from notifier.templates import Catalogue, Letterhead
from notifier.webhook import WebhookChannel, WebhookTarget
from schemas import topics
from schemas.events import utcnow
from services.broker import topic_name
from services.runtime import Clock, Publish, Runtime

__all__ = ["NotifierSettings", "WebhookSubscription", "build_channels", "create_app"]

log = logging.getLogger("sotong.notifier")


def http_client(settings: NotifierSettings) -> httpx.AsyncClient:
    """The one client the HTTP channels share; the app's lifespan closes it."""
    return httpx.AsyncClient(
        timeout=settings.http_timeout_seconds,
        headers={"User-Agent": "sotong-notifier"},
        follow_redirects=False,
    )


def build_channels(
    settings: NotifierSettings, client: httpx.AsyncClient, *, clock: Clock = utcnow
) -> dict[str, Channel]:
    """Every channel the settings turn on; the outbox unless turned off."""
    channels: dict[str, Channel] = {}
    if settings.outbox_enabled:
        channels[OUTBOX] = OutboxChannel(
            settings.outbox_path, staff_path=settings.staff_outbox_path, clock=clock
        )
    if settings.alimtalk_url and settings.alimtalk_api_key and settings.alimtalk_sender_key:
        channels[ALIMTALK] = AlimTalkChannel(
            client,
            url=settings.alimtalk_url,
            api_key=settings.alimtalk_api_key,
            sender_key=settings.alimtalk_sender_key,
        )
    if settings.sms_url and settings.sms_api_key and settings.sms_sender:
        channels[SMS] = SmsChannel(
            client, url=settings.sms_url, api_key=settings.sms_api_key, sender=settings.sms_sender
        )
    if settings.smtp_host and settings.smtp_sender:
        channels[EMAIL] = EmailChannel(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.http_timeout_seconds,
        )
    if settings.webhooks or settings.open311_webhooks:
        channels[WEBHOOK] = WebhookChannel(
            client,
            {code: WebhookTarget(s.url, s.secret) for code, s in settings.webhooks.items()}
            | {
                OPEN311_PREFIX + app: WebhookTarget(s.url, s.secret)
                for app, s in settings.open311_webhooks.items()
            },
        )
    return channels


def daily_cap(settings: NotifierSettings) -> DailyCap | None:
    """The per-recipient daily cap, keyed with the configured secret."""
    if settings.daily_cap_per_recipient is None:
        return None
    if settings.recipient_hash_key is None:
        log.warning(
            "SOTONG_NOTIFIER_RECIPIENT_HASH_KEY is not set: the daily cap per recipient is "
            "counted by this process alone, and starts again when it restarts"
        )
        key = secrets.token_bytes(32)
    else:
        key = settings.recipient_hash_key.get_secret_value().encode()
    return DailyCap(settings.daily_cap_per_recipient, key, settings.timezone)


async def ensure_indexes(store: NotifierStore, confirmations: ConfirmationStore) -> None:
    await store.ensure_indexes()
    await confirmations.ensure_indexes()


def dead_letters_to_kafka(runtime: Runtime) -> DeadLetterSink:
    """Publish an undeliverable event's dead letter, keyed by its complaint."""
    return runtime.dead_letters.publish


def create_app(
    settings: NotifierSettings | None = None,
    *,
    runtime: Runtime | None = None,
    store: NotifierStore | None = None,
    publish: Publish | None = None,
    clock: Clock | None = None,
    channels: Mapping[str, Channel] | None = None,
    dead_letter: DeadLetterSink | None = None,
    sleep: Sleep | None = None,
    reject: PublishDeadLetter | None = None,
    confirmations: ConfirmationStore | None = None,
) -> FastAPI:
    """The notifier, from settings and whichever collaborators the caller brings.

    ``runtime`` (broker, Mongo client, metrics registry) must be built from the same
    settings; a test builds it to drive the broker in memory and read the registry.
    ``channels`` replace those the settings would turn on (and the HTTP client they
    share); ``sleep`` is what the retry backoff waits with; ``reject`` dead-letters a
    record that cannot be handled (the kit's dead-letter topic unless given).
    """
    settings = settings or NotifierSettings()
    runtime = runtime or Runtime.build("notifier", settings)
    store = store or MongoNotifierStore(runtime.db)
    clock = clock or utcnow
    client: httpx.AsyncClient | None = None
    if channels is None:
        client = http_client(settings)
        channels = build_channels(settings, client, clock=clock)
    kafka = settings.kafka
    audience = Audience(
        catalogue=Catalogue.load(),
        channels=frozenset(channels) - {WEBHOOK},
        letterhead=Letterhead(settings.sender_name, settings.tracking_url),
        webhooks=frozenset(settings.webhooks),
        apps=frozenset(settings.open311_webhooks),
        photo_base=settings.intake_public_url,
        urgent_states=settings.urgent_states,
        staff=StaffDirectory.load(settings.staff_directory_path),
    )
    metrics = NotifierMetrics(
        runtime.metrics,
        consumer=runtime.service,
        lifecycle_topic=topic_name(kafka, topics.LIFECYCLE),
    )
    publish = publish or runtime.publish
    retry = RetryPolicy(
        max_attempts=settings.delivery_max_attempts,
        initial_backoff_seconds=settings.delivery_initial_backoff_seconds,
        max_backoff_seconds=settings.delivery_max_backoff_seconds,
    )
    cap = daily_cap(settings)
    confirmations = confirmations or MongoConfirmations(runtime.db)
    contact_metrics = ContactMetrics(runtime.registry)
    contacts = Contacts(
        store=confirmations,
        sender=CodeSender(
            store=store,
            channels=channels,
            audience=audience,
            publish=publish,
            metrics=metrics,
            contact_metrics=contact_metrics,
            clock=clock,
            retry=retry,
            cap=cap,
            sleep=sleep or asyncio.sleep,
        ),
        hold=timedelta(seconds=settings.contact_hold_seconds),
        metrics=contact_metrics,
    )
    delivery = Delivery(
        store=store,
        channels=channels,
        audience=audience,
        publish=publish,
        dead_letter=dead_letter or dead_letters_to_kafka(runtime),
        source_topics={e: topic_name(kafka, t) for e, t in topics.OF_EVENT.items()},
        retry=retry,
        quiet=QuietHours.parse(settings.quiet_hours, settings.timezone)
        if settings.quiet_hours
        else None,
        metrics=metrics,
        clock=clock,
        sleep=sleep or asyncio.sleep,
        later=RetryTopic(
            max_retries=settings.retry_topic_max_retries,
            initial_backoff_seconds=settings.retry_topic_initial_backoff_seconds,
            max_backoff_seconds=settings.retry_topic_max_backoff_seconds,
            wait_seconds=settings.retry_topic_wait_seconds,
        ),
        budget_seconds=settings.batch_budget_seconds,
        attempt_seconds=settings.http_timeout_seconds,
        cap=cap,
        contacts=contacts,
        finish_every=settings.finish_interval_ms / 1000,
    )
    subscribe(
        runtime.subscriber,
        delivery,
        reject=reject or runtime.dead_letters.dead_letter,
        batch=BatchSettings(
            settings.batch_max_records, settings.batch_timeout_ms, settings.max_poll_interval_ms
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as resources:
            if client is not None:
                await resources.enter_async_context(client)
            await resources.enter_async_context(
                runtime.running(
                    before_start=lambda: ensure_indexes(store, confirmations),
                    background=[
                        lambda: delivery.release_forever(settings.release_interval_seconds),
                        lambda: delivery.sweep_forever(
                            settings.sweep_interval_seconds, settings.sweep_lease_seconds
                        ),
                    ],
                )
            )
            yield

    app = runtime.http_app(
        description="Tells residents, handlers, supervisors and department systems how a "
        "complaint (민원) is going: one message per step, recipient and channel.",
        lifespan=lifespan,
    )
    return app
