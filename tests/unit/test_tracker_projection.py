"""The read model is a function of the set of a complaint's events, not of their order."""

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    Channel,
    CommandRejected,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintState,
    ComplaintStatusChanged,
    Location,
    NotificationOutcome,
    Resident,
)
from schemas.events import AlertKind, HandlerRef, Outcome
from tracker.projection import TRACKED_EVENT, Contact, TrackedEvent, project, read_model_of

KST = timezone(timedelta(hours=9))
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=KST)
TOKEN_HASH = "0" * 64
HANDLER = HandlerRef(handler_id="h-17", name="김담당", office_phone="032-560-1234")


def filed(complaint_id: str, token_hash: str = TOKEN_HASH, **fields: object) -> ComplaintFiled:
    """A filing; ``fields`` replace any of its attributes (resident_token_hash, body…)."""
    return ComplaintFiled(
        event_id=f"{complaint_id}-filed",
        occurred_at=T0,
        complaint_id=complaint_id,
        receipt_number="250303-000042",
        tracking_token_hash=token_hash,
        channel=Channel.KAKAO,
        resident=Resident(name="홍길동", phone="010-1234-5678"),
        title="가로등 고장",
        body="청라1동 주민센터 앞 가로등이 일주일째 꺼져 있습니다.",
        service_code="streetlight",
        location=Location(address="인천 서구 청라커낼로 100", dong="청라1동"),
        submitted_at=T0 - timedelta(seconds=5),
    ).model_copy(update=fields)


def change(
    complaint_id: str,
    sequence: int,
    from_state: ComplaintState | None,
    to_state: ComplaintState,
    **fields: object,
) -> ComplaintStatusChanged:
    return ComplaintStatusChanged.model_validate(
        {
            "event_id": f"{complaint_id}-change-{sequence}",
            "occurred_at": T0 + timedelta(minutes=sequence),
            "complaint_id": complaint_id,
            "receipt_number": "250303-000042",
            "sequence": sequence,
            "from_state": from_state,
            "to_state": to_state,
            "trigger": fields.pop("trigger", to_state.value),
            "actor": fields.pop("actor", "routing"),
            **fields,
        }
    )


def notification(complaint_id: str, n: int, at: datetime, outcome: Outcome) -> NotificationOutcome:
    return NotificationOutcome(
        event_id=f"{complaint_id}-note-{n}",
        occurred_at=at,
        complaint_id=complaint_id,
        source_event_id=f"{complaint_id}-change-{n}",
        recipient="010-1234-5678",
        channel="kakao",
        outcome=outcome,
        template=f"template-{n}",
        detail=None if outcome is Outcome.SENT else "provider timeout",
    )


def rejection(complaint_id: str) -> CommandRejected:
    return CommandRejected(
        event_id=f"{complaint_id}-rejected",
        occurred_at=T0 + timedelta(minutes=2, seconds=30),
        complaint_id=complaint_id,
        command_id="cmd-1",
        action="resolve",
        code="illegal_transition",
        reason="resolve is not allowed from assigned",
        reason_ko="배정 상태에서는 처리 완료할 수 없습니다.",
        current_state=ComplaintState.ASSIGNED,
    )


def story(complaint_id: str) -> list[TrackedEvent]:
    """One complaint's events in the order they happened, across all four topics."""
    due = T0 + timedelta(days=7)
    return [
        filed(complaint_id),
        notification(complaint_id, 1, T0 + timedelta(minutes=1, seconds=20), Outcome.SENT),
        change(complaint_id, 1, None, ComplaintState.RECEIVED, trigger="file", actor="intake"),
        change(
            complaint_id,
            2,
            ComplaintState.RECEIVED,
            ComplaintState.ASSIGNED,
            department="roads",
            department_name="도로과",
            due_at=due,
            auto_routed=True,
        ),
        notification(complaint_id, 2, T0 + timedelta(minutes=2, seconds=10), Outcome.FAILED),
        rejection(complaint_id),
        change(
            complaint_id,
            3,
            ComplaintState.ASSIGNED,
            ComplaintState.HANDLER_ASSIGNED,
            department="roads",
            handler=HANDLER,
        ),
        change(
            complaint_id,
            4,
            ComplaintState.HANDLER_ASSIGNED,
            ComplaintState.SITE_CHECK,
            note="내일 오전 현장 확인 예정",
            actor="h-17",
        ),
    ]


@pytest.mark.parametrize("seed", range(20))
def test_any_arrival_order_gives_the_in_order_read_model(seed: int) -> None:
    events = story("c-1")
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)

    assert project(shuffled) == project(events)


def test_duplicates_change_nothing() -> None:
    events = story("c-1")
    redelivered = events + events[2:5] + [events[0]]
    random.Random(7).shuffle(redelivered)

    assert project(redelivered) == project(events)
    assert project(redelivered).event_count == len(events)


def test_a_round_trip_through_the_stored_payload_changes_nothing() -> None:
    events = story("c-1")
    reread = [TRACKED_EVENT.validate_python(e.model_dump(mode="json")) for e in events]

    assert project(reread) == project(events)


def test_state_follows_the_highest_sequence_not_the_latest_arrival() -> None:
    events = story("c-1")
    latest_first = [events[-1], *events[:-1]]

    model = project(latest_first)

    assert model.state == "site_check"
    assert [entry.sequence for entry in model.timeline] == [1, 2, 3, 4]
    assert [entry.state for entry in model.timeline] == [
        "received",
        "assigned",
        "handler_assigned",
        "site_check",
    ]


def test_timeline_entries_carry_who_when_and_why() -> None:
    model = project(story("c-1"))
    assigned, handler_assigned, site_check = model.timeline[1:]

    assert assigned.from_state == "received"
    assert assigned.department == "roads"
    assert assigned.department_name == "도로과"
    assert assigned.due_at == T0 + timedelta(days=7)
    assert assigned.handler is None
    assert handler_assigned.handler == HandlerRef(
        handler_id="h-17", name="김담당", office_phone="032-560-1234"
    )
    assert site_check.note == "내일 오전 현장 확인 예정"
    assert site_check.actor == "h-17"
    assert site_check.occurred_at == T0 + timedelta(minutes=4)


def test_assignment_comes_from_the_latest_change_that_names_it() -> None:
    model = project(story("c-1"))

    assert model.department == "roads"
    assert model.department_name == "도로과"
    assert model.handler == HandlerRef(
        handler_id="h-17", name="김담당", office_phone="032-560-1234"
    )
    assert model.due_at == T0 + timedelta(days=7)


def test_a_move_to_another_department_drops_the_previous_handler() -> None:
    moved = change(
        "c-1",
        5,
        ComplaintState.SITE_CHECK,
        ComplaintState.ASSIGNED,
        department="parks",
        department_name="공원녹지과",
        trigger="reassign",
    )

    model = project([*story("c-1"), moved])

    assert model.department == "parks"
    assert model.department_name == "공원녹지과"
    assert model.handler is None


def test_notifications_are_listed_by_time() -> None:
    events = story("c-1")
    late = notification("c-1", 4, T0 + timedelta(minutes=4, seconds=5), Outcome.SKIPPED)

    model = project([late, *reversed(events)])

    assert [n.template for n in model.notifications] == [
        "template-1",
        "template-2",
        "template-4",
    ]
    assert model.notifications[1].model_dump() == {
        "event_id": "c-1-note-2",
        "channel": "kakao",
        "recipient": "010-1234-5678",
        "outcome": "failed",
        "template": "template-2",
        "detail": "provider timeout",
        "occurred_at": T0 + timedelta(minutes=2, seconds=10),
    }


def test_rejections_are_listed_and_change_no_state() -> None:
    without = [e for e in story("c-1") if not isinstance(e, CommandRejected)]

    model = project(story("c-1"))

    assert [rejection.model_dump() for rejection in model.rejections] == [
        {
            "event_id": "c-1-rejected",
            "command_id": "cmd-1",
            "action": "resolve",
            "code": "illegal_transition",
            "reason": "resolve is not allowed from assigned",
            "reason_ko": "배정 상태에서는 처리 완료할 수 없습니다.",
            "occurred_at": T0 + timedelta(minutes=2, seconds=30),
        }
    ]
    assert model.model_dump(exclude={"rejections", "event_count"}) == project(without).model_dump(
        exclude={"rejections", "event_count"}
    )


def test_the_filing_is_kept_for_department_views() -> None:
    model = project(story("c-1"))

    assert model.receipt_number == "250303-000042"
    assert model.tracking_token_hash == TOKEN_HASH
    assert model.title == "가로등 고장"
    assert model.channel == "kakao"
    assert model.filed_at == T0
    assert model.service_code == "streetlight"
    assert model.dong == "청라1동"
    assert model.resident == Contact(
        name="홍길동", phone="010-1234-5678", email=None, address="인천 서구 청라커낼로 100"
    )


def test_before_the_filing_arrives_there_is_no_token_hash() -> None:
    model = project([e for e in story("c-1") if not isinstance(e, ComplaintFiled)])

    assert model.tracking_token_hash is None
    assert model.resident is None
    assert model.receipt_number == "250303-000042"
    assert model.state == "site_check"


def test_only_a_filing_means_no_state_yet() -> None:
    model = project([filed("c-1")])

    assert model.state is None
    assert model.timeline == []
    assert model.department is None


def test_no_read_model_until_the_filing_is_stored() -> None:
    """A rejection of a command for an id intake never issued, or events that outran their
    filing across topics: kept in the log, shown nowhere."""
    unknown = rejection("c-unknown").model_copy(update={"code": "unknown_complaint"})
    events = story("c-1")

    assert read_model_of([unknown]) is None
    assert read_model_of(events[1:]) is None
    assert read_model_of([*events[1:], events[0]]) == project(events)
    assert read_model_of([events[0]]) == project([events[0]])


def test_events_of_two_complaints_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one complaint"):
        project([filed("c-1"), filed("c-2")])


def test_no_events_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one complaint"):
        project([])


def test_a_breach_of_the_current_due_time_marks_an_open_complaint_overdue() -> None:
    from schemas import ComplaintDeadlineAlert
    from schemas.events import AlertKind

    events = story("c-late")
    due = project(events).due_at
    assert due is not None
    breach = ComplaintDeadlineAlert(
        complaint_id="c-late",
        receipt_number="250303-000042",
        kind=AlertKind.BREACH,
        state=ComplaintState.SITE_CHECK,
        received_at=T0,
        due_at=due,
    )
    model = project([*events, breach])
    assert model.alerts[0].kind == "deadline_breached"
    assert model.overdue is True
    stale = breach.model_copy(update={"event_id": "other", "due_at": due - timedelta(days=1)})
    assert project([*events, stale]).overdue is False
    assert project(events).overdue is False


def test_transfers_and_reopenings_are_counted() -> None:
    events = story("c-1")
    later = [
        change(
            "c-1",
            5,
            ComplaintState.SITE_CHECK,
            ComplaintState.ASSIGNED,
            trigger="transfer",
            department="parks",
            department_name="공원녹지과",
            note="공원 안 가로등",
            actor="roads",
        ),
        change("c-1", 6, ComplaintState.ASSIGNED, ComplaintState.HANDLER_ASSIGNED),
        change(
            "c-1", 7, ComplaintState.HANDLER_ASSIGNED, ComplaintState.RESOLVED, trigger="resolve"
        ),
        change(
            "c-1",
            8,
            ComplaintState.RESOLVED,
            ComplaintState.HANDLER_ASSIGNED,
            trigger="reopen",
            actor="resident",
        ),
        change(
            "c-1", 9, ComplaintState.HANDLER_ASSIGNED, ComplaintState.RESOLVED, trigger="resolve"
        ),
        change(
            "c-1",
            10,
            ComplaintState.RESOLVED,
            ComplaintState.HANDLER_ASSIGNED,
            trigger="reopen",
            actor="resident",
        ),
    ]

    model = project([*events, *later])

    assert model.transfer_count == 1
    assert model.reopen_count == 2
    assert model.department == "parks"
    assert model.updated_at == T0 + timedelta(minutes=10)
    assert project(events).transfer_count == project(events).reopen_count == 0


@pytest.mark.parametrize("auto", [True, False])
def test_auto_routed_comes_from_the_routing_decision(auto: bool) -> None:
    events = [
        e.model_copy(update={"auto_routed": auto}) if getattr(e, "sequence", 0) == 2 else e
        for e in story("c-1")
    ]

    assert project(events).auto_routed is auto
    assert project(events[:3]).auto_routed is None  # not routed yet


def test_the_resident_token_hash_ties_a_residents_complaints_together() -> None:
    model = project([filed("c-1", resident_token_hash="r" * 64)])

    assert model.resident_token_hash == "r" * 64
    assert project([filed("c-1")]).resident_token_hash is None


def test_search_terms_are_the_content_morphemes_of_title_and_body() -> None:
    model = project(story("c-1"))

    assert {"가로등", "고장", "꺼지", "일주일", "주민", "센터"} <= set(model.search_terms)
    assert not {"이", "습니다", "있"} & set(model.search_terms)
    assert project(story("c-1")[1:]).search_terms == []


def test_a_rejection_carries_its_remedy_into_the_timeline() -> None:
    rejected = change(
        "c-1",
        5,
        ComplaintState.SITE_CHECK,
        ComplaintState.REJECTED,
        trigger="reject",
        note="사유지",
        remedy="토지 소유자에게 문의하세요",
    )

    model = project([*story("c-1"), rejected])

    assert model.timeline[-1].remedy == "토지 소유자에게 문의하세요"
    assert model.timeline[0].remedy is None


# -- any history, any delivery --------------------------------------------------------

STATES = list(ComplaintState)


@st.composite
def histories(draw: st.DrawFn, complaint_id: str = "c-h") -> list[TrackedEvent]:
    """A random history: a filing, status changes, notifications, rejections, alerts."""
    events: list[TrackedEvent] = []
    if draw(st.booleans()):
        events.append(filed(complaint_id, resident_token_hash=draw(st.sampled_from("ab")) * 64))
    previous: ComplaintState | None = None
    for sequence in range(1, draw(st.integers(0, 12)) + 1):
        state = draw(st.sampled_from(STATES))
        events.append(
            change(
                complaint_id,
                sequence,
                previous,
                state,
                trigger=draw(
                    st.sampled_from(["assign", "transfer", "reopen", "resolve", "extend"])
                ),
                department=draw(st.sampled_from([None, "roads", "parks"])),
                due_at=draw(
                    st.sampled_from([None, T0 + timedelta(days=7), T0 + timedelta(days=9)])
                ),
                auto_routed=draw(st.sampled_from([None, True, False])),
            )
        )
        previous = state
    for n in range(draw(st.integers(0, 3))):
        at = T0 + timedelta(minutes=draw(st.integers(0, 20)))
        events.append(notification(complaint_id, n, at, draw(st.sampled_from(list(Outcome)))))
    if draw(st.booleans()):
        events.append(rejection(complaint_id))
    for kind in draw(st.lists(st.sampled_from(list(AlertKind)), max_size=2, unique=True)):
        events.append(
            ComplaintDeadlineAlert(
                event_id=f"{complaint_id}-{kind.value}",
                complaint_id=complaint_id,
                receipt_number="250303-000042",
                kind=kind,
                state=ComplaintState.SITE_CHECK,
                received_at=T0,
                due_at=T0 + timedelta(days=draw(st.sampled_from([7, 9]))),
            )
        )
    if not events:
        events.append(filed(complaint_id))
    return events


@settings(max_examples=200, deadline=None)
@given(data=st.data(), events=histories())
def test_any_delivery_of_any_history_gives_the_same_read_model(
    data: st.DataObject, events: list[TrackedEvent]
) -> None:
    redelivered = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    delivery = data.draw(st.permutations([*events, *redelivered]))

    assert project(delivery) == project(events)
    assert (read_model_of(delivery) is None) == (
        not any(e.event_type == "complaint.filed" for e in events)
    )
