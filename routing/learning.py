"""A classifier that learns from transfers (이송) while routing runs.

Every transfer is a label: this text belongs to that department. When enough labels
arrived that the model in use has not seen (``min_new_labels``), a candidate is fitted on
the shipped training split plus every transfer except the newest share of the unseen
ones, in a separate process, so routing's event loop keeps its core. The candidate and
the model in use are both scored on two sets neither was fitted on: the shipped held-out
split and those newest transfers. The candidate replaces the model in use only if it is
:func:`not_worse`; every switch and every refusal is logged with both scores and counted.

The model in use is one reference in :class:`LiveModel`, replaced in one assignment on
the event loop: a batch classifies with the old model or the new one, never a mix, and
each prediction carries the version of the model that made it.

With a shared store (:mod:`routing.models`), one process fits at a time (a lease) and a
switched-to model is published; every process, and a restarted one, follows it.
"""

import asyncio
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from routing.classifier import Classifier, Example, Prediction, evaluate
from routing.models import Pointer
from routing.models import Shared as SharedModel
from routing.store import TransferLabel
from services.runtime import Clock

log = logging.getLogger("sotong.routing.learning")

Outcome = Literal["switched", "refused", "failed"]


@dataclass(frozen=True)
class Scores:
    """Top-1 accuracy on the shipped held-out split and on the recent transfers."""

    held_out: float
    recent: float


def not_worse(candidate: Scores, current: Scores, *, epsilon: float) -> bool:
    """The rule a candidate must pass to replace the model in use.

    On the shipped held-out split it may lose at most ``epsilon`` of accuracy (learning a
    district's own labels may move a few of the shipped examples); on the recent
    transfers, which neither model was fitted on and which are what it should learn, it
    must be at least as accurate as the model in use.
    """
    return candidate.held_out >= current.held_out - epsilon and candidate.recent >= current.recent


@dataclass(frozen=True)
class Job:
    """What a trainer gets: picklable, since the real one runs in another process."""

    train: tuple[Example, ...]
    held_out: tuple[Example, ...]
    recent: tuple[Example, ...]
    current: Classifier


@dataclass(frozen=True)
class Trained:
    candidate: Classifier
    candidate_scores: Scores
    current_scores: Scores
    fit_seconds: float


Train = Callable[[Job], Awaitable[Trained]]
"""Fits and scores a candidate: :func:`in_process` for real, an in-memory fake in tests."""


def fit_and_score(job: Job) -> Trained:
    """Fit the candidate with the current model's settings and score both models."""
    current = job.current
    started = time.perf_counter()
    candidate = Classifier(
        threshold=current.threshold, general_desk=current.general_desk, seed=current.seed
    ).fit(job.train)
    fit_seconds = time.perf_counter() - started

    def scores(model: Classifier) -> Scores:
        return Scores(
            held_out=evaluate(model, job.held_out).accuracy,
            recent=evaluate(model, job.recent).accuracy,
        )

    return Trained(candidate, scores(candidate), scores(current), fit_seconds)


def _child(job: Job, conn: Connection, niceness: int) -> None:
    os.nice(niceness)  # routing's answers come first on a shared machine
    try:
        conn.send(fit_and_score(job))
    except BaseException as exc:
        conn.send(RuntimeError(f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        conn.close()


def in_process(niceness: int = 10) -> Train:
    """A trainer that fits in a fresh spawned process (a fork would copy the broker's and
    the database's threads): the fit's Python work holds that process's GIL, not
    routing's. The job is pickled and the result unpickled in worker threads; cancelling
    (routing stopping) terminates the process."""

    async def train(job: Job) -> Trained:
        ctx = multiprocessing.get_context("spawn")
        receiving, sending = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_child, args=(job, sending, niceness), daemon=True, name="classifier-fit"
        )
        # start() returns once the child has read the job, seconds on a busy machine; it
        # is never abandoned halfway, so a started process is always stopped below
        started = asyncio.ensure_future(asyncio.to_thread(process.start))

        async def stop() -> None:
            await asyncio.wait({started})
            sending.close()
            if started.exception() is None:
                if process.is_alive():
                    process.terminate()
                await asyncio.to_thread(process.join, 10)
            receiving.close()

        try:
            await asyncio.shield(started)
            sending.close()
            answer: Trained | RuntimeError = await asyncio.to_thread(receiving.recv)
        finally:
            await asyncio.shield(asyncio.ensure_future(stop()))
        if isinstance(answer, RuntimeError):
            raise answer
        return answer

    return train


class LiveModel:
    """The model in use: what routing's handlers and ``/v1/classify`` ask."""

    def __init__(self, model: Classifier) -> None:
        self._model = model

    @property
    def current(self) -> Classifier:
        return self._model

    @property
    def version(self) -> str | None:
        return self._model.version

    def swap(self, model: Classifier) -> None:
        self._model = model

    def predict(self, text: str) -> Prediction:
        return self._model.predict(text)

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        return self._model.predict_many(texts)


class Shared(Protocol):
    """Where the processes share the model in use and the learning lease
    (:class:`routing.models.ModelStore`; an in-memory fake in tests)."""

    async def acquire(self, holder: str, now: datetime, ttl: timedelta) -> bool: ...

    async def release(self, holder: str) -> None: ...

    async def pointer(self) -> "Pointer | None": ...

    async def share(
        self,
        model: Classifier,
        known: Sequence[str],
        *,
        now: datetime,
        held_out: float | None = None,
        recent: float | None = None,
    ) -> "Pointer": ...

    async def load(
        self, pointer: "Pointer", *, threshold: float, general_desk: str
    ) -> "SharedModel | None": ...


class Labels(Protocol):
    """What learning reads from routing's store."""

    async def count_transfers(self) -> int: ...

    async def transfer_labels(self) -> list[TransferLabel]: ...


class LearningMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.retrains = Counter(
            "sotong_classifier_retrains_total",
            "Candidate classifiers fitted on new transfers: switched to, refused, or failed.",
            ["outcome"],
            registry=registry,
        )
        self.accuracy = Gauge(
            "sotong_classifier_accuracy",
            "Top-1 accuracy of the last candidate and of the model in use at that time.",
            ["model", "split"],
            registry=registry,
        )
        self.followed = Counter(
            "sotong_classifier_followed_total",
            "Models another routing process switched to (or one this process published "
            "before it restarted), loaded and put in use here.",
            registry=registry,
        )
        self.fit_seconds = Histogram(
            "sotong_classifier_fit_seconds",
            "Time to fit a candidate classifier (in its own process).",
            buckets=(5, 10, 20, 30, 45, 60, 90, 120, 180, 300),
            registry=registry,
        )


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    candidate: Scores | None = None
    current: Scores | None = None
    version: str | None = None


@dataclass(kw_only=True)
class Learner:
    """Decides when to retrain, and whether the candidate replaces the model in use.

    ``known`` holds the transfers the model in use was built with (fitted on or held out
    to score it); labels outside it are new. An attempt happens when at least
    ``min_new_labels`` labels arrived since the last attempt (so a refused candidate is not
    fitted again on the same data) and ``min_interval`` passed since it.
    """

    live: LiveModel
    labels: Labels
    train: Train
    shipped_train: Sequence[Example]
    held_out: Sequence[Example]
    metrics: LearningMetrics
    clock: Clock
    min_new_labels: int
    min_interval: timedelta
    epsilon: float
    recent_share: float
    known: frozenset[str] = frozenset()
    seen_at_last_attempt: int = 0
    last_attempt_at: datetime | None = None
    shared: Shared | None = None
    """With it: one process fits at a time, and every process uses the published model."""
    holder: str = ""
    """This process's name on the lease."""
    lease: timedelta = timedelta(minutes=15)
    """How long a fit may hold the lease: longer than any fit takes."""
    _refused: str | None = None

    def starting_from(self, labels: Sequence[TransferLabel]) -> "Learner":
        """The model in use at start-up was built from these transfers."""
        self.known = frozenset(label.label_id for label in labels)
        self.seen_at_last_attempt = len(self.known)
        return self

    async def due(self) -> bool:
        now = self.clock()
        if self.last_attempt_at is not None and now - self.last_attempt_at < self.min_interval:
            return False
        count = await self.labels.count_transfers()
        return count - self.seen_at_last_attempt >= self.min_new_labels

    async def follow(self) -> bool:
        """Put the shared model in use if it is not the one in use here (and this process
        can load it); True when it did."""
        if self.shared is None:
            return False
        pointer = await self.shared.pointer()
        if pointer is None or pointer.version in (self.live.version, self._refused):
            return False
        current = self.live.current
        loaded = await self.shared.load(
            pointer, threshold=current.threshold, general_desk=current.general_desk
        )
        if loaded is None:
            self._refused = pointer.version
            return False
        previous = self.live.version
        self.live.swap(loaded.model)
        self.known = loaded.known
        self.seen_at_last_attempt = max(self.seen_at_last_attempt, len(loaded.known))
        self.metrics.followed.inc()
        log.info(
            "classifier follows the shared model",
            extra={"model_version": previous, "candidate_version": pointer.version},
        )
        return True

    async def step(self) -> Verdict | None:
        """One look: follow the shared model, retrain if due (holding the lease when
        shared), then switch or refuse. ``None`` when not due or another process fits."""
        await self.follow()
        if not await self.due():
            return None
        if self.shared is None:
            return await self._attempt()
        if not await self.shared.acquire(self.holder, self.clock(), self.lease):
            return None
        try:
            await self.follow()  # what the last holder switched to while this one looked
            if not await self.due():
                return None
            verdict = await self._attempt()
            if verdict is not None and verdict.outcome == "switched":
                assert verdict.candidate is not None
                await self.shared.share(
                    self.live.current,
                    sorted(self.known),
                    now=self.clock(),
                    held_out=verdict.candidate.held_out,
                    recent=verdict.candidate.recent,
                )
            return verdict
        finally:
            await self.shared.release(self.holder)

    async def _attempt(self) -> Verdict | None:
        labels = await self.labels.transfer_labels()
        self.seen_at_last_attempt = len(labels)
        self.last_attempt_at = self.clock()
        new = [label for label in labels if label.label_id not in self.known]
        if not new:
            return None
        n_recent = max(1, math.ceil(len(new) * self.recent_share))
        recent = new[-n_recent:]
        held = {label.label_id for label in recent}
        job = Job(
            train=(
                *self.shipped_train,
                *(Example(x.text, x.department) for x in labels if x.label_id not in held),
            ),
            held_out=tuple(self.held_out),
            recent=tuple(Example(x.text, x.department) for x in recent),
            current=self.live.current,
        )
        try:
            trained = await self.train(job)
        except Exception:
            self.metrics.retrains.labels("failed").inc()
            log.exception("classifier retrain failed; the model in use stays")
            return Verdict("failed")
        return self._judge(trained, labels, len(new), len(recent))

    def _judge(
        self, trained: Trained, labels: Sequence[TransferLabel], n_new: int, n_recent: int
    ) -> Verdict:
        cand, cur = trained.candidate_scores, trained.current_scores
        switch = not_worse(cand, cur, epsilon=self.epsilon)
        outcome: Outcome = "switched" if switch else "refused"
        previous = self.live.version
        if switch:
            self.live.swap(trained.candidate)
            self.known = frozenset(label.label_id for label in labels)
        self.metrics.retrains.labels(outcome).inc()
        self.metrics.fit_seconds.observe(trained.fit_seconds)
        for model, scores in (("candidate", cand), ("current", cur)):
            self.metrics.accuracy.labels(model, "held_out").set(scores.held_out)
            self.metrics.accuracy.labels(model, "recent").set(scores.recent)
        log.info(
            "classifier %s",
            "switched" if switch else "candidate refused",
            extra={
                "outcome": outcome,
                "model_version": previous,
                "candidate_version": trained.candidate.version,
                "held_out_accuracy": round(cur.held_out, 4),
                "candidate_held_out_accuracy": round(cand.held_out, 4),
                "recent_accuracy": round(cur.recent, 4),
                "candidate_recent_accuracy": round(cand.recent, 4),
                "epsilon": self.epsilon,
                "new_labels": n_new,
                "recent_labels": n_recent,
                "fit_seconds": round(trained.fit_seconds, 1),
            },
        )
        return Verdict(outcome, cand, cur, trained.candidate.version)

    async def learn_forever(self, interval: float) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("classifier learning check failed; will try again")
            await asyncio.sleep(interval)
