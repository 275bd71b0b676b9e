"""Learning from transfers in memory: when a retrain is tried, which labels it trains and
scores on, the not-worse rule, and the switch seen in the next routing decision. The
trainer is a fake that returns chosen scores (the real one fits in another process and
is exercised in the service tier)."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from routing.classifier import Classifier, Example, Prediction
from routing.learning import (
    Job,
    Learner,
    LearningMetrics,
    LiveModel,
    Scores,
    Trained,
    not_worse,
)
from routing.models import Pointer
from routing.models import Shared as SharedModel
from routing.store import Transfer
from tests.fakes.routing import InMemoryRoutingStore, SettableClock
from tests.unit.test_routing_handlers import CATALOGUE, DEPT, filed, harness

SHIPPED_TRAIN = (Example("이불 버리려면", DEPT), Example("주차 단속", "parking"))
HELD_OUT = (Example("소파 버리기", DEPT), Example("불법 주차", "parking"))


class Fixed(Classifier):
    """Answers one department for every text, under its own version; never fitted."""

    def __init__(self, department: str, version: str) -> None:
        super().__init__(threshold=0.75, general_desk=CATALOGUE.general_desk)
        self.department = department
        self.version = version

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        return [Prediction(self.department, 0.9, True, self.version) for _ in texts]


@dataclass
class FakeTrainer:
    """Returns the candidate and the scores a test chose, and keeps the jobs it got."""

    candidate: Classifier
    candidate_scores: Scores
    current_scores: Scores
    jobs: list[Job] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, job: Job) -> Trained:
        self.jobs.append(job)
        if self.fail:
            raise RuntimeError("the fit ran out of memory")
        return Trained(self.candidate, self.candidate_scores, self.current_scores, 12.5)


@dataclass
class Setup:
    learner: Learner
    store: InMemoryRoutingStore
    clock: SettableClock
    trainer: FakeTrainer
    registry: CollectorRegistry

    async def transfers(self, n: int, start: int = 0) -> None:
        for i in range(start, start + n):
            await self.store.record_transfer(
                Transfer(
                    caused_by=f"cmd-{i:03d}",
                    complaint_id=f"c{i}",
                    text=f"공원 드론 소음 {i}",
                    from_department="environment",
                    to_department="parks",
                    reason="소관 아님",
                    at=self.clock.now + timedelta(seconds=i),
                )
            )

    def counted(self, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "sotong_classifier_retrains_total", {"outcome": outcome}
        )
        return value or 0.0


BETTER = Scores(held_out=0.925, recent=0.9)
CURRENT = Scores(held_out=0.93, recent=0.4)


def setup(
    candidate_scores: Scores = BETTER,
    current_scores: Scores = CURRENT,
    *,
    min_interval: timedelta = timedelta(0),
) -> Setup:
    store, clock, registry = InMemoryRoutingStore(), SettableClock(), CollectorRegistry()
    trainer = FakeTrainer(Fixed("parks", "v-new"), candidate_scores, current_scores)
    learner = Learner(
        live=LiveModel(Fixed(DEPT, "v-old")),
        labels=store,
        train=trainer,
        shipped_train=SHIPPED_TRAIN,
        held_out=HELD_OUT,
        metrics=LearningMetrics(registry),
        clock=clock,
        min_new_labels=10,
        min_interval=min_interval,
        epsilon=0.01,
        recent_share=0.2,
    )
    return Setup(learner, store, clock, trainer, registry)


@pytest.mark.parametrize(
    ("candidate", "current", "expected"),
    [
        (Scores(0.93, 0.5), Scores(0.93, 0.5), True),  # equal is not worse
        (Scores(0.92, 0.9), Scores(0.93, 0.5), True),  # within epsilon on held-out
        (Scores(0.919, 0.9), Scores(0.93, 0.5), False),  # beyond epsilon on held-out
        (Scores(0.99, 0.49), Scores(0.93, 0.5), False),  # any loss on recent transfers
    ],
)
def test_not_worse_allows_epsilon_on_held_out_and_nothing_on_recent_transfers(
    candidate: Scores, current: Scores, expected: bool
) -> None:
    assert not_worse(candidate, current, epsilon=0.01) is expected


async def test_no_retrain_until_enough_new_labels_arrived() -> None:
    s = setup()
    await s.transfers(9)
    assert await s.learner.step() is None
    assert s.trainer.jobs == []
    await s.transfers(1, start=9)
    verdict = await s.learner.step()
    assert verdict is not None
    assert len(s.trainer.jobs) == 1


async def test_labels_the_model_in_use_was_built_from_are_not_new() -> None:
    s = setup()
    await s.transfers(12)
    s.learner.starting_from(await s.store.transfer_labels())
    await s.transfers(9, start=12)
    assert await s.learner.step() is None
    await s.transfers(1, start=21)
    assert await s.learner.step() is not None


async def test_the_newest_share_of_new_labels_is_held_out_of_the_candidates_training() -> None:
    s = setup()
    await s.transfers(5)
    s.learner.starting_from(await s.store.transfer_labels())
    await s.transfers(10, start=5)
    await s.learner.step()
    (job,) = s.trainer.jobs
    assert job.recent == tuple(Example(f"공원 드론 소음 {i}", "parks") for i in (13, 14))
    assert job.train == (
        *SHIPPED_TRAIN,
        *(Example(f"공원 드론 소음 {i}", "parks") for i in range(13)),
    )
    assert job.held_out == HELD_OUT
    assert not set(job.held_out) & set(job.train)
    assert job.current.version == "v-old"


async def test_a_worse_candidate_is_refused_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = setup(candidate_scores=Scores(held_out=0.90, recent=0.9))
    await s.transfers(10)
    with caplog.at_level(logging.INFO, logger="sotong.routing.learning"):
        verdict = await s.learner.step()
    assert verdict is not None
    assert verdict.outcome == "refused"
    assert s.learner.live.version == "v-old"
    assert (s.counted("refused"), s.counted("switched")) == (1.0, 0.0)
    (record,) = [r for r in caplog.records if r.name == "sotong.routing.learning"]
    assert record.__dict__["outcome"] == "refused"
    assert record.__dict__["held_out_accuracy"] == 0.93
    assert record.__dict__["candidate_held_out_accuracy"] == 0.9
    assert record.__dict__["recent_accuracy"] == 0.4
    assert record.__dict__["candidate_recent_accuracy"] == 0.9
    assert (record.__dict__["model_version"], record.__dict__["candidate_version"]) == (
        "v-old",
        "v-new",
    )


async def test_a_refused_candidate_is_not_fitted_again_on_the_same_labels() -> None:
    s = setup(candidate_scores=Scores(held_out=0.93, recent=0.1))
    await s.transfers(10)
    assert (await s.learner.step()) is not None
    assert await s.learner.step() is None
    await s.transfers(10, start=10)
    verdict = await s.learner.step()
    assert verdict is not None
    assert len(s.trainer.jobs[1].recent) == 4  # 20 labels the model in use never saw


async def test_retrains_are_spaced_by_the_minimum_interval() -> None:
    s = setup(candidate_scores=Scores(held_out=0.93, recent=0.1), min_interval=timedelta(hours=1))
    await s.transfers(10)
    assert await s.learner.step() is not None
    await s.transfers(10, start=10)
    s.clock.now += timedelta(minutes=59)
    assert await s.learner.step() is None
    s.clock.now += timedelta(minutes=1)
    assert await s.learner.step() is not None


async def test_a_failed_fit_keeps_the_model_in_use_and_is_counted() -> None:
    s = setup()
    s.trainer.fail = True
    await s.transfers(10)
    verdict = await s.learner.step()
    assert verdict is not None
    assert verdict.outcome == "failed"
    assert s.learner.live.version == "v-old"
    assert s.counted("failed") == 1.0


async def test_a_better_candidate_is_switched_and_the_next_decision_names_it() -> None:
    s = setup()
    h = harness()
    h.routing.classifier = s.learner.live
    await h.routing.on_filed(filed("before"))
    assert h.sent.lifecycle("before")[1].model_version == "v-old"
    assert h.sent.lifecycle("before")[1].department == DEPT

    await s.transfers(10)
    verdict = await s.learner.step()
    assert verdict is not None
    assert (verdict.outcome, verdict.version) == ("switched", "v-new")
    assert s.counted("switched") == 1.0
    gauge = s.registry.get_sample_value(
        "sotong_classifier_accuracy", {"model": "candidate", "split": "recent"}
    )
    assert gauge == 0.9

    await h.routing.on_filed(filed("after"))
    assigned = h.sent.lifecycle("after")[1]
    assert (assigned.department, assigned.model_version) == ("parks", "v-new")
    # every label now counts as known: the next retrain waits for ten more
    await s.transfers(9, start=10)
    assert await s.learner.step() is None


async def test_a_service_code_decides_without_a_model_version() -> None:
    h = harness()
    h.routing.classifier = LiveModel(Fixed(DEPT, "v-old"))
    await h.routing.on_filed(filed(service_code="noise"))
    assert h.sent.lifecycle("c1")[1].model_version is None


# -- several routing processes: one fits at a time, all use the switched model ------------


@dataclass
class FakeShared:
    """The shared store in memory: a lease, a pointer and the published models."""

    models: dict[str, tuple[Classifier, frozenset[str]]] = field(default_factory=dict)
    current: Pointer | None = None
    holder: str | None = None
    loads: int = 0
    loadable: bool = True

    async def acquire(self, holder: str, now: datetime, ttl: timedelta) -> bool:
        if self.holder not in (None, holder):
            return False
        self.holder = holder
        return True

    async def release(self, holder: str) -> None:
        if self.holder == holder:
            self.holder = None

    async def pointer(self) -> Pointer | None:
        return self.current

    async def share(
        self,
        model: Classifier,
        known: Sequence[str],
        *,
        now: datetime,
        held_out: float | None = None,
        recent: float | None = None,
    ) -> Pointer:
        assert model.version is not None
        self.models[model.version] = (model, frozenset(known))
        self.current = Pointer(model.version, "env", "sha", now, held_out, recent)
        return self.current

    async def load(
        self, pointer: Pointer, *, threshold: float, general_desk: str
    ) -> SharedModel | None:
        self.loads += 1
        if not self.loadable:
            return None
        model, known = self.models[pointer.version]
        return SharedModel(model, known)


def sharing(shared: FakeShared, name: str, store: InMemoryRoutingStore | None = None) -> Setup:
    s = setup()
    if store is not None:
        s.store = store
        s.learner.labels = store
    s.learner.shared, s.learner.holder = shared, name
    return s


async def test_a_model_one_process_switched_to_is_followed_by_the_others() -> None:
    shared, store = FakeShared(), InMemoryRoutingStore()
    a, b = sharing(shared, "a", store), sharing(shared, "b", store)
    await a.transfers(10)

    verdict = await a.learner.step()
    assert verdict is not None
    assert verdict.outcome == "switched"
    assert shared.current is not None
    assert shared.current.version == "v-new"
    assert shared.holder is None  # released after the fit

    assert await b.learner.step() is None  # followed, and nothing new to fit on
    assert b.learner.live.version == "v-new"
    assert b.trainer.jobs == []
    assert b.learner.known == a.learner.known
    assert b.registry.get_sample_value("sotong_classifier_followed_total") == 1.0


async def test_while_one_process_fits_the_others_skip_their_turn() -> None:
    shared, store = FakeShared(), InMemoryRoutingStore()
    a, b = sharing(shared, "a", store), sharing(shared, "b", store)
    await a.transfers(10)
    await shared.acquire("a", a.clock.now, timedelta(minutes=15))  # a is fitting

    assert await b.learner.step() is None
    assert b.trainer.jobs == []
    assert b.learner.live.version == "v-old"


async def test_a_restarted_process_starts_from_the_shared_model() -> None:
    shared, store = FakeShared(), InMemoryRoutingStore()
    first = sharing(shared, "first", store)
    await first.transfers(10)
    await first.learner.step()

    restarted = sharing(shared, "again", store)
    assert await restarted.learner.follow()
    assert restarted.learner.live.version == "v-new"
    assert restarted.learner.known == first.learner.known


async def test_a_shared_model_this_process_cannot_load_is_not_tried_at_every_check() -> None:
    shared, store = FakeShared(), InMemoryRoutingStore()
    a, b = sharing(shared, "a", store), sharing(shared, "b", store)
    await a.transfers(10)
    await a.learner.step()
    shared.loadable = False  # b is another version of routing

    assert not await b.learner.follow()
    assert not await b.learner.follow()
    assert shared.loads == 1
    assert b.learner.live.version == "v-old"
