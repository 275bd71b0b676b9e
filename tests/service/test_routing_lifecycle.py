"""The whole lifecycle through routing's handlers, on the real MongoDB-wire server."""

from datetime import datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from routing.catalogue import Catalogue
from routing.classifier import Classifier
from routing.deadlines import KST, calendar
from routing.handlers import Routing, RoutingMetrics
from routing.lifecycle import Lifecycle
from routing.store import MongoRoutingStore, TransferExample
from routing.texts import shipped
from schemas import CommandRejected, ComplaintStatusChanged, topics
from schemas.commands import (
    CloseComplaint,
    ExtendDeadline,
    ProvideInfo,
    ReassignHandler,
    RejectComplaint,
    ReopenComplaint,
    RequestInfo,
    ResolveComplaint,
    StartSiteCheck,
    TransferComplaint,
    WithdrawComplaint,
)
from services.mongo import Document
from tests.fakes.routing import RecordingPublish, SettableClock
from tests.service.test_routing_service import DEPT, filed


@pytest.fixture
async def setup(
    mongo_db: AsyncDatabase[Document], trained_classifier: Classifier
) -> tuple[Routing, RecordingPublish, SettableClock]:
    store = MongoRoutingStore(mongo_db)
    await store.ensure_indexes()
    recorder, clock = RecordingPublish(), SettableClock()
    service = Routing(
        store=store,
        catalogue=Catalogue.load(),
        lifecycle=Lifecycle(),
        texts=shipped(),
        publish=recorder,
        metrics=RoutingMetrics(CollectorRegistry()),
        calendar=calendar(),
        classifier=trained_classifier,
        on_duplicate=lambda _: None,
        clock=clock,
    )
    return service, recorder, clock


async def new(service: Routing, complaint_id: str, clock: SettableClock) -> None:
    event = filed(complaint_id).model_copy(update={"occurred_at": clock.now})
    await service.on_filed(event)


def rejections(recorder: RecordingPublish) -> list[str]:
    return [
        e.code
        for t, e in recorder.sent
        if t == topics.REJECTIONS and isinstance(e, CommandRejected)
    ]


def last(recorder: RecordingPublish, complaint_id: str) -> ComplaintStatusChanged:
    return recorder.lifecycle(complaint_id)[-1]


async def test_transfer_lands_at_the_new_department_with_a_new_handler(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "t1", clock)
    await service.on_command(
        TransferComplaint(
            actor=DEPT, complaint_id="t1", to_department="environment", note="악취 민원"
        )
    )
    moved, handled = recorder.lifecycle("t1")[-2:]
    assert (moved.trigger, moved.to_state.value, moved.department) == (
        "transfer",
        "assigned",
        "environment",
    )
    assert moved.note == "악취 민원"
    assert (handled.to_state.value, handled.department) == ("handler_assigned", "environment")
    assert handled.handler is not None
    assert handled.handler.handler_id.startswith("environment-")
    assert await service.store.transfer_examples() == [
        TransferExample(text="이불 버리려면 어떻게 해요", department="environment")
    ]
    # the old department may no longer act; the new one may
    await service.on_command(StartSiteCheck(actor=DEPT, complaint_id="t1"))
    await service.on_command(StartSiteCheck(actor="environment", complaint_id="t1"))
    assert rejections(recorder) == ["not_responsible"]
    assert last(recorder, "t1").to_state.value == "site_check"


@pytest.mark.parametrize(
    ("to", "code"), [(DEPT, "same_department"), ("no-such-dept", "unknown_department")]
)
async def test_transfer_needs_another_known_department(
    setup: tuple[Routing, RecordingPublish, SettableClock], to: str, code: str
) -> None:
    service, recorder, clock = setup
    await new(service, "t2", clock)
    await service.on_command(
        TransferComplaint(actor=DEPT, complaint_id="t2", to_department=to, note="사유")
    )
    assert rejections(recorder) == [code]


async def test_info_request_pauses_the_clock_and_returns_where_it_was(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "i1", clock)
    due = last(recorder, "i1").due_at
    assert due is not None
    await service.on_command(StartSiteCheck(actor=DEPT, complaint_id="i1"))
    await service.on_command(
        RequestInfo(actor=DEPT, complaint_id="i1", note="정확한 위치 사진을 보내주세요")
    )
    assert last(recorder, "i1").to_state.value == "info_requested"
    clock.now += timedelta(days=1)  # Thursday 10:00: eight working hours later
    await service.on_command(
        ProvideInfo(actor="resident", complaint_id="i1", note="사진 첨부합니다")
    )
    resumed = last(recorder, "i1")
    assert resumed.to_state.value == "site_check"
    assert resumed.due_at is not None
    assert calendar().working_hours_between(due, resumed.due_at) == pytest.approx(8)


async def test_only_the_resident_answers_withdraws_or_reopens(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "r1", clock)
    await service.on_command(WithdrawComplaint(actor=DEPT, complaint_id="r1"))
    await service.on_command(
        WithdrawComplaint(actor="resident", complaint_id="r1", note="해결됐어요")
    )
    assert rejections(recorder) == ["resident_only"]
    assert last(recorder, "r1").to_state.value == "withdrawn"


async def test_extensions_at_most_double_then_need_consent(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "e1", clock)
    due = last(recorder, "e1").due_at
    assert due is not None  # 7 working days: 2026-12-03 18:00
    too_far = datetime(2026, 12, 15, 18, 0, tzinfo=KST)  # 15 working days
    await service.on_command(
        ExtendDeadline(actor=DEPT, complaint_id="e1", new_due_at=too_far, note="현장 조사")
    )
    within = datetime(2026, 12, 14, 18, 0, tzinfo=KST)  # 14 working days: exactly double
    await service.on_command(
        ExtendDeadline(actor=DEPT, complaint_id="e1", new_due_at=within, note="현장 조사")
    )
    extended = last(recorder, "e1")
    assert (extended.trigger, extended.to_state.value, extended.due_at) == (
        "extend",
        "handler_assigned",
        within,
    )
    later = datetime(2026, 12, 24, 18, 0, tzinfo=KST)
    await service.on_command(
        ExtendDeadline(actor=DEPT, complaint_id="e1", new_due_at=later, note="추가 조사")
    )
    await service.on_command(
        ExtendDeadline(
            actor=DEPT, complaint_id="e1", new_due_at=later, note="추가 조사", resident_consent=True
        )
    )
    await service.on_command(
        ExtendDeadline(
            actor=DEPT, complaint_id="e1", new_due_at=within, note="앞당김", resident_consent=True
        )
    )
    assert rejections(recorder) == ["extension_too_long", "consent_required", "due_not_later"]
    assert last(recorder, "e1").due_at == later


async def test_reject_carries_the_reason_and_the_remedy(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "j1", clock)
    await service.on_command(RejectComplaint(actor=DEPT, complaint_id="j1"))
    await service.on_command(
        RejectComplaint(
            actor=DEPT,
            complaint_id="j1",
            note="사유지 내 문제",
            remedy="행정심판을 청구할 수 있습니다",
        )
    )
    rejected = last(recorder, "j1")
    assert rejections(recorder) == ["reason_required"]
    assert (rejected.to_state.value, rejected.note, rejected.remedy) == (
        "rejected",
        "사유지 내 문제",
        "행정심판을 청구할 수 있습니다",
    )


async def test_reopen_goes_back_to_the_same_handler_with_a_new_deadline(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "o1", clock)
    handler = last(recorder, "o1").handler
    await service.on_command(ResolveComplaint(actor=DEPT, complaint_id="o1", note="수거 완료"))
    await service.on_command(CloseComplaint(actor=DEPT, complaint_id="o1"))
    clock.now = datetime(2026, 12, 7, 9, 0, tzinfo=KST)
    await service.on_command(
        ReopenComplaint(actor="resident", complaint_id="o1", note="아직 그대로예요")
    )
    reopened = last(recorder, "o1")
    assert (reopened.trigger, reopened.to_state.value, reopened.handler) == (
        "reopen",
        "handler_assigned",
        handler,
    )
    assert reopened.due_at == datetime(2026, 12, 15, 18, 0, tzinfo=KST)
    record = await service.store.get("o1")
    assert record is not None
    assert record.reopen_count == 1


async def test_reassign_picks_another_or_the_named_handler(
    setup: tuple[Routing, RecordingPublish, SettableClock],
) -> None:
    service, recorder, clock = setup
    await new(service, "a1", clock)
    first = last(recorder, "a1").handler
    assert first is not None
    await service.on_command(ReassignHandler(actor=DEPT, complaint_id="a1"))
    second = last(recorder, "a1").handler
    assert second is not None
    assert second.handler_id != first.handler_id
    await service.on_command(ReassignHandler(actor=DEPT, complaint_id="a1", handler_id="nobody"))
    await service.on_command(
        ReassignHandler(actor=DEPT, complaint_id="a1", handler_id=first.handler_id)
    )
    assert rejections(recorder) == ["unknown_handler"]
    assert last(recorder, "a1").handler == first
    assert [e.sequence for e in recorder.lifecycle("a1")] == [1, 2, 3, 4, 5]
