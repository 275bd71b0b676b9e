"""The decision is a pure function: the complaint, one message and the facts fetched before
the call give the complaint after it and the events (or the refusal) to publish."""

from datetime import datetime

from routing.assignment import Load
from routing.complaint import Facts, Routed, Rules
from routing.deadlines import KST, calendar
from routing.lifecycle import EFFECTS, WHO_MAY_FIRE, Lifecycle, refusal_for_actor
from routing.texts import RefusalCode, shipped
from schemas.commands import RESIDENT, DepartmentAction, ResidentAction, StartSiteCheck
from tests.unit.test_routing_handlers import CATALOGUE, DEPT, filed

RULES = Rules(catalogue=CATALOGUE, calendar=calendar(), lifecycle=Lifecycle(), texts=shipped())
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=KST)


def test_who_may_fire_names_every_trigger_and_every_command_is_one() -> None:
    assert set(WHO_MAY_FIRE) == set(Lifecycle().triggers())
    assert set(EFFECTS) <= set(WHO_MAY_FIRE)
    actions = {a.value for a in DepartmentAction} | {a.value for a in ResidentAction}
    assert actions <= set(WHO_MAY_FIRE)


def test_each_trigger_is_refused_to_anyone_but_who_may_fire_it() -> None:
    assert refusal_for_actor("assign", actor=DEPT, department=DEPT) is RefusalCode.ROUTING_ONLY
    assert refusal_for_actor("reopen", actor=DEPT, department=DEPT) is RefusalCode.RESIDENT_ONLY
    assert refusal_for_actor("reopen", actor=RESIDENT, department=DEPT) is None
    assert refusal_for_actor("close", actor="roads", department=DEPT) is (
        RefusalCode.NOT_RESPONSIBLE
    )
    assert refusal_for_actor("close", actor=DEPT, department=DEPT) is None


def test_the_handler_chosen_follows_the_loads_given() -> None:
    dept = CATALOGUE.departments[DEPT]
    routed = Routed(dept, auto=True, confidence=0.9)
    roster = CATALOGUE.rosters[DEPT]
    full = {roster[0].handler_id: Load(open=roster[0].capacity, total=99)}
    free = RULES.decide(None, filed(), Facts(now=NOW, loads={}, routed=routed))
    busy = RULES.decide(None, filed(), Facts(now=NOW, loads=full, routed=routed))
    assert free.complaint is not None
    assert busy.complaint is not None
    assert free.complaint.handler == roster[0].ref()
    assert busy.complaint.handler == dept.supervisor
    assert [e.occurred_at for e in free.events] == [NOW] * 3


def test_a_refusal_leaves_the_complaint_as_it_was() -> None:
    routed = Routed(CATALOGUE.departments[DEPT], auto=True, confidence=0.9)
    complaint = RULES.decide(None, filed(), Facts(now=NOW, loads={}, routed=routed)).complaint
    assert complaint is not None
    command = StartSiteCheck(actor="roads", complaint_id="c1")
    decision = RULES.decide(complaint, command, Facts(now=NOW, loads={}))
    assert decision.complaint is complaint
    assert decision.events == ()
    assert decision.rejection is not None
    assert (decision.rejection.code, decision.rejection.command_id) == (
        "not_responsible",
        command.event_id,
    )
    again = RULES.decide(complaint, command, Facts(now=NOW, loads={}))
    assert again.rejection == decision.rejection  # the same id: a redelivery is a duplicate
