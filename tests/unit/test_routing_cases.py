"""반복민원 and 중복민원 in routing: the pure matcher, then the handlers on the fake store.

The handler tests tokenize by whitespace (a fake of the Kiwi analyzer, so they stay
fast); the measured threshold is tested with the real tokenizer on the labelled pairs.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from routing.cases import CasePolicy, Filing, Matcher, Pending, resident_key, service_of
from routing.classifier import MorphemeAnalyzer, load_examples
from routing.handlers import CaseDetection
from routing.settings import RoutingSettings
from routing.similarity import Similarity, evaluate_repeats, load_pairs, terms_of
from routing.texts import RefusalCode
from schemas.commands import (
    ConcludeRepeated,
    DismissRepeated,
    ExtendDeadline,
    ReopenComplaint,
    RequestInfo,
    ResolveComplaint,
    StartReview,
    StartSiteCheck,
    UnlinkComplaint,
    WithdrawComplaint,
)
from schemas.common import Coordinates, Location, Resident
from schemas.states import ComplaintState
from tests.unit.test_routing_handlers import DEPT, Harness, filed, harness

PHONE = "010-1234-5678"
KEY = b"test-only phone key"


def words(text: str) -> list[str]:
    return text.split()


POLICY = CasePolicy(
    repeat_threshold=0.55,
    repeat_window=timedelta(days=365),
    duplicate_threshold=0.35,
    duplicate_window=timedelta(days=30),
    duplicate_distance_m=30.0,
)
SIMILARITY = Similarity.fit([words("가로등 고장 수리"), words("불법 주차 단속")])


@pytest.fixture
def h() -> Harness:
    h = harness()
    h.routing.cases = CaseDetection(
        tokenize=words, matcher=Matcher(similarity=SIMILARITY, policy=POLICY), phone_key=KEY
    )
    return h


def complaint(cid: str, body: str, *, phone: str | None = PHONE, **location: Any) -> Any:
    return filed(
        cid,
        title=None,
        body=body,
        resident=Resident(name="홍길동", phone=phone),
        resident_token_hash=f"{cid:0<64}",
        location=Location(**({"dong": "청라2동"} | location)),
    )


async def resolve(h: Harness, cid: str, note: str = "대형폐기물 수거를 마쳤습니다") -> None:
    await h.routing.on_command(ResolveComplaint(complaint_id=cid, actor=DEPT, note=note))


BODY = "소파 스티커 붙였는데 아직 안 가져갔어요 수거 해주세요"
AGAIN = "소파 스티커 붙였는데 아직도 안 가져갔어요 수거 해주세요"


def test_a_resident_is_known_by_a_keyed_hash_of_the_phone_never_the_phone() -> None:
    key = resident_key(phone=PHONE, resident_token_hash="t" * 64, phone_key=KEY)
    assert key is not None
    assert "5678" not in key
    assert key == resident_key(phone="01012345678", resident_token_hash=None, phone_key=KEY)
    assert key != resident_key(phone=PHONE, resident_token_hash=None, phone_key=b"other")
    assert resident_key(phone=PHONE, resident_token_hash="ab", phone_key=None) == "t:ab"
    assert resident_key(phone=None, resident_token_hash=None, phone_key=KEY) is None


async def test_the_same_residents_concluded_complaint_filed_again_is_marked_repeated(
    h: Harness,
) -> None:
    await h.routing.on_filed(complaint("c1", BODY))
    await resolve(h, "c1")
    await h.routing.on_filed(complaint("c2", AGAIN))
    events = h.sent.lifecycle("c2")
    assert [e.trigger for e in events] == ["file", "assign", "assign_handler", "mark_repeated"]
    mark = events[-1].repeated_of
    assert mark is not None
    assert (mark.complaint_id, mark.receipt_number) == ("c1", "261125-000001")
    assert 0.55 <= mark.similarity <= 1
    assert mark.answer is None  # the answer travels only when the department confirms
    assert events[-1].to_state is ComplaintState.HANDLER_ASSIGNED
    stored = await h.store.get("c2")
    assert stored is not None
    assert stored.repeated_of == mark


@pytest.mark.parametrize(
    ("why", "second"),
    [
        ("another resident", complaint("c2", AGAIN, phone="010-9999-0000")),
        ("new facts", complaint("c2", "냉장고 무상수거 신청은 어떻게 하나요")),
    ],
)
async def test_no_mark_for_another_resident_or_a_new_matter(
    h: Harness, why: str, second: Any
) -> None:
    await h.routing.on_filed(complaint("c1", BODY))
    await resolve(h, "c1")
    await h.routing.on_filed(second)
    assert [e.trigger for e in h.sent.lifecycle("c2")][-1] == "assign_handler", why


async def test_no_mark_while_the_earlier_complaint_is_still_open(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", BODY, address="청라동 1"))
    await h.routing.on_filed(complaint("c2", AGAIN, address="청라동 2"))
    assert [e.trigger for e in h.sent.lifecycle("c2")][-1] == "assign_handler"


async def test_no_mark_after_the_window(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", BODY))
    await resolve(h, "c1")
    h.clock.now += timedelta(days=366)
    await h.routing.on_filed(complaint("c2", AGAIN))
    assert [e.trigger for e in h.sent.lifecycle("c2")][-1] == "assign_handler"


async def test_conclude_repeated_closes_it_with_the_earlier_answer(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", BODY))
    await resolve(h, "c1", "12월 1일에 수거했습니다")
    await h.routing.on_filed(complaint("c2", AGAIN))
    await h.routing.on_command(ConcludeRepeated(complaint_id="c2", actor=DEPT))
    last = h.sent.lifecycle("c2")[-1]
    assert (last.trigger, last.to_state) == ("conclude_repeated", ComplaintState.CLOSED)
    assert last.repeated_of is not None
    assert (last.repeated_of.receipt_number, last.repeated_of.answer, last.note) == (
        "261125-000001",
        "12월 1일에 수거했습니다",
        "12월 1일에 수거했습니다",
    )
    assert h.rejections() == []


async def test_conclude_repeated_is_refused_once_the_earlier_one_was_reopened(
    h: Harness,
) -> None:
    await h.routing.on_filed(complaint("c1", BODY))
    await resolve(h, "c1")
    await h.routing.on_filed(complaint("c2", AGAIN))
    await h.routing.on_command(
        ReopenComplaint(complaint_id="c1", actor="resident", note="아직 그대로예요")
    )
    await h.routing.on_command(ConcludeRepeated(complaint_id="c2", actor=DEPT))
    [refused] = h.rejections()
    assert refused.code == RefusalCode.EARLIER_NOT_CONCLUDED
    stored = await h.store.get("c2")
    assert stored is not None
    assert stored.state is ComplaintState.HANDLER_ASSIGNED


async def test_without_a_mark_conclude_and_dismiss_are_refused(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", BODY))
    await h.routing.on_command(ConcludeRepeated(complaint_id="c1", actor=DEPT))
    await h.routing.on_command(DismissRepeated(complaint_id="c1", actor=DEPT))
    await h.routing.on_command(UnlinkComplaint(complaint_id="c1", actor=DEPT))
    assert [r.code for r in h.rejections()] == [
        RefusalCode.NOT_MARKED_REPEATED,
        RefusalCode.NOT_MARKED_REPEATED,
        RefusalCode.NOT_LINKED,
    ]


async def test_only_the_responsible_department_concludes(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", BODY))
    await resolve(h, "c1")
    await h.routing.on_filed(complaint("c2", AGAIN))
    await h.routing.on_command(ConcludeRepeated(complaint_id="c2", actor="environment"))
    assert [r.code for r in h.rejections()] == [RefusalCode.NOT_RESPONSIBLE]


async def test_dismissing_the_mark_handles_it_as_new(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", BODY))
    await resolve(h, "c1")
    await h.routing.on_filed(complaint("c2", AGAIN))
    await h.routing.on_command(DismissRepeated(complaint_id="c2", actor=DEPT, note="새 장소"))
    last = h.sent.lifecycle("c2")[-1]
    assert (last.trigger, last.to_state) == ("dismiss_repeated", ComplaintState.HANDLER_ASSIGNED)
    stored = await h.store.get("c2")
    assert stored is not None
    assert stored.repeated_of is None
    await h.routing.on_command(ConcludeRepeated(complaint_id="c2", actor=DEPT))
    assert [r.code for r in h.rejections()] == [RefusalCode.NOT_MARKED_REPEATED]


def test_the_shipped_threshold_is_the_measured_one() -> None:
    """On the labelled pairs with the real tokenizer: no new complaint caught, and most
    repeats found. A change of tokenizer, features or threshold that loses this fails."""
    tokenize = MorphemeAnalyzer()
    similarity = Similarity.fit(terms_of(e.text, tokenize) for e in load_examples())
    pairs = load_pairs()
    assert len(pairs) >= 60
    result = evaluate_repeats(pairs, similarity, tokenize)
    threshold = RoutingSettings.model_fields["repeat_threshold"].default
    assert result.false_positive_rate(threshold) == 0
    assert result.recall(threshold) >= 0.85


def test_a_pairs_file_missing_a_field_names_it(tmp_path: Any) -> None:
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"earlier": "a", "later": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: missing field 'repeated'"):
        load_pairs(bad)


HERE = Coordinates(lat=37.5326, lon=126.6480)
NEARBY = Coordinates(lat=37.5327, lon=126.6481)  # about 14 m
FAR = Coordinates(lat=37.5346, lon=126.6480)  # about 220 m
LIGHT = "가로등 고장 났어요 밤에 어두워요"
LIGHT_TOO = "가로등 고장 수리 해주세요 어두워요"


async def test_a_second_resident_at_the_same_place_joins_the_open_case(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", LIGHT, coordinates=HERE))
    await h.routing.on_filed(complaint("c2", LIGHT_TOO, phone="010-2222-3333", coordinates=NEARBY))
    events = h.sent.lifecycle("c2")
    assert [e.trigger for e in events][-1] == "link"
    link = events[-1].linked_to
    assert link is not None
    assert (link.complaint_id, link.receipt_number) == ("c1", "261125-000001")
    assert link.distance_m is not None
    assert link.distance_m < 30
    case = h.sent.lifecycle("c1")[-1]
    assert events[-1].handler == case.handler  # one handler works the case
    stored = await h.store.get("c2")
    assert stored is not None
    assert stored.linked_to == link


@pytest.mark.parametrize(
    "where",
    [{"coordinates": FAR}, {"dong": "청라3동", "coordinates": NEARBY}, {"address": "다른 길 3"}],
)
async def test_another_place_is_not_a_duplicate(h: Harness, where: dict[str, Any]) -> None:
    await h.routing.on_filed(complaint("c1", LIGHT, coordinates=HERE, address="청라로 1"))
    second = complaint("c2", LIGHT_TOO, phone="010-2222-3333", **({"address": None} | where))
    await h.routing.on_filed(second)
    assert [e.trigger for e in h.sent.lifecycle("c2")][-1] == "assign_handler"


async def test_the_same_address_without_coordinates_is_the_same_place(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", LIGHT, address="청라로 12"))
    await h.routing.on_filed(complaint("c2", LIGHT_TOO, phone="010-2222-3333", address="청라로12"))
    assert [e.trigger for e in h.sent.lifecycle("c2")][-1] == "link"


async def test_unlink_handles_it_alone(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", LIGHT, address="청라로 12"))
    await h.routing.on_filed(complaint("c2", LIGHT_TOO, phone="010-2222-3333", address="청라로 12"))
    await h.routing.on_command(UnlinkComplaint(complaint_id="c2", actor=DEPT, note="다른 가로등"))
    last = h.sent.lifecycle("c2")[-1]
    assert (last.trigger, last.linked_to is not None) == ("unlink", True)
    stored = await h.store.get("c2")
    assert stored is not None
    assert stored.linked_to is None


async def _case_with_two_linked(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", LIGHT, address="청라로 12"))
    for n, cid in enumerate(("c2", "c3")):
        await h.routing.on_filed(
            complaint(cid, LIGHT_TOO, phone=f"010-2222-333{n}", address="청라로 12")
        )
    assert [h.sent.lifecycle(c)[-1].trigger for c in ("c2", "c3")] == ["link", "link"]


async def test_resolving_the_case_resolves_the_linked_ones_with_the_same_result(
    h: Harness,
) -> None:
    await _case_with_two_linked(h)
    await h.routing.on_command(StartSiteCheck(complaint_id="c1", actor=DEPT))
    await h.routing.on_command(
        ResolveComplaint(complaint_id="c1", actor=DEPT, note="가로등을 교체했습니다")
    )
    for cid in ("c2", "c3"):
        moves = h.sent.lifecycle(cid)[-2:]
        assert [(e.trigger, e.to_state, e.case_of) for e in moves] == [
            ("start_site_check", ComplaintState.SITE_CHECK, "c1"),
            ("resolve", ComplaintState.RESOLVED, "c1"),
        ]
        assert moves[-1].note == "가로등을 교체했습니다"
        stored = await h.store.get(cid)
        assert stored is not None
        assert (stored.state, stored.result) == (ComplaintState.RESOLVED, "가로등을 교체했습니다")
    assert h.rejections() == []


async def test_a_follow_done_again_is_a_duplicate(h: Harness) -> None:
    await _case_with_two_linked(h)
    await h.routing.on_command(
        ResolveComplaint(complaint_id="c1", actor=DEPT, note="가로등을 교체했습니다")
    )
    before = len(h.sent.lifecycle("c2"))
    await h.routing.follow_cases(h.sent.lifecycle("c1")[-1:])
    assert len(h.sent.lifecycle("c2")) == before
    assert h.duplicates.count("complaint.lifecycle") == 2


async def test_an_unlinked_complaint_no_longer_follows_and_a_withdrawn_case_releases(
    h: Harness,
) -> None:
    await _case_with_two_linked(h)
    await h.routing.on_command(UnlinkComplaint(complaint_id="c2", actor=DEPT, note="다른 가로등"))
    await h.routing.on_command(WithdrawComplaint(complaint_id="c1", actor="resident"))
    assert h.sent.lifecycle("c2")[-1].trigger == "unlink"
    assert h.sent.lifecycle("c2")[-1].case_of is None
    released = h.sent.lifecycle("c3")[-1]
    assert (released.trigger, released.case_of, released.to_state) == (
        "unlink",
        "c1",
        ComplaintState.HANDLER_ASSIGNED,
    )
    stored = await h.store.get("c3")
    assert stored is not None
    assert stored.linked_to is None


def test_routing_shares_the_classifiers_tokenizer_rather_than_loading_a_second_kiwi() -> None:
    from routing.app import tokenizer_of
    from routing.classifier import Classifier

    model = Classifier(threshold=0.75, general_desk="civil-passport")
    features = model.pipeline.named_steps["features"]
    [shared] = [
        part.analyzer
        for _, part in features.transformer_list
        if isinstance(part.analyzer, MorphemeAnalyzer)
    ]
    assert tokenizer_of(model) is shared


# -- '이미 접수된 민원이 있어요': a resident chooses the case to join ----------------------


async def test_a_resident_who_chooses_to_join_an_open_case_is_linked_to_it(h: Harness) -> None:
    await h.routing.on_filed(complaint("c1", LIGHT, address="청라로 12"))
    chosen = complaint("c2", "불법 주차 단속 해주세요", phone="010-2222-3333", dong="청라3동")
    await h.routing.on_filed(chosen.model_copy(update={"joins": "c1"}))
    last = h.sent.lifecycle("c2")[-1]
    case = h.sent.lifecycle("c1")[-1]
    assert last.trigger == "link"
    assert last.linked_to is not None
    assert (last.linked_to.complaint_id, last.linked_to.similarity) == ("c1", 1.0)
    assert (last.department, last.handler) == (case.department, case.handler)


@pytest.mark.parametrize("detection", [True, False])
async def test_a_case_no_longer_open_is_not_joined_the_complaint_is_routed_alone(
    detection: bool,
) -> None:
    h = harness()
    if detection:
        h.routing.cases = CaseDetection(
            tokenize=words, matcher=Matcher(similarity=SIMILARITY, policy=POLICY), phone_key=KEY
        )
    await h.routing.on_filed(complaint("c1", LIGHT, address="청라로 12"))
    await h.routing.on_filed(
        complaint("c2", LIGHT, address="청라로 12").model_copy(update={"joins": "c1"})
    )
    assert h.sent.lifecycle("c2")[-1].trigger == "link"  # open: joined, detection or not
    await resolve(h, "c1")
    late = complaint("c3", LIGHT, phone="010-3333-4444", address="청라로 12")
    await h.routing.on_filed(late.model_copy(update={"joins": "c1"}))
    await h.routing.on_filed(
        complaint("c4", LIGHT, phone="010-4444-5555").model_copy(update={"joins": "nobody"})
    )
    for cid in ("c3", "c4"):
        last = h.sent.lifecycle(cid)[-1]
        assert (last.trigger, last.linked_to) == ("assign_handler", None)


async def test_duplicates_in_one_batch_join_the_first_of_them(h: Harness) -> None:
    await h.routing.handle(
        [
            complaint("c1", LIGHT, address="청라로 12"),
            complaint("c2", LIGHT_TOO, phone="010-2222-3333", address="청라로 12"),
            complaint("c3", "불법 주차 단속 해주세요", phone="010-3333-4444", address="청라로 12"),
            complaint("c4", LIGHT_TOO, phone="010-4444-5555", address="청라로12"),
        ]
    )
    case = h.sent.lifecycle("c1")[-1]
    assert case.trigger == "assign_handler"
    assert case.handler is not None
    for cid in ("c2", "c4"):
        last = h.sent.lifecycle(cid)[-1]
        assert last.trigger == "link"
        assert last.linked_to is not None
        assert last.linked_to.complaint_id == "c1"
        assert last.handler == case.handler  # the handler the case got in this batch
    assert h.sent.lifecycle("c3")[-1].trigger == "assign_handler"  # another problem


async def test_a_cases_extension_extends_its_linked_complaints_within_their_own_limits(
    h: Harness,
) -> None:
    await _case_with_two_linked(h)
    due = h.sent.lifecycle("c1")[-1].due_at
    assert due is not None
    later = due + timedelta(days=3)
    await h.routing.on_command(
        ExtendDeadline(complaint_id="c1", actor=DEPT, new_due_at=later, note="부품 수급 지연")
    )
    for cid in ("c2", "c3"):
        last = h.sent.lifecycle(cid)[-1]
        assert (last.trigger, last.case_of, last.due_at, last.note) == (
            "extend",
            "c1",
            later,
            "부품 수급 지연",
        )
        stored = await h.store.get(cid)
        assert stored is not None
        assert (stored.due_at, stored.extensions) == (later, 1)
    # a second extension needs each resident's own consent: the case's is not theirs
    again = later + timedelta(days=2)
    await h.routing.on_command(
        ExtendDeadline(
            complaint_id="c1", actor=DEPT, new_due_at=again, note="추가 지연", resident_consent=True
        )
    )
    assert h.sent.lifecycle("c1")[-1].due_at == again
    for cid in ("c2", "c3"):
        assert h.sent.lifecycle(cid)[-1].due_at == later


async def test_an_info_request_stays_with_the_cases_reporter(h: Harness) -> None:
    await _case_with_two_linked(h)
    await h.routing.on_command(StartSiteCheck(complaint_id="c1", actor=DEPT))
    await h.routing.on_command(StartReview(complaint_id="c1", actor=DEPT))
    await h.routing.on_command(
        RequestInfo(complaint_id="c1", actor=DEPT, note="사진을 보내 주세요")
    )
    assert h.sent.lifecycle("c1")[-1].trigger == "request_info"
    for cid in ("c2", "c3"):
        assert h.sent.lifecycle(cid)[-1].trigger == "start_review"


CODED = CasePolicy(
    repeat_threshold=0.55,
    repeat_window=timedelta(days=365),
    duplicate_threshold=0.5,
    duplicate_same_service_threshold=0.3,
    duplicate_window=timedelta(days=30),
    duplicate_distance_m=30.0,
)
FULL_BIN = "음식물 수거함 넘쳐요 냄새 나요"
FULL_BIN_TOO = "음식물 수거함 가득 찼어요 치워 주세요"  # 0.37 alike: between the two bars


def test_the_service_codes_set_the_bar() -> None:
    assert CODED.duplicate_bar("waste-food", "waste-food") == 0.3
    assert CODED.duplicate_bar("waste-food", None) == 0.5
    assert CODED.duplicate_bar(None, "waste-food") == 0.5
    assert CODED.duplicate_bar(None, None) == 0.5
    assert CODED.duplicate_bar("waste-food", "recycling") is None
    unset = replace(CODED, duplicate_same_service_threshold=None)
    assert unset.duplicate_bar("waste-food", "waste-food") == 0.5


def open_case(
    cid: str, body: str, code: str | None, department: str = "resource-circulation"
) -> Pending:
    filing = Filing(
        complaint_id=cid,
        department=department,
        area="청라2동",
        service_code=code,
        resident_key=f"t:{cid}",
        terms=tuple(words(body)),
        address="청라로 12",
        lat=None,
        lon=None,
    )
    return Pending.of(filing, "261125-000001", NOW)


NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("new", "case", "linked"),
    [
        ("waste-food", "waste-food", True),  # one service: the lower bar
        (None, "waste-food", False),  # a code missing: the text bar
        ("waste-food", None, False),
        ("recycling", "waste-food", False),
    ],
)
def test_one_service_code_links_texts_the_text_bar_alone_would_not(
    new: str | None, case: str | None, linked: bool
) -> None:
    matcher = Matcher(similarity=SIMILARITY, policy=CODED)
    assert 0.3 <= SIMILARITY.cosine(words(FULL_BIN), words(FULL_BIN_TOO)) < 0.5
    link = matcher.linked_to(
        open_case("c2", FULL_BIN_TOO, new), [open_case("c1", FULL_BIN, case)], NOW
    )
    assert (link is not None) is linked
    if link is not None:
        assert link.to.complaint_id == "c1"


def test_two_service_codes_are_never_linked_even_with_the_same_text() -> None:
    matcher = Matcher(similarity=SIMILARITY, policy=CODED)
    new = open_case("c2", FULL_BIN, "recycling")
    assert matcher.linked_to(new, [open_case("c1", FULL_BIN, "waste-food")], NOW) is None
    assert matcher.linked_to(new, [open_case("c1", FULL_BIN, "recycling")], NOW) is not None


def test_a_code_of_another_department_counts_as_none() -> None:
    """A case transferred in keeps the code it was filed with: not a code of this
    department, so it says nothing about the problem here — the text bar decides."""
    matcher = Matcher(similarity=SIMILARITY, policy=CODED)
    assert service_of("street-light", "resource-circulation") is None
    assert service_of("waste-food", "resource-circulation") == "waste-food"
    assert service_of("waste-food", None) is None
    transferred = open_case("c1", FULL_BIN, "street-light")
    link = matcher.linked_to(open_case("c2", FULL_BIN, "waste-food"), [transferred], NOW)
    assert link is not None
    assert (
        matcher.linked_to(open_case("c2", FULL_BIN_TOO, "waste-food"), [transferred], NOW) is None
    )


async def test_routing_reads_the_service_codes_the_complaints_were_filed_with(h: Harness) -> None:
    await h.routing.on_filed(
        complaint("c1", LIGHT, address="청라로 12").model_copy(
            update={"service_code": "waste-food"}
        )
    )
    other = complaint("c2", LIGHT, phone="010-2222-3333", address="청라로 12")
    await h.routing.on_filed(other.model_copy(update={"service_code": "recycling"}))
    same = complaint("c3", LIGHT, phone="010-3333-4444", address="청라로 12")
    await h.routing.on_filed(same.model_copy(update={"service_code": "waste-food"}))
    assert h.sent.lifecycle("c2")[-1].trigger == "assign_handler"  # two problems named
    last = h.sent.lifecycle("c3")[-1]
    assert last.trigger == "link"
    assert last.linked_to is not None
    assert last.linked_to.complaint_id == "c1"
