"""Each place free text leaves the resident's own view masks 주민등록번호, phone numbers and
e-mail addresses (``schemas.pii``), shown one exit at a time on the pure code or the
in-memory fakes; the real-server proof is ``tests/service/test_pii_webhook_and_search.py``."""

from datetime import UTC, datetime

from intake.filing import file_submission
from notifier.audience import Audience
from notifier.templates import Catalogue
from notifier.webhook import cloudevent
from routing.complaint import Facts, Routed
from routing.store import Complaint
from schemas import ComplaintFiled, ComplaintState, ComplaintSubmitted
from schemas.commands import ProvideInfo, RejectComplaint, RequestInfo, StartSiteCheck
from schemas.pii import RRN_MASK
from tests.fakes.notifier import LETTERHEAD
from tests.unit.test_notifier_audience import change, resident
from tests.unit.test_routing_decide import NOW, RULES
from tests.unit.test_routing_handlers import CATALOGUE, DEPT, filed
from tracker.projection import project
from tracker.search import search_terms
from tracker.view import DepartmentComplaintView, SearchHit, excerpt

PHONE, EMAIL = "010-9876-5432", "gildong.hong@example.kr"
RRN = "900101-1234568"  # checksum valid
RRN_UNCHECKED = "9001011234567"  # 13 digits, real date, failing checksum: maybe an account
PERSONAL = ("9876-5432", "98765432", "gildong.hong", "1234568", "1234567")
TEXT = f"연락처 {PHONE}, 메일 {EMAIL}, 주민번호 {RRN}, 계좌? {RRN_UNCHECKED}"


def assert_masked(text: str | None) -> None:
    assert text is not None
    for personal in PERSONAL:
        assert personal not in text, (personal, text)


# intake: a 주민등록번호 is masked on arrival, the rest is stored as the resident wrote it


def test_intake_stores_a_certain_rrn_masked_and_keeps_the_rest_as_written() -> None:
    submission = ComplaintSubmitted.model_validate(
        {
            "channel": "chatbot",
            "title": f"주민번호 {RRN} 관련",
            "body": TEXT,
            "transcript": [{"role": "resident", "text": f"제 번호는 {RRN} 이에요"}],
        }
    )
    stored = file_submission(
        submission,
        complaint_id="c-1",
        receipt_number="261202-000001",
        tracking_token="t" * 32,
        resident_token="r" * 32,
        filed_at=datetime(2026, 12, 2, tzinfo=UTC),
    )
    assert stored.title == f"주민번호 {RRN_MASK} 관련"
    assert stored.body == (
        f"연락처 {PHONE}, 메일 {EMAIL}, 주민번호 {RRN_MASK}, 계좌? {RRN_UNCHECKED}"
    ), "the resident's own view keeps their phone, e-mail and what may be an account number"
    assert [t.text for t in stored.transcript] == [f"제 번호는 {RRN_MASK} 이에요"]


# routing: notes and remedies go onto complaint.lifecycle, which departments read


def assigned() -> Complaint:
    routed = Routed(CATALOGUE.departments[DEPT], auto=True, confidence=0.9)
    complaint = RULES.decide(None, filed(), Facts(now=NOW, loads={}, routed=routed)).complaint
    assert complaint is not None
    return complaint


def test_routing_masks_a_departments_note_and_remedy_on_the_lifecycle_event() -> None:
    complaint = assigned()
    started = RULES.decide(
        complaint,
        StartSiteCheck(actor=DEPT, complaint_id="c1", note=TEXT),
        Facts(now=NOW, loads={}),
    )
    [event] = started.events
    assert_masked(event.note)
    assert event.note is not None
    assert "010-****-5432" in event.note
    rejected = RULES.decide(
        complaint,
        RejectComplaint(actor=DEPT, complaint_id="c1", note="중복 민원", remedy=TEXT),
        Facts(now=NOW, loads={}),
    )
    [event] = rejected.events
    assert_masked(event.remedy)


def test_routing_masks_what_a_resident_supplies_too() -> None:
    asked = RULES.decide(
        assigned(),
        RequestInfo(actor=DEPT, complaint_id="c1", note="위치를 알려주세요"),
        Facts(now=NOW, loads={}),
    )
    assert asked.complaint is not None
    supplied = RULES.decide(
        asked.complaint,
        ProvideInfo(actor="resident", complaint_id="c1", note=TEXT),
        Facts(now=NOW, loads={}),
    )
    [event] = supplied.events
    assert_masked(event.note)


# notifier: webhooks and staff messages (an event written before routing masked notes)


def test_the_webhook_body_masks_free_text_and_keeps_the_rest() -> None:
    event = change(ComplaintState.REVIEWING, "start_review", note=TEXT, remedy=EMAIL)
    data = cloudevent(event, source="/sotong/routing")["data"]
    assert_masked(data["note"])
    assert data["remedy"] == "g***@example.kr"
    assert {k: v for k, v in data.items() if k not in ("note", "remedy")} == {
        k: v for k, v in event.model_dump(mode="json").items() if k not in ("note", "remedy")
    }


def test_a_staff_message_masks_the_note_it_quotes() -> None:
    audience = Audience(
        catalogue=Catalogue.load(), channels=frozenset({"sms"}), letterhead=LETTERHEAD
    )
    event = change(ComplaintState.REVIEWING, "provide_info", note=TEXT)
    notices = {n.recipient: n for n in audience.plan(event, resident())}
    staff = notices["handler"].content
    assert staff is not None
    assert "010-****-5432" in staff.text, "the note is quoted, masked"
    assert_masked(staff.text)
    assert_masked(staff.short_text or "")


# tracker: search excerpts, titles and search terms


def test_a_search_hit_masks_its_title_and_excerpt_and_the_department_view_does_not() -> None:
    model = project([_filed(title=f"연락 {PHONE}", body=TEXT)])
    hit = SearchHit.model_validate(model, from_attributes=True)
    assert_masked(hit.title)
    assert_masked(hit.excerpt)
    assert hit.excerpt.startswith(
        f"연락처 010-****-5432, 메일 g***@example.kr, 주민번호 {RRN_MASK}"
    )
    department = DepartmentComplaintView.model_validate(model, from_attributes=True)
    assert department.body == TEXT, "the responsible department reads what was stored"


def test_an_excerpt_masks_a_number_the_cut_would_split() -> None:
    text = excerpt("가" * 150 + f" {RRN}")
    assert "1234" not in text
    assert text.endswith("…")


def test_search_terms_hold_no_personal_data_nor_long_numbers() -> None:
    model = project([_filed(title="가로등 고장", body=f"{TEXT} 행정동 2826058000 010 9876 5432")])
    terms = model.search_terms
    assert "가로등" in terms
    assert not [t for t in terms if any(p in t for p in PERSONAL)], terms
    assert "9876" not in terms, "the middle of a phone written with spaces"
    assert not [t for t in terms if sum(c.isdigit() for c in t) >= 6], terms
    assert "2826058000" not in search_terms("행정동 2826058000"), "6+ digits are not indexed"


def _filed(**fields: object) -> ComplaintFiled:
    return ComplaintFiled.model_validate(
        {
            "complaint_id": "c-1",
            "receipt_number": "261202-000001",
            "tracking_token_hash": "0" * 64,
            "channel": "web",
            "resident": {"name": "홍길동"},
            "location": {"dong": "청라1동"},
            "submitted_at": datetime(2026, 12, 2, tzinfo=UTC),
            "occurred_at": datetime(2026, 12, 2, tzinfo=UTC),
        }
        | fields
    )
