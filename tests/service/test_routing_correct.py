"""정정 and 만족도 through routing's composition root on the real embedded Kafka and MongoDB:
a correction of the 행정동 moves the complaint to the handler who covers it, once, and the
stored complaint keeps the corrected facts; a rating is taken once per resolution."""

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from routing.app import create_app
from routing.assignment import Load
from routing.catalogue import Catalogue
from routing.classifier import Classifier
from routing.settings import RoutingSettings
from routing.store import MongoRoutingStore
from schemas import CommandRejected, ComplaintFiled, topics
from schemas.commands import (
    AnyCommand,
    CorrectComplaint,
    RateComplaint,
    ResolveComplaint,
    StartSiteCheck,
)
from schemas.common import Location
from services.broker import publish_event
from services.mongo import Document
from tests.conftest import FAST_RETRY, Backends
from tests.fakes.routing import RecordingPublish, SettableClock
from tests.service.test_routing_app import until
from tests.service.test_routing_service import DEPT, filed


def rejected(recorder: RecordingPublish, complaint_id: str) -> list[str]:
    return [
        e.code
        for t, e in recorder.sent
        if t == topics.REJECTIONS
        and isinstance(e, CommandRejected)
        and e.complaint_id == complaint_id
    ]


async def test_a_corrected_dong_reassigns_on_the_real_broker_and_store(
    backends: Backends,
    mongo_db: AsyncDatabase[Document],
    trained_classifier: Classifier,
    unique: str,
) -> None:
    settings = RoutingSettings(
        kafka=backends.kafka(f"c{unique}."),
        mongo=backends.mongo(mongo_db.name),
        retry=FAST_RETRY,
        http_port=0,
        relay_interval_seconds=600,
        deadline_scan_interval_seconds=600,
    )
    store, recorder, clock = MongoRoutingStore(mongo_db), RecordingPublish(), SettableClock()
    app = create_app(
        settings, store=store, publish=recorder, clock=clock, classifier=trained_classifier
    )
    roster = Catalogue.load().rosters[DEPT]
    first = next(h for h in roster if "청라2동" in h.areas)
    second = next(h for h in roster if "청라3동" in h.areas)
    assert first.handler_id != second.handler_id
    producer = KafkaBroker(backends.kafka_bootstrap)

    async def send(topic: str, message: ComplaintFiled | AnyCommand) -> None:
        await publish_event(producer, settings.kafka, topic, message, source="/sotong/test")

    def count() -> int:
        return len(recorder.lifecycle("k1"))

    correction = CorrectComplaint(
        actor="resident", complaint_id="k1", dong="청라3동", address="인천 서구 청라대로 99"
    )
    async with app.router.lifespan_context(app):
        await producer.connect()
        try:
            complaint = filed("k1", dong="청라2동").model_copy(
                update={"location": Location(dong="청라2동", address="인천 서구 청라대로 1")}
            )
            await send(topics.FILED, complaint)
            await until(lambda: count() == 3, "filed → 3 events")
            await send(topics.COMMANDS, correction)
            await until(lambda: count() == 5, "correct → correct and reassign")
            await send(topics.COMMANDS, correction)  # redelivered, or sent twice
            await send(topics.COMMANDS, StartSiteCheck(actor=DEPT, complaint_id="k1"))
            await until(lambda: count() == 6, "the site check")
            late = CorrectComplaint(actor="resident", complaint_id="k1", dong="청라2동")
            await send(topics.COMMANDS, late)
            await until(lambda: rejected(recorder, "k1") == ["correction_closed"], "refusal")
            await send(
                topics.COMMANDS, RateComplaint(actor="resident", complaint_id="k1", rating=5)
            )
            await until(lambda: len(rejected(recorder, "k1")) == 2, "rating refused")
            await send(
                topics.COMMANDS, ResolveComplaint(actor=DEPT, complaint_id="k1", note="치웠습니다")
            )
            await until(lambda: count() == 7, "resolved")
            for score in (4, 1):
                await send(
                    topics.COMMANDS,
                    RateComplaint(actor="resident", complaint_id="k1", rating=score),
                )
            await until(lambda: len(rejected(recorder, "k1")) == 3, "second rating refused")
        finally:
            await producer.stop()

    events = recorder.lifecycle("k1")
    assert [e.trigger for e in events] == [
        "file",
        "assign",
        "assign_handler",
        "correct",
        "reassign",
        "start_site_check",
        "resolve",
        "rate",
    ]
    corrected, reassigned = events[3], events[4]
    assert corrected.correction is not None
    assert (corrected.correction.fields, corrected.correction.dong) == (
        ["address", "dong"],
        "청라3동",
    )
    assert "청라대로" not in corrected.model_dump_json()
    assert corrected.handler is not None
    assert corrected.handler.handler_id == first.handler_id
    assert reassigned.handler is not None
    assert reassigned.handler.handler_id == second.handler_id
    assert (reassigned.actor, reassigned.department) == ("routing", DEPT)
    assert events[-1].rating is not None
    assert events[-1].rating.score == 4
    assert rejected(recorder, "k1") == ["correction_closed", "not_resolved", "already_rated"]
    stored = await store.get("k1")
    assert stored is not None
    assert (stored.area, stored.address, stored.rated) == ("청라3동", "인천 서구 청라대로 99", True)
    assert stored.handler is not None
    assert stored.handler.handler_id == second.handler_id
    loads = await store.loads([first.handler_id, second.handler_id])
    # the move is counted: the first handler no longer holds it, the second holds it resolved
    assert loads[first.handler_id] == Load(open=0, total=0)
    assert loads[second.handler_id] == Load(open=0, total=1)
