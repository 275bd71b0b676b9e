"""정정 and 만족도 (issue 12): which states allow them, what routing decides, and the
reassignment a new 행정동 may bring. Pure: the lifecycle table, ``Rules.decide`` and the
assignment rule, no Kafka and no Mongo."""

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from routing.assignment import Load, handler_for_new_area
from routing.catalogue import Handler
from routing.complaint import Decision, Facts, Routed, Rules
from routing.deadlines import KST, calendar
from routing.lifecycle import CORRECTABLE, RATEABLE, Lifecycle
from routing.lifecycle import Facts as GuardFacts
from routing.store import Complaint
from routing.texts import Refusal, RefusalCode, shipped
from schemas.commands import (
    COMMAND_ADAPTER,
    CorrectComplaint,
    RateComplaint,
    ReopenComplaint,
    ResolveComplaint,
    StartSiteCheck,
)
from schemas.events import LinkedTo, PhotoRef
from schemas.states import ComplaintState as S
from tests.unit.test_routing_handlers import CATALOGUE, DEPT, filed

RULES = Rules(catalogue=CATALOGUE, calendar=calendar(), lifecycle=Lifecycle(), texts=shipped())
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=KST)
ROSTER = CATALOGUE.rosters[DEPT]
FIRST, SECOND = ROSTER[0], ROSTER[1]  # 청라2동 is the first's, 청라3동 the second's


def facts(minutes: int = 0) -> Facts:
    return Facts(now=NOW + timedelta(minutes=minutes), loads={})


def handled() -> Complaint:
    """A complaint filed in 청라2동 (address and title as filed), with its handler."""
    routed = Routed(CATALOGUE.departments[DEPT], auto=True, confidence=0.9)
    decision = RULES.decide(
        None,
        filed(location={"dong": "청라2동", "address": "인천 서구 청라대로 1"}),
        Facts(now=NOW, loads={}, routed=routed),
    )
    assert decision.complaint is not None
    assert decision.complaint.handler == FIRST.ref()
    return decision.complaint


def applied(complaint: Complaint, command: object, minutes: int = 1) -> Decision:
    decision = RULES.decide(complaint, command, facts(minutes))  # type: ignore[arg-type]
    assert decision.rejection is None, decision.rejection
    assert decision.complaint is not None
    return decision


def refused(complaint: Complaint, command: object) -> str:
    decision = RULES.decide(complaint, command, facts(5))  # type: ignore[arg-type]
    assert decision.rejection is not None
    assert decision.complaint is complaint
    assert decision.events == ()
    return decision.rejection.code


def correct(**fields: str) -> CorrectComplaint:
    return CorrectComplaint(complaint_id="c1", actor="resident", **fields)


def rate(rating: int, comment: str | None = None) -> RateComplaint:
    return RateComplaint(complaint_id="c1", actor="resident", rating=rating, comment=comment)


# -- the state rules ------------------------------------------------------------------


@pytest.mark.parametrize("state", list(S))
def test_correct_is_open_only_before_the_site_check(state: S) -> None:
    lifecycle = Lifecycle()
    if state in CORRECTABLE:
        change = lifecycle.fire(state, "correct", GuardFacts(corrects=True))
        assert change.to_state == state  # internal: the state stays
        return
    with pytest.raises(Refusal) as refusal:
        lifecycle.fire(state, "correct", GuardFacts(corrects=True))
    assert refusal.value.code is RefusalCode.CORRECTION_CLOSED
    assert "담당자에게 알려" in refusal.value.reason_ko  # what to do instead: tell the handler
    assert "현장 확인을 시작하기 전에만" in refusal.value.reason_ko


def test_the_correctable_states_are_the_ones_before_work_on_the_facts_starts() -> None:
    assert set(CORRECTABLE) == {S.RECEIVED, S.ASSIGNED, S.HANDLER_ASSIGNED}


@pytest.mark.parametrize("state", list(S))
def test_rate_is_open_only_after_resolution(state: S) -> None:
    lifecycle = Lifecycle()
    if state in RATEABLE:
        assert lifecycle.fire(state, "rate").to_state == state
        with pytest.raises(Refusal) as again:
            lifecycle.fire(state, "rate", GuardFacts(rated=True))
        assert again.value.code is RefusalCode.ALREADY_RATED
        return
    with pytest.raises(Refusal) as refusal:
        lifecycle.fire(state, "rate")
    assert refusal.value.code is RefusalCode.NOT_RESOLVED


def test_a_correction_that_changes_nothing_is_refused_by_its_guard() -> None:
    with pytest.raises(Refusal) as refusal:
        Lifecycle().fire(S.HANDLER_ASSIGNED, "correct", GuardFacts(corrects=False))
    assert refusal.value.code is RefusalCode.NOTHING_TO_CORRECT


# -- what a correction does -----------------------------------------------------------


def test_a_new_dong_another_handler_covers_reassigns_within_the_department() -> None:
    complaint = handled()
    decision = applied(complaint, correct(dong="청라3동", address="인천 서구 청라대로 99"))
    corrected, reassigned = decision.events
    assert (corrected.trigger, corrected.from_state, corrected.to_state) == (
        "correct",
        S.HANDLER_ASSIGNED,
        S.HANDLER_ASSIGNED,
    )
    assert corrected.correction is not None
    assert corrected.correction.fields == ["address", "dong"]
    assert corrected.correction.dong == "청라3동"
    assert corrected.handler == FIRST.ref()
    assert corrected.actor == "resident"
    assert "청라대로" not in corrected.model_dump_json()  # never the address on the topic
    assert (reassigned.trigger, reassigned.actor, reassigned.handler) == (
        "reassign",
        "routing",
        SECOND.ref(),
    )
    assert reassigned.department == corrected.department == DEPT
    assert reassigned.sequence == corrected.sequence + 1 == complaint.sequence + 2
    after = decision.complaint
    assert after is not None
    assert (after.area, after.address, after.handler) == (
        "청라3동",
        "인천 서구 청라대로 99",
        SECOND.ref(),
    )
    assert after.department == complaint.department  # a department change stays a transfer


def test_a_new_dong_the_same_handler_covers_keeps_the_handler() -> None:
    complaint = handled()
    assert "검암경서동" in FIRST.areas
    decision = applied(complaint, correct(dong="검암경서동"))
    assert [e.trigger for e in decision.events] == ["correct"]
    assert decision.complaint is not None
    assert decision.complaint.handler == FIRST.ref()


def test_a_title_or_address_alone_moves_nobody() -> None:
    complaint = handled()
    decision = applied(complaint, correct(title="쓰레기 무단 투기"))
    (event,) = decision.events
    assert event.correction is not None
    assert event.correction.fields == ["title"]
    assert event.correction.dong == "청라2동"  # the 행정동 after: unchanged
    assert decision.complaint is not None
    assert decision.complaint.title == "쓰레기 무단 투기"


def test_only_the_fields_that_differ_count_and_none_differing_is_refused() -> None:
    complaint = handled()
    decision = applied(complaint, correct(dong="청라2동", title="새 제목"))
    assert decision.events[0].correction is not None
    assert decision.events[0].correction.fields == ["title"]
    same = correct(dong="청라2동", address="인천 서구 청라대로 1", title="대형 폐기물")
    assert refused(complaint, same) == "nothing_to_correct"


def photo(photo_id: str) -> PhotoRef:
    return PhotoRef(photo_id=photo_id.ljust(22, "x"), content_type="image/jpeg", size=1234)


def test_photos_added_by_a_correction_are_listed_in_its_event_once_each() -> None:
    routed = Routed(CATALOGUE.departments[DEPT], auto=True, confidence=0.9)
    complaint = RULES.decide(
        None, filed(photos=[photo("filed")]), Facts(now=NOW, loads={}, routed=routed)
    ).complaint
    assert complaint is not None
    assert complaint.photos == (photo("filed").photo_id,)
    command = CorrectComplaint(
        complaint_id="c1",
        actor="resident",
        photos=[photo("filed"), photo("new"), photo("new"), photo("other")],
    )

    decision = applied(complaint, command)

    (event,) = decision.events  # no 행정동 change: nobody moves
    assert event.correction is not None
    assert event.correction.fields == ["photos"]
    assert event.correction.photos == [photo("new"), photo("other")]
    assert event.correction.dong == "청라2동"
    assert decision.complaint is not None
    assert decision.complaint.photos == tuple(photo(p).photo_id for p in ("filed", "new", "other"))
    again = CorrectComplaint(complaint_id="c1", actor="resident", photos=[photo("other")])
    assert refused(decision.complaint, again) == "nothing_to_correct"  # attached already
    with_title = CorrectComplaint(
        complaint_id="c1", actor="resident", title="새 제목", photos=[photo("third")]
    )
    both = applied(decision.complaint, with_title, minutes=2)
    assert both.events[0].correction is not None
    assert both.events[0].correction.fields == ["title", "photos"]


def test_photos_after_the_site_check_are_refused_as_any_correction() -> None:
    complaint = handled()
    started = applied(complaint, StartSiteCheck(complaint_id="c1", actor=DEPT)).complaint
    assert started is not None
    late = CorrectComplaint(complaint_id="c1", actor="resident", photos=[photo("late")])
    assert refused(started, late) == "correction_closed"


def test_a_correction_with_no_field_and_no_photo_is_invalid() -> None:
    with pytest.raises(ValidationError, match="at least one of address, dong, title, photos"):
        CorrectComplaint(complaint_id="c1", actor="resident", photos=[])


def test_the_same_correction_twice_changes_nothing() -> None:
    complaint = handled()
    command = correct(dong="청라3동")
    once = applied(complaint, command)
    assert once.complaint is not None
    twice = RULES.decide(once.complaint, command, facts(2))
    assert twice.duplicate
    assert twice.events == ()
    assert twice.complaint is once.complaint


def test_after_the_site_check_starts_a_correction_is_refused_with_the_note_offer() -> None:
    complaint = handled()
    started = applied(complaint, StartSiteCheck(complaint_id="c1", actor=DEPT)).complaint
    assert started is not None
    decision = RULES.decide(started, correct(dong="청라3동"), facts(5))
    assert decision.rejection is not None
    assert decision.rejection.code == "correction_closed"
    assert "담당자에게 알려" in decision.rejection.reason_ko


def test_only_the_resident_corrects_and_rates() -> None:
    complaint = handled()
    by_department = CorrectComplaint(complaint_id="c1", actor=DEPT, dong="청라3동")
    assert refused(complaint, by_department) == "resident_only"
    assert refused(complaint, RateComplaint(complaint_id="c1", actor=DEPT, rating=5)) == (
        "resident_only"
    )


# -- the reassignment decision --------------------------------------------------------


def _handler(handler_id: str, areas: tuple[str, ...], on_duty: bool = True) -> Handler:
    return Handler(
        handler_id=handler_id,
        name="가",
        office_phone="032-560-0001",
        areas=areas,
        capacity=5,
        on_duty=on_duty,
    )


def test_the_reassignment_decision() -> None:
    dept = CATALOGUE.departments[DEPT]
    a, b = _handler("a", ("청라1동", "청라2동")), _handler("b", ("청라2동", "연희동"))
    roster = (a, b)
    # the current handler covers the new area: stays, even with more open complaints
    busy = {"a": Load(open=4, total=9)}
    assert handler_for_new_area(dept, roster, current=a.ref(), area="청라2동", loads=busy) is None
    # not covered by the current one: the roster rule chooses
    assert handler_for_new_area(dept, roster, current=a.ref(), area="연희동", loads={}) == b.ref()
    # nobody yet: nothing to move
    assert handler_for_new_area(dept, roster, current=None, area="연희동", loads={}) is None
    # off duty: someone on duty who covers it takes it
    off = (_handler("a", ("청라1동", "청라2동"), on_duty=False), b)
    assert handler_for_new_area(dept, off, current=a.ref(), area="청라2동", loads={}) == b.ref()
    # nobody covers the new area: the supervisor, unless the supervisor holds it already
    to_supervisor = handler_for_new_area(dept, roster, current=a.ref(), area="가좌4동", loads={})
    assert to_supervisor == dept.supervisor
    kept = handler_for_new_area(dept, roster, current=dept.supervisor, area="가좌4동", loads={})
    assert kept is None


# -- rating ---------------------------------------------------------------------------


def resolved(complaint: Complaint) -> Complaint:
    note = ResolveComplaint(complaint_id="c1", actor=DEPT, note="수거했습니다")
    after = applied(complaint, note, minutes=30).complaint
    assert after is not None
    assert after.state is S.RESOLVED
    return after


def test_a_rating_after_resolution_is_kept_once_per_resolution() -> None:
    complaint = resolved(handled())
    decision = applied(complaint, rate(4, "빨리 처리해 주셨어요. 010-1234-5678로 연락 주세요"), 40)
    (event,) = decision.events
    assert event.trigger == "rate"
    assert event.to_state is S.RESOLVED
    assert event.rating is not None
    assert event.rating.score == 4
    assert event.rating.comment is not None
    assert "1234" not in event.rating.comment
    assert event.note is None
    rated = decision.complaint
    assert rated is not None
    assert rated.rated
    assert refused(rated, rate(1)) == "already_rated"
    reopened = applied(rated, ReopenComplaint(complaint_id="c1", actor="resident", note="또"), 50)
    assert reopened.complaint is not None
    assert not reopened.complaint.rated
    again = resolved(reopened.complaint)
    assert applied(again, rate(2), 90).events[0].rating is not None


def test_a_rating_before_resolution_is_refused() -> None:
    assert refused(handled(), rate(5)) == "not_resolved"


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_a_rating_is_one_to_five(rating: int) -> None:
    with pytest.raises(ValidationError, match="rating"):
        rate(rating)


def test_a_rating_comment_is_bounded_and_normalised() -> None:
    with pytest.raises(ValidationError, match="comment"):
        rate(3, "가" * 501)
    assert rate(3, "  좋아요  ").comment == "좋아요"
    assert rate(3, "\u1100\u1161").comment == "\uac00"  # NFC


# -- the command's own checks ---------------------------------------------------------


def test_a_correction_names_something_and_a_dong_of_the_district() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        CorrectComplaint(complaint_id="c1", actor="resident")
    with pytest.raises(ValidationError, match="dong"):
        COMMAND_ADAPTER.validate_python(
            {"action": "correct", "complaint_id": "c1", "actor": "resident", "dong": "강남동"}
        )
    ok = COMMAND_ADAPTER.validate_python(
        {"action": "correct", "complaint_id": "c1", "actor": "resident", "dong": " 청라3동 "}
    )
    assert isinstance(ok, CorrectComplaint)
    assert ok.dong == "청라3동"


def test_a_comment_that_masking_lengthens_is_still_taken() -> None:
    """Masking lengthens e-mail addresses (a@b.kr → a***@b.kr): a comment at the limit full
    of them must not fail the decision (a failure here would retry the batch forever)."""
    comment = " ".join(["a@b.kr"] * 71)
    assert len(comment) <= 500
    decision = applied(resolved(handled()), rate(3, comment), 40)
    (event,) = decision.events
    assert event.rating is not None
    assert event.rating.comment is not None
    assert len(event.rating.comment) > 500
    assert "a@b.kr" not in event.rating.comment


def test_a_complaint_joined_to_a_case_keeps_the_cases_handler() -> None:
    complaint = handled().model_copy(
        update={"linked_to": LinkedTo(complaint_id="case", receipt_number="1", similarity=0.9)}
    )
    decision = applied(complaint, correct(dong="청라3동"))
    assert [e.trigger for e in decision.events] == ["correct"]
    assert decision.complaint is not None
    assert decision.complaint.handler == FIRST.ref()
    assert decision.complaint.area == "청라3동"
