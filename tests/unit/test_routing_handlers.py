"""routing's handlers in memory: the fake store, a recording publish, a fixed clock and a
stub classifier (the real one is trained only in the service tier)."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from routing.catalogue import Catalogue
from routing.classifier import Prediction
from routing.deadlines import KST, calendar
from routing.handlers import Routing, RoutingMetrics
from routing.lifecycle import Lifecycle
from routing.texts import TEXTS, RefusalCode, Texts, shipped
from schemas import CommandRejected, ComplaintDeadlineAlert, ComplaintFiled, topics
from schemas.commands import (
    CloseComplaint,
    ResolveComplaint,
    StartSiteCheck,
    TransferComplaint,
)
from schemas.common import Location, Resident
from schemas.states import ComplaintState
from tests.fakes.routing import InMemoryRoutingStore, RecordingPublish, SettableClock

DEPT = "resource-circulation"
CATALOGUE = Catalogue.load()


@dataclass
class StubClassifier:
    """Reads nothing: answers what it was told, and remembers what it was asked."""

    answer: Prediction = field(default_factory=lambda: Prediction(DEPT, 0.93, auto=True))
    asked: list[str] = field(default_factory=list)

    def predict(self, text: str) -> Prediction:
        self.asked.append(text)
        return self.answer

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        return [self.predict(text) for text in texts]


@dataclass
class Harness:
    routing: Routing
    store: InMemoryRoutingStore
    sent: RecordingPublish
    clock: SettableClock
    classifier: StubClassifier
    duplicates: list[str]

    def rejections(self) -> list[CommandRejected]:
        return [e for t, e in self.sent.sent if t == topics.REJECTIONS]


def harness(texts: Texts | None = None) -> Harness:
    texts = texts or shipped()
    store, sent, clock = InMemoryRoutingStore(), RecordingPublish(), SettableClock()
    classifier, duplicates = StubClassifier(), list[str]()
    routing = Routing(
        store=store,
        catalogue=CATALOGUE,
        lifecycle=Lifecycle(texts),
        texts=texts,
        publish=sent,
        metrics=RoutingMetrics(CollectorRegistry()),
        on_duplicate=duplicates.append,
        calendar=calendar(),
        classifier=classifier,
        clock=clock,
    )
    return Harness(routing, store, sent, clock, classifier, duplicates)


@pytest.fixture
def h() -> Harness:
    return harness()


def filed(complaint_id: str = "c1", **fields: Any) -> ComplaintFiled:
    return ComplaintFiled.model_validate(
        {
            "complaint_id": complaint_id,
            "receipt_number": "261125-000001",
            "tracking_token_hash": "0" * 64,
            "channel": "web",
            "resident": Resident(name="홍길동"),
            "title": "대형 폐기물",
            "body": "이불 버리려면 어떻게 해요",
            "location": Location(dong="청라2동"),
            "submitted_at": datetime(2026, 11, 25, 9, 58, tzinfo=KST),
            "occurred_at": datetime(2026, 11, 25, 9, 59, tzinfo=KST),
        }
        | fields
    )


async def test_a_filed_complaint_is_received_assigned_and_given_a_handler(h: Harness) -> None:
    complaint = filed()
    await h.routing.on_filed(complaint)
    events = h.sent.lifecycle("c1")
    assert [(e.sequence, e.from_state, e.to_state.value, e.trigger) for e in events] == [
        (1, None, "received", "file"),
        (2, "received", "assigned", "assign"),
        (3, "assigned", "handler_assigned", "assign_handler"),
    ]
    assert h.classifier.asked == ["대형 폐기물 이불 버리려면 어떻게 해요"]
    assert {e.occurred_at for e in events} == {h.clock.now}
    assert {e.caused_by for e in events} == {complaint.event_id}
    assert {e.due_at for e in events} == {datetime(2026, 12, 3, 18, 0, tzinfo=KST)}
    assert (events[1].department, events[1].department_name, events[1].auto_routed) == (
        DEPT,
        CATALOGUE.departments[DEPT].name,
        True,
    )
    handler = events[2].handler
    assert handler is not None
    roster = {r.handler_id: r for r in CATALOGUE.rosters[DEPT]}
    assert "청라2동" in roster[handler.handler_id].areas
    stored = await h.store.get("c1")
    assert stored is not None
    assert (stored.state.value, stored.sequence, stored.handler) == ("handler_assigned", 3, handler)
    assert (stored.outbox, stored.outbox_pending) == ((), False)
    assert stored.has_processed(complaint.event_id)


async def test_a_service_code_routes_without_asking_the_classifier(h: Harness) -> None:
    await h.routing.on_filed(filed(service_code="noise"))
    assigned = h.sent.lifecycle("c1")[1]
    assert (assigned.department, assigned.auto_routed) == ("environment", True)
    assert h.classifier.asked == []


async def test_a_doubtful_prediction_is_not_marked_auto_routed(h: Harness) -> None:
    h.classifier.answer = Prediction(CATALOGUE.general_desk, 0.41, auto=False)
    await h.routing.on_filed(filed())
    assigned = h.sent.lifecycle("c1")[1]
    assert (assigned.department, assigned.auto_routed) == (CATALOGUE.general_desk, False)


async def test_the_same_filed_event_twice_changes_nothing(h: Harness) -> None:
    complaint = filed()
    await h.routing.on_filed(complaint)
    before = await h.store.get("c1")
    h.clock.now += timedelta(hours=1)
    await h.routing.on_filed(complaint)
    assert len(h.sent.lifecycle("c1")) == 3
    assert await h.store.get("c1") == before
    assert h.duplicates == [topics.FILED]


async def test_the_same_command_twice_moves_the_complaint_once(h: Harness) -> None:
    await h.routing.on_filed(filed())
    site_check = StartSiteCheck(actor=DEPT, complaint_id="c1")
    await h.routing.on_command(site_check)
    await h.routing.on_command(site_check)
    assert [e.to_state.value for e in h.sent.lifecycle("c1")][3:] == ["site_check"]
    assert h.duplicates == [topics.COMMANDS]
    assert h.rejections() == []


async def test_an_illegal_command_is_refused_with_the_korean_reason_from_the_data(
    h: Harness,
) -> None:
    await h.routing.on_filed(filed())
    before = await h.store.get("c1")
    close = CloseComplaint(actor=DEPT, complaint_id="c1")
    await h.routing.on_command(close)
    [rejection] = h.rejections()
    template = shipped().refusals[RefusalCode.ILLEGAL_TRANSITION]
    assert (rejection.code, rejection.reason, rejection.reason_ko) == (
        "illegal_transition",
        template.reason.format(action="close", state="handler_assigned"),
        template.reason_ko.format(state_ko=shipped().states[ComplaintState.HANDLER_ASSIGNED]),
    )
    assert rejection.reason_ko == "현재 상태(담당자 지정)에서는 할 수 없는 처리입니다"
    assert (rejection.command_id, rejection.action, rejection.current_state) == (
        close.event_id,
        "close",
        "handler_assigned",
    )
    assert rejection.occurred_at == h.clock.now
    assert len(h.sent.lifecycle("c1")) == 3
    assert await h.store.get("c1") == before


async def test_a_transfer_to_a_department_that_does_not_exist_is_refused_as_unknown(
    h: Harness,
) -> None:
    await h.routing.on_filed(filed())
    before = await h.store.get("c1")
    transfer = TransferComplaint(
        actor=DEPT, complaint_id="c1", to_department="bakery", note="빵집 소관"
    )

    await h.routing.on_command(transfer)

    [rejection] = h.rejections()
    text = shipped().refusals[RefusalCode.UNKNOWN_DEPARTMENT]
    assert (rejection.code, rejection.reason, rejection.reason_ko) == (
        "unknown_department",
        text.reason,
        text.reason_ko,
    )
    assert rejection.command_id == transfer.event_id
    assert await h.store.get("c1") == before


async def test_reasons_follow_the_data_file_when_a_district_rewords_them() -> None:
    data = json.loads(TEXTS.read_text(encoding="utf-8"))
    data["states"]["handler_assigned"] = "담당자 배정"
    data["refusals"]["not_responsible"]["reason_ko"] = "담당 부서가 아닙니다"
    reworded = harness(Texts.model_validate(data))
    await reworded.routing.on_filed(filed())
    await reworded.routing.on_command(CloseComplaint(actor=DEPT, complaint_id="c1"))
    await reworded.routing.on_command(StartSiteCheck(actor="roads", complaint_id="c1"))
    await reworded.routing.on_command(ResolveComplaint(actor=DEPT, complaint_id="nope"))
    assert [(r.code, r.reason_ko) for r in reworded.rejections()] == [
        ("illegal_transition", "현재 상태(담당자 배정)에서는 할 수 없는 처리입니다"),
        ("not_responsible", "담당 부서가 아닙니다"),
        ("unknown_complaint", "해당 민원을 찾을 수 없습니다"),
    ]


async def test_a_crash_before_publishing_leaves_the_events_to_the_relay(h: Harness) -> None:
    h.sent.fail_next = 1
    with pytest.raises(ConnectionError):
        await h.routing.on_filed(filed())
    assert h.sent.lifecycle("c1") == []
    [pending] = await h.store.pending_outboxes()
    await h.routing.flush(pending)
    assert [e.sequence for e in h.sent.lifecycle("c1")] == [1, 2, 3]
    assert await h.store.pending_outboxes() == []


async def test_the_deadline_watcher_reads_the_clock(h: Harness) -> None:
    await h.routing.on_filed(filed())
    assert await h.routing.scan_deadlines() == 0
    h.clock.now = datetime(2026, 12, 3, 18, 0, tzinfo=KST)
    assert await h.routing.scan_deadlines() == 1
    assert await h.routing.scan_deadlines() == 0
    [alert] = [e for t, e in h.sent.sent if t == topics.SLA]
    assert isinstance(alert, ComplaintDeadlineAlert)
    assert (alert.kind.value, alert.occurred_at) == ("deadline_breached", h.clock.now)
