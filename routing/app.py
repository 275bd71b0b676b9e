"""routing's composition root: the only module that reads settings."""

import asyncio
import math
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from routing.cases import CasePolicy, Matcher
from routing.catalogue import Catalogue
from routing.classifier import Classifier, Example, MorphemeAnalyzer, load_examples, split
from routing.deadlines import calendar
from routing.handlers import CaseDetection, Routing, RoutingMetrics, routes, subscribe
from routing.learning import Learner, LearningMetrics, LiveModel, in_process
from routing.lifecycle import Lifecycle
from routing.models import ModelStore
from routing.settings import RoutingSettings
from routing.similarity import Similarity, Tokenize, terms_of
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


def _morphemes(classifier: Classifier) -> Any:
    """The classifier's TF-IDF over morphemes, if it has one."""
    for step in classifier.pipeline.named_steps.values():
        for _, part in getattr(step, "transformer_list", []):
            if isinstance(getattr(part, "analyzer", None), MorphemeAnalyzer):
                return part
    return None


def tokenizer_of(classifier: Classifier) -> Tokenize:
    """The classifier's own morpheme analyzer, so one Kiwi (about 330 MB) serves both;
    a new one if the classifier has none to share."""
    part = _morphemes(classifier)
    return part.analyzer if part is not None else MorphemeAnalyzer()


def similarity_of(classifier: Classifier) -> Similarity | None:
    """The idf the fitted classifier learned over the same morphemes (same smoothing), so
    start-up tokenizes nothing again; None if it has none."""
    part = _morphemes(classifier)
    idf = getattr(part, "idf_", None)
    if part is None or idf is None:
        return None
    weights = {str(term): float(idf[i]) for term, i in part.vocabulary_.items()}
    # a term no example had is rarer than the rarest: one document fewer than df = 1
    return Similarity(idf=weights, unseen_idf=max(weights.values()) + math.log(2))


async def case_detection(settings: RoutingSettings, classifier: Classifier) -> CaseDetection:
    """The matcher, with the fitted classifier's idf, or (a classifier without one) idf
    learned from the shipped examples' tokens (about a second)."""
    tokenize = tokenizer_of(classifier)
    similarity = similarity_of(classifier)
    if similarity is None:
        texts = [e.text for e in load_examples()]
        similarity = await asyncio.to_thread(
            lambda: Similarity.fit(terms_of(t, tokenize) for t in texts)
        )
    policy = CasePolicy(
        repeat_threshold=settings.repeat_threshold,
        repeat_window=timedelta(days=settings.repeat_window_days),
        duplicate_threshold=settings.duplicate_threshold,
        duplicate_same_service_threshold=settings.duplicate_same_service_threshold,
        duplicate_window=timedelta(days=settings.duplicate_window_days),
        duplicate_distance_m=settings.duplicate_distance_m,
    )
    key = settings.resident_phone_key
    return CaseDetection(
        tokenize=tokenize,
        matcher=Matcher(similarity=similarity, policy=policy),
        phone_key=key.get_secret_value().encode() if key else None,
    )


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
        shared=ModelStore(runtime.db) if isinstance(storage, MongoRoutingStore) else None,
        holder=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        lease=timedelta(seconds=settings.learning_lease_seconds),
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
            # a model the processes switched to earlier (this one before a restart, or
            # another replica) is used as it is; else fit one from the examples
            if not (settings.learning_enabled and await learner.follow()):
                learner.starting_from(await fit_unless_fitted(model, storage, settings.model_dir))
            if settings.cases_enabled:
                routing.cases = await case_detection(settings, live.current)

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
