"""Who is told what, over which channels — decided from one event and the configuration."""

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from notifier.audience import Audience, Notice
from notifier.staff import StaffContact, StaffDirectory
from notifier.store import Recipient
from notifier.templates import Catalogue, Letterhead
from schemas import ComplaintDeadlineAlert, ComplaintState, ComplaintStatusChanged
from schemas.events import AlertKind, HandlerRef
from tests.fakes.notifier import LETTERHEAD

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
HANDLER = HandlerRef(handler_id="roads-1", name="김담당", office_phone="032-560-5101")
SUPERVISOR = HandlerRef(handler_id="roads-chief", name="박과장", office_phone="032-560-5100")
ALL = frozenset({"alimtalk", "sms", "email", "outbox"})
STAFF = StaffDirectory(
    {
        "roads-1": StaffContact("roads-1", "010-0000-5101", "roads-1@example.go.kr"),
        "roads-chief": StaffContact("roads-chief", "010-0000-5100", None),
    }
)
"""Clearly fake work contacts (the issue: staff are reached at a work mobile, not the office)."""


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def audience(catalogue: Catalogue, channels: frozenset[str] = ALL, **kw: object) -> Audience:
    return Audience(
        catalogue=catalogue,
        channels=channels,
        letterhead=LETTERHEAD,
        **({"staff": STAFF} | kw),  # type: ignore[arg-type]
    )


def resident(
    phone: str | None = "010-1234-5678", email: str | None = None, consent: bool = True
) -> Recipient:
    return Recipient("c-1", "251125-000001", consent, "홍길동", phone, email)


def change(to_state: ComplaintState, trigger: str, **fields: object) -> ComplaintStatusChanged:
    return ComplaintStatusChanged.model_validate(
        {
            "complaint_id": "c-1",
            "receipt_number": "251125-000001",
            "sequence": 3,
            "from_state": None,
            "to_state": to_state,
            "trigger": trigger,
            "department": "roads",
            "department_name": "도로과",
            "handler": HANDLER,
            "actor": "routing",
            "due_at": NOW,
            **fields,
        }
    )


def alert(kind: AlertKind, **fields: object) -> ComplaintDeadlineAlert:
    return ComplaintDeadlineAlert.model_validate(
        {
            "complaint_id": "c-1",
            "receipt_number": "251125-000001",
            "kind": kind,
            "state": "site_check",
            "department": "roads",
            "department_name": "도로과",
            "handler": HANDLER,
            "supervisor": SUPERVISOR,
            "received_at": NOW,
            "due_at": NOW,
            **fields,
        }
    )


def by_recipient(notices: list[Notice]) -> dict[str, Notice]:
    return {n.recipient: n for n in notices}


@pytest.mark.parametrize(
    ("phone", "email", "channels", "chain"),
    [
        ("010-1", "a@b.kr", ALL, ("alimtalk", "sms", "email")),
        ("010-1", None, ALL, ("alimtalk", "sms")),
        (None, "a@b.kr", ALL, ("email",)),
        ("010-1", None, frozenset({"sms", "outbox"}), ("sms",)),
        ("010-1", None, frozenset({"alimtalk", "outbox"}), ("alimtalk",)),
        (None, "a@b.kr", frozenset({"alimtalk", "sms", "outbox"}), ("outbox",)),
        (None, None, ALL, ()),
        (None, None, frozenset({"outbox"}), ()),
        (None, None, frozenset({"alimtalk", "sms"}), ()),
        ("010-1", "a@b.kr", frozenset({"outbox"}), ("outbox",)),
    ],
)
def test_channels_follow_the_contact_and_the_configuration(
    catalogue: Catalogue,
    phone: str | None,
    email: str | None,
    channels: frozenset[str],
    chain: tuple[str, ...],
) -> None:
    assert audience(catalogue, channels).chain(phone, email) == chain


def test_a_handler_assignment_tells_the_resident_and_the_handler(catalogue: Catalogue) -> None:
    notices = audience(catalogue).plan(
        change(ComplaintState.HANDLER_ASSIGNED, "assign_handler"), resident()
    )
    assert [n.recipient for n in notices] == ["resident", "handler"]
    told = by_recipient(notices)
    assert told["resident"].template == "SOTONG_HANDLER_ASSIGNED"
    assert told["handler"].template == "SOTONG_STAFF_ASSIGNED"
    assert told["handler"].phone == "010-0000-5101", "the work mobile, not the office landline"
    assert told["handler"].email == "roads-1@example.go.kr"
    assert told["handler"].chain == ("sms", "email")
    assert not told["handler"].urgent
    assert told["handler"].content is not None
    assert "251125-000001" in told["handler"].content.text


def test_a_reassignment_tells_the_new_handler_and_the_resident_who(catalogue: Catalogue) -> None:
    told = by_recipient(
        audience(catalogue).plan(change(ComplaintState.SITE_CHECK, "reassign"), resident())
    )
    assert told["handler"].template == "SOTONG_STAFF_REASSIGNED"
    assert told["resident"].template == "SOTONG_REASSIGNED"
    assert told["resident"].content is not None
    assert "김담당(032-560-5101)" in told["resident"].content.text


@pytest.mark.parametrize("trigger", ["start_site_check", "start_review", "resolve", "close"])
def test_work_on_the_complaint_tells_only_the_resident(catalogue: Catalogue, trigger: str) -> None:
    notices = audience(catalogue).plan(change(ComplaintState.REVIEWING, trigger), resident())
    assert [n.recipient for n in notices] == ["resident"]


def test_results_go_out_at_once_and_steps_wait(catalogue: Catalogue) -> None:
    plan = audience(catalogue).plan
    assert plan(change(ComplaintState.RESOLVED, "resolve", note="완료"), resident())[0].urgent
    assert plan(change(ComplaintState.REJECTED, "reject", note="중복"), resident())[0].urgent
    assert not plan(change(ComplaintState.SITE_CHECK, "start_site_check"), resident())[0].urgent
    custom = audience(catalogue, urgent_states=frozenset({ComplaintState.SITE_CHECK}))
    assert custom.plan(change(ComplaintState.SITE_CHECK, "start_site_check"), resident())[0].urgent


def test_consent_is_carried_to_the_resident_notice_only(catalogue: Catalogue) -> None:
    told = by_recipient(
        audience(catalogue).plan(
            change(ComplaintState.HANDLER_ASSIGNED, "assign_handler"), resident(consent=False)
        )
    )
    assert not told["resident"].consent
    assert told["handler"].consent


@pytest.mark.parametrize("kind", [AlertKind.WARNING, AlertKind.BREACH])
def test_deadline_alerts_go_to_the_supervisor_and_the_handler(
    catalogue: Catalogue, kind: AlertKind
) -> None:
    told = by_recipient(audience(catalogue).plan(alert(kind), resident()))
    assert set(told) == {"supervisor", "handler"}
    assert told["supervisor"].phone == "010-0000-5100"
    assert told["supervisor"].chain == ("sms",)
    expected = "SOTONG_SLA_WARNING" if kind is AlertKind.WARNING else "SOTONG_SLA_BREACHED"
    assert told["supervisor"].template == expected
    assert told["supervisor"].content is not None
    assert "도로과" in told["supervisor"].content.text


def test_a_supervisor_handling_it_is_told_once(catalogue: Catalogue) -> None:
    notices = audience(catalogue).plan(alert(AlertKind.BREACH, handler=SUPERVISOR), resident())
    assert [n.recipient for n in notices] == ["supervisor"]


def test_the_progress_notice_is_the_residents(catalogue: Catalogue) -> None:
    notices = audience(catalogue).plan(alert(AlertKind.PROGRESS_NOTICE), resident())
    assert [(n.recipient, n.template) for n in notices] == [("resident", "SOTONG_PROGRESS_NOTICE")]


def test_a_subscribed_department_gets_every_event_as_a_cloudevent(catalogue: Catalogue) -> None:
    subscribed = audience(catalogue, webhooks=frozenset({"roads"}))
    for event in (
        change(ComplaintState.SITE_CHECK, "start_site_check"),
        alert(AlertKind.WARNING),
    ):
        hook = by_recipient(subscribed.plan(event, resident(), "corr-1"))["department:roads"]
        assert (hook.chain, hook.urgent, hook.department) == (("webhook",), True, "roads")
        assert hook.cloudevent is not None
        assert hook.cloudevent["id"] == event.event_id
        assert hook.template == "cloudevent"
    other = change(ComplaintState.SITE_CHECK, "start_site_check", department="parks")
    assert "department:parks" not in by_recipient(subscribed.plan(other, resident()))


def test_the_open311_app_that_filed_it_is_pushed_each_step_it_alone(
    catalogue: Catalogue,
) -> None:
    apps = audience(catalogue, apps=frozenset({"fixit", "other"}))
    filer = dataclasses.replace(resident(), channel_client="fixit")
    step = change(ComplaintState.SITE_CHECK, "start_site_check", note="010-9876-5432로 연락 주세요")
    push = by_recipient(apps.plan(step, filer, "corr-1"))["open311:fixit"]
    assert (push.chain, push.urgent, push.webhook) == (("webhook",), True, "open311:fixit")
    assert push.cloudevent is not None
    assert push.cloudevent["type"] == "kr.go.sotong.open311.service_request_update.v1"
    data = push.cloudevent["data"]
    assert (data["status"], data["sotong_state"], data["agency_responsible"]) == (
        "open",
        "site_check",
        "도로과",
    )
    assert data["description"].startswith("현장 확인 중입니다.")
    assert "9876" not in json.dumps(push.cloudevent, ensure_ascii=False)
    assert "홍길동" not in json.dumps(push.cloudevent, ensure_ascii=False)
    assert "open311:other" not in by_recipient(apps.plan(step, filer))
    # not filed by an app, filed by an app without a webhook, a mark nobody is told of
    assert not any(n.webhook for n in apps.plan(step, resident()))
    unsubscribed = dataclasses.replace(resident(), channel_client="unknown")
    assert not any(n.webhook for n in apps.plan(step, unsubscribed))
    mark = change(ComplaintState.HANDLER_ASSIGNED, "mark_repeated")
    assert not any(n.webhook for n in apps.plan(mark, filer))
    # a resolution is closed to Open311
    done = change(ComplaintState.RESOLVED, "resolve")
    assert by_recipient(apps.plan(done, filer))["open311:fixit"].cloudevent["data"]["status"] == (  # type: ignore[index]
        "closed"
    )


def test_a_department_webhook_lists_the_complaints_photos_as_links(catalogue: Catalogue) -> None:
    filer = dataclasses.replace(resident(), photos=("p1", "p2"))
    step = change(ComplaintState.SITE_CHECK, "start_site_check")
    linked = audience(catalogue, webhooks=frozenset({"roads"}), photo_base="https://in.go.kr/")
    hook = by_recipient(linked.plan(step, filer))["department:roads"]
    assert hook.cloudevent is not None
    assert hook.cloudevent["data"]["photos"] == [
        "https://in.go.kr/v1/photos/p1",
        "https://in.go.kr/v1/photos/p2",
    ]
    unlinked = audience(catalogue, webhooks=frozenset({"roads"}))
    hook = by_recipient(unlinked.plan(step, filer))["department:roads"]
    assert hook.cloudevent is not None
    assert "photos" not in hook.cloudevent["data"]


def test_contacts_stay_out_of_repr(catalogue: Catalogue) -> None:
    notices = audience(catalogue).plan(
        change(ComplaintState.HANDLER_ASSIGNED, "assign_handler"), resident(email="h@x.kr")
    )
    assert "010-1234-5678" not in repr(notices)
    assert "h@x.kr" not in repr(notices)


def test_a_complaint_sent_to_the_general_desk_is_told_it_is_being_reviewed(
    catalogue: Catalogue,
) -> None:
    desk = {"department": "civil-passport", "department_name": "민원여권과"}
    unsure = change(ComplaintState.ASSIGNED, "assign", auto_routed=False, **desk)
    [told] = audience(catalogue).plan(unsure, resident())
    assert told.template == "SOTONG_GENERAL_DESK"
    assert told.content is not None
    assert "민원여권과" not in told.content.text
    for routed in (True, None):
        sure = change(ComplaintState.ASSIGNED, "assign", auto_routed=routed, **desk)
        assert audience(catalogue).plan(sure, resident())[0].template == "SOTONG_ASSIGNED"


def test_every_resident_message_names_the_district_and_links_the_timeline(
    catalogue: Catalogue,
) -> None:
    [told] = audience(catalogue).plan(change(ComplaintState.REVIEWING, "start_review"), resident())
    assert told.content is not None
    assert told.content.text.startswith("[인천광역시 서구] 현재 심사 중입니다.")
    assert told.content.text.endswith("진행 상황: https://sotong.example.kr/complaints/c-1")
    assert told.content.subject == "[인천광역시 서구] 민원 진행 안내"


def test_a_person_with_no_contact_has_no_channel(catalogue: Catalogue) -> None:
    notices = audience(catalogue).plan(
        change(ComplaintState.HANDLER_ASSIGNED, "assign_handler"), resident(phone=None)
    )
    assert by_recipient(notices)["resident"].chain == ()


def test_a_sender_name_too_long_for_an_lms_title_fails_at_start(catalogue: Catalogue) -> None:
    with pytest.raises(ValueError, match="sender name"):
        Audience(
            catalogue=catalogue,
            channels=ALL,
            letterhead=Letterhead("가나다라마바사아자차카타", LETTERHEAD.tracking_url),
        )


def test_staff_not_in_the_directory_are_not_sent_to_a_landline(catalogue: Catalogue) -> None:
    nobody = audience(catalogue, staff=StaffDirectory())
    told = by_recipient(nobody.plan(alert(AlertKind.BREACH), resident()))
    assert (told["supervisor"].chain, told["supervisor"].phone) == ((), None)
    assert all(n.phone != SUPERVISOR.office_phone for n in told.values())


def test_staff_reach_the_outbox_on_one_machine_and_only_email_without_sms(
    catalogue: Catalogue,
) -> None:
    local = audience(catalogue, channels=frozenset({"outbox"}))
    assert local.staff_chain("010-0000-5101", None) == ("outbox",)
    mail_only = audience(catalogue, channels=frozenset({"email", "alimtalk"}))
    assert mail_only.staff_chain("010-0000-5101", "a@example.go.kr") == ("email",)
