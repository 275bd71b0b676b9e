"""Learning while routing runs, on the real embedded Kafka and MongoDB: enough transfers
arrive, a candidate is fitted in its own process and scored, routing switches to it, and
a later assignment names the new model; routing started again (a restart, or another
replica) uses that model from the shared store without fitting."""

import asyncio
from collections.abc import Callable

import pytest
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from routing.app import create_app
from routing.classifier import fingerprint, load_examples, split
from routing.settings import RoutingSettings
from routing.store import MongoRoutingStore
from schemas import ComplaintFiled, ComplaintStatusChanged, topics
from schemas.commands import AnyCommand, TransferComplaint
from services.broker import publish_event
from services.mongo import Document
from tests.conftest import FAST_RETRY, MODEL_DIR, Backends
from tests.fakes.routing import RecordingPublish
from tests.service.test_routing_service import filed

TRANSFERS = 10
TEXTS = [
    "공원 잔디밭에서 드론을 날려서 위험해요",
    "근린공원 하늘에 드론이 낮게 날아다녀요",
    "공원 산책로 위로 드론 비행이 잦아요",
    "어린이공원에서 드론 조종하는 사람이 있어요",
    "호수공원 위에 드론이 계속 떠 있어요",
    "체육공원에서 드론 날리는 동호회가 있어요",
    "공원 놀이터 근처 드론 비행 단속해 주세요",
    "공원 광장에서 밤에 드론을 띄워요",
    "둘레길 공원 구간에서 드론이 시끄럽게 날아요",
    "수변공원에서 드론 촬영을 하고 있어요",
]


async def until(check: Callable[[], bool], what: str, seconds: float) -> None:
    for _ in range(int(seconds / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def assignment(recorder: RecordingPublish, complaint_id: str) -> ComplaintStatusChanged:
    (assigned,) = [e for e in recorder.lifecycle(complaint_id) if e.trigger == "assign"]
    return assigned


@pytest.mark.timeout(900)  # two fits on a busy two-core machine: tens of seconds each
async def test_enough_transfers_retrain_and_a_later_assignment_names_the_new_model(
    backends: Backends, mongo_db: AsyncDatabase[Document], unique: str
) -> None:
    settings = RoutingSettings(
        kafka=backends.kafka(f"l{unique}."),
        mongo=backends.mongo(mongo_db.name),
        retry=FAST_RETRY,
        http_port=0,
        relay_interval_seconds=600,
        deadline_scan_interval_seconds=600,
        model_dir=MODEL_DIR,
        learning_min_new_labels=TRANSFERS,
        learning_min_interval_seconds=0,
        learning_check_interval_seconds=0.2,
        learning_niceness=0,
    )
    recorder = RecordingPublish()
    app = create_app(settings, store=MongoRoutingStore(mongo_db), publish=recorder)
    registry: CollectorRegistry = app.state.runtime.registry
    producer = KafkaBroker(backends.kafka_bootstrap)

    async def send(topic: str, message: ComplaintFiled | AnyCommand) -> None:
        await publish_event(producer, settings.kafka, topic, message, source="/sotong/test")

    def retrains(outcome: str) -> float:
        value = registry.get_sample_value("sotong_classifier_retrains_total", {"outcome": outcome})
        return value or 0.0

    async with app.router.lifespan_context(app):
        await producer.connect()
        try:
            await send(topics.FILED, filed("before", body="가로등이 며칠째 꺼져 있어요"))
            for n, text in enumerate(TEXTS):
                await send(topics.FILED, filed(f"t{n}", body=text))
            await until(lambda: len(recorder.lifecycle("before")) == 3, "the first filing", 60)
            await until(
                lambda: all(len(recorder.lifecycle(f"t{n}")) == 3 for n in range(TRANSFERS)),
                "the filings to transfer",
                60,
            )
            first = assignment(recorder, "before").model_version
            train, _ = split(load_examples())
            assert first == fingerprint(train)  # the start-up model: shipped training split

            # the district decides drones over parks are the transport department's
            assert "transport" not in {
                assignment(recorder, f"t{n}").department for n in range(TRANSFERS)
            }
            for n in range(TRANSFERS):
                await send(
                    topics.COMMANDS,
                    TransferComplaint(
                        actor=assignment(recorder, f"t{n}").department or "",
                        complaint_id=f"t{n}",
                        to_department="transport",
                        note="드론 비행은 교통행정과 소관",
                    ),
                )
            await until(
                lambda: retrains("switched") + retrains("refused") + retrains("failed") >= 1,
                "a retrain",
                840,
            )
            assert (retrains("refused"), retrains("failed")) == (0, 0)
            assert retrains("switched") == 1
            held_out = registry.get_sample_value(
                "sotong_classifier_accuracy", {"model": "candidate", "split": "held_out"}
            )
            assert held_out is not None
            assert held_out >= 0.9

            await send(topics.FILED, filed("after", body="가로등이 며칠째 꺼져 있어요"))
            await until(lambda: len(recorder.lifecycle("after")) == 3, "the later filing", 60)
        finally:
            await producer.stop()

    later = assignment(recorder, "after").model_version
    assert later is not None
    assert later != first
    assert (await MongoRoutingStore(mongo_db).count_transfers()) == TRANSFERS

    again = RecordingPublish()
    restarted = create_app(settings, store=MongoRoutingStore(mongo_db), publish=again)
    async with restarted.router.lifespan_context(restarted):
        await producer.connect()
        try:
            await send(topics.FILED, filed("restarted", body="가로등이 며칠째 꺼져 있어요"))
            await until(lambda: len(again.lifecycle("restarted")) == 3, "a filing after", 60)
        finally:
            await producer.stop()
    assert assignment(again, "restarted").model_version == later
    followed = restarted.state.runtime.registry.get_sample_value("sotong_classifier_followed_total")
    assert followed == 1.0
