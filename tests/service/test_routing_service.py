"""routing's handlers against the real MongoDB-wire server, with a recording publisher."""

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from routing.catalogue import Catalogue
from routing.classifier import Classifier
from routing.deadlines import calendar
from routing.handlers import Routing, RoutingMetrics
from routing.lifecycle import Lifecycle
from routing.store import MongoRoutingStore
from routing.texts import shipped
from schemas import ComplaintFiled, topics
from schemas.commands import ResolveComplaint, StartReview, StartSiteCheck
from schemas.common import Location, Resident
from schemas.events import utcnow
from services.mongo import Document
from tests.fakes.routing import RecordingPublish

DEPT = "resource-circulation"


@pytest.fixture
async def routing(
    mongo_db: AsyncDatabase[Document], trained_classifier: Classifier
) -> tuple[Routing, RecordingPublish]:
    store = MongoRoutingStore(mongo_db)
    await store.ensure_indexes()
    recorder = RecordingPublish()
    duplicates: list[str] = []
    service = Routing(
        store=store,
        catalogue=Catalogue.load(),
        lifecycle=Lifecycle(),
        texts=shipped(),
        publish=recorder,
        metrics=RoutingMetrics(CollectorRegistry()),
        calendar=calendar(),
        classifier=trained_classifier,
        on_duplicate=duplicates.append,
        clock=utcnow,
    )
    return service, recorder


def filed(
    complaint_id: str, body: str = "이불 버리려면 어떻게 해요", dong: str = "청라2동"
) -> ComplaintFiled:
    return ComplaintFiled(
        complaint_id=complaint_id,
        receipt_number="261125-000001",
        tracking_token_hash="0" * 64,
        channel="web",
        resident=Resident(name="홍길동"),
        body=body,
        location=Location(dong=dong),
        submitted_at=datetime.now(UTC),
    )


async def test_filing_routes_and_assigns_in_three_events(
    routing: tuple[Routing, RecordingPublish],
) -> None:
    service, recorder = routing
    await service.on_filed(filed("c1"))
    events = recorder.lifecycle("c1")
    assert [(e.sequence, e.to_state.value) for e in events] == [
        (1, "received"),
        (2, "assigned"),
        (3, "handler_assigned"),
    ]
    assert all(e.due_at == events[0].due_at and e.due_at is not None for e in events)
    assert events[1].department == "resource-circulation"
    assert events[1].auto_routed is True
    assert events[2].handler is not None
    assert "청라2동" in next(
        h.areas
        for h in service.catalogue.rosters["resource-circulation"]
        if h.handler_id == events[2].handler.handler_id
    )


async def test_the_same_filed_event_twice_changes_nothing(
    routing: tuple[Routing, RecordingPublish],
) -> None:
    service, recorder = routing
    event = filed("c2")
    await service.on_filed(event)
    await service.on_filed(event)
    assert len(recorder.lifecycle("c2")) == 3


async def test_commands_move_the_complaint_once_each(
    routing: tuple[Routing, RecordingPublish],
) -> None:
    service, recorder = routing
    await service.on_filed(filed("c3"))
    site = StartSiteCheck(actor=DEPT, complaint_id="c3")
    await service.on_command(site)
    await service.on_command(site)
    await service.on_command(StartReview(actor=DEPT, complaint_id="c3"))
    await service.on_command(ResolveComplaint(actor=DEPT, complaint_id="c3", note="처리함"))
    states = [e.to_state.value for e in recorder.lifecycle("c3")]
    assert states == [
        "received",
        "assigned",
        "handler_assigned",
        "site_check",
        "reviewing",
        "resolved",
    ]
    assert [e.sequence for e in recorder.lifecycle("c3")] == [1, 2, 3, 4, 5, 6]


async def test_illegal_and_unknown_commands_are_rejected_with_reasons(
    routing: tuple[Routing, RecordingPublish],
) -> None:
    service, recorder = routing
    await service.on_filed(filed("c4"))
    bad = ResolveComplaint(actor=DEPT, complaint_id="c4")
    await service.on_command(bad)
    await service.on_command(StartReview(actor=DEPT, complaint_id="nope"))
    rejections = [e for t, e in recorder.sent if t == topics.REJECTIONS]
    assert [(r.complaint_id, r.code) for r in rejections] == [
        ("c4", "result_required"),
        ("nope", "unknown_complaint"),
    ]
    assert rejections[0].command_id == bad.event_id
    assert len(recorder.lifecycle("c4")) == 3
    stored = await service.store.get("c4")
    assert stored is not None
    assert stored.state.value == "handler_assigned"


async def test_a_crash_before_publishing_leaves_the_events_to_the_relay(
    routing: tuple[Routing, RecordingPublish],
) -> None:
    service, recorder = routing
    recorder.fail_next = 1
    with pytest.raises(ConnectionError):
        await service.on_filed(filed("c5"))
    assert recorder.lifecycle("c5") == []
    for record in await service.store.pending_outboxes():
        await service.flush(record)
    events = recorder.lifecycle("c5")
    assert [e.sequence for e in events] == [1, 2, 3]
    await service.on_filed(filed("c5"))  # the redelivery after the crash
    assert [e.event_id for e in recorder.lifecycle("c5")] == [e.event_id for e in events]
    assert await service.store.pending_outboxes() == []


async def test_loads_spread_complaints_and_survive_in_the_store(
    routing: tuple[Routing, RecordingPublish],
) -> None:
    service, _recorder = routing
    for i in range(3):
        await service.on_filed(filed(f"load{i}", body="가로등이 고장났어요", dong="연희동"))
    loads = await service.store.loads([h.handler_id for h in service.catalogue.rosters["roads"]])
    assert sum(load.open for load in loads.values()) == 3
    await service.on_command(ResolveComplaint(actor="roads", complaint_id="load0", note="교체함"))
    loads = await service.store.loads([h.handler_id for h in service.catalogue.rosters["roads"]])
    assert sum(load.open for load in loads.values()) == 2
    assert sum(load.total for load in loads.values()) == 3
