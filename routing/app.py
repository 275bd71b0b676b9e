"""routing's composition root: the only module that reads settings."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from routing.catalogue import Catalogue
from routing.classifier import Classifier, Example, load_examples, split
from routing.deadlines import calendar
from routing.handlers import Routing, RoutingMetrics, routes, subscribe
from routing.learning import Learner, LearningMetrics, LiveModel, in_process
from routing.lifecycle import Lifecycle
from routing.settings import RoutingSettings
from routing.store import MongoRoutingStore, RoutingStore, TransferLabel
from routing.texts import Texts
from schemas import CommandRejected, ComplaintDeadlineAlert, topics
from schemas.events import utcnow
from services.replay import PublishedLog, Replayer, ReplaySource, chained
from services.runtime import Clock, Publish, Runtime
from services.signing import verifier_from


async def fit_unless_fitted(
    classifier: Classifier, store: RoutingStore, model_dir: Path | None = None
) -> list[TransferLabel]:
    """Learn at start-up from the shipped training split plus every transfer so far, so
    the departments' corrections count; the shipped held-out split is kept out, to judge
    the models learned later (``routing/learning.py``). A classifier handed in already
    fitted (a test's, trained once per session) is used as it is. With a model directory,
    a model fitted on the same examples before is loaded instead of trained again.
    Returns the transfers the model in use was built from."""
    labels = await store.transfer_labels()
    if classifier.fitted:
        return labels
    train, _ = split(load_examples())
    examples = train + [Example(label.text, label.department) for label in labels]
    if model_dir is None:
        await asyncio.to_thread(classifier.fit, examples)
    else:
        await asyncio.to_thread(classifier.fit_cached, examples, model_dir)
    return labels


def create_app(
    settings: RoutingSettings | None = None,
    *,
    store: RoutingStore | None = None,
    publish: Publish | None = None,
    clock: Clock | None = None,
    runtime: Runtime | None = None,
    classifier: Classifier | None = None,
) -> FastAPI:
    """Each collaborator left out is built for real: the Mongo store on the runtime's
    database, the runtime's Kafka publish, the wall clock, a classifier fitted at start-up."""
    settings = settings or RoutingSettings()
    runtime = runtime or Runtime.build("routing", settings)
    kafka = settings.kafka
    keep = (
        timedelta(seconds=kafka.replay_window_seconds) if kafka.replay_after_broker_loss else None
    )
    storage = MongoRoutingStore(runtime.db, keep_published=keep) if store is None else store
    catalogue = Catalogue.load()
    texts = Texts.load()
    publish = runtime.publish if publish is None else publish
    if keep is not None:  # rejections and alerts have no outbox: keep them too
        others = PublishedLog(
            runtime.db,
            "routing_published_others",
            keep,
            {
                topics.REJECTIONS: CommandRejected.model_validate_json,
                topics.SLA: ComplaintDeadlineAlert.model_validate_json,
            },
        )
        publish = others.retaining(publish)
    model = (
        Classifier(threshold=settings.classifier_threshold, general_desk=catalogue.general_desk)
        if classifier is None
        else classifier
    )
    live = LiveModel(model)
    shipped_train, held_out = split(load_examples())
    learner = Learner(
        live=live,
        labels=storage,
        train=in_process(settings.learning_niceness),
        shipped_train=shipped_train,
        held_out=held_out,
        metrics=LearningMetrics(runtime.registry),
        clock=utcnow if clock is None else clock,
        min_new_labels=settings.learning_min_new_labels,
        min_interval=timedelta(seconds=settings.learning_min_interval_seconds),
        epsilon=settings.learning_epsilon,
        recent_share=settings.learning_recent_share,
    )
    routing = Routing(
        store=storage,
        catalogue=catalogue,
        classifier=live,
        lifecycle=Lifecycle(texts),
        texts=texts,
        publish=publish,
        clock=utcnow if clock is None else clock,
        metrics=RoutingMetrics(runtime.registry),
        calendar=calendar(settings.extra_holidays),
        on_duplicate=lambda topic: runtime.metrics.duplicates.labels("routing", topic).inc(),
    )
    subscribe(
        runtime,
        routing,
        max_records=settings.batch_max_records,
        timeout_ms=settings.batch_timeout_ms,
        verifier=verifier_from(settings.signing),
    )
    source: ReplaySource = routing.published_since
    if keep is not None:
        source = chained(routing.published_since, others.since)
    replayer = Replayer(
        service="routing",
        kafka=kafka,
        db=runtime.db,
        source=source,
        publish=publish,
        clock=utcnow if clock is None else clock,
        registry=runtime.registry,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def prepare() -> None:
            await storage.ensure_indexes()
            await routing.schedule_unscheduled()
            learner.starting_from(await fit_unless_fitted(model, storage, settings.model_dir))

        background = [
            lambda: routing.relay_forever(
                settings.relay_interval_seconds, replayer, settings.relay_grace_seconds
            ),
            lambda: routing.deadlines_forever(settings.deadline_scan_interval_seconds),
            lambda: routing.settle_loads_forever(
                settings.relay_interval_seconds, settings.relay_grace_seconds
            ),
        ]
        if settings.learning_enabled:
            background.append(
                lambda: learner.learn_forever(settings.learning_check_interval_seconds)
            )
        async with runtime.running(before_start=prepare, background=background):
            yield

    app = runtime.http_app(
        description="The complaint lifecycle, department classification and handler assignment.",
        lifespan=lifespan,
    )
    app.include_router(routes(live))
    return app
