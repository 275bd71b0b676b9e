"""반복민원 and 중복민원 in routing on the real MongoDB-wire server, with the real tokenizer
and the shipped threshold: the lookups find what the fake finds."""

import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from routing.app import case_detection
from routing.catalogue import Catalogue
from routing.classifier import Classifier
from routing.deadlines import calendar
from routing.handlers import Routing, RoutingMetrics
from routing.lifecycle import Lifecycle
from routing.settings import RoutingSettings
from routing.store import MongoRoutingStore
from routing.texts import shipped
from schemas import ComplaintFiled
from schemas.commands import ConcludeRepeated, ResolveComplaint
from schemas.common import Location, Resident
from schemas.states import ComplaintState
from services.mongo import Document
from tests.conftest import Backends
from tests.fakes.routing import RecordingPublish, SettableClock

DEPT = "resource-circulation"


@pytest.fixture
async def routing(
    backends: Backends, trained_classifier: Classifier
) -> AsyncIterator[tuple[Routing, RecordingPublish]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(backends.mongo_uri, tz_aware=True)
    db = client[f"test_{uuid.uuid4().hex[:12]}"]
    store = MongoRoutingStore(db)
    await store.ensure_indexes()
    sent = RecordingPublish()
    service = Routing(
        store=store,
        catalogue=Catalogue.load(),
        lifecycle=Lifecycle(),
        texts=shipped(),
        publish=sent,
        metrics=RoutingMetrics(CollectorRegistry()),
        calendar=calendar(),
        classifier=trained_classifier,
        on_duplicate=lambda _: None,
        clock=SettableClock(),
    )
    settings = RoutingSettings(resident_phone_key="service-test-key")
    service.cases = await case_detection(settings, trained_classifier)
    try:
        yield service, sent
    finally:
        await client.drop_database(db.name)
        await client.close()


def filed(cid: str, body: str, phone: str, address: str) -> ComplaintFiled:
    return ComplaintFiled(
        complaint_id=cid,
        receipt_number=f"261125-00000{cid[-1]}",
        tracking_token_hash="0" * 64,
        resident_token_hash=uuid.uuid4().hex * 2,  # a new token each filing: the phone tells
        channel="web",
        resident=Resident(name="홍길동", phone=phone),
        body=body,
        service_code="bulky-waste",
        location=Location(dong="청라2동", address=address),
        submitted_at=SettableClock().now,
    )


async def test_the_same_resident_filing_a_concluded_complaint_again_is_concluded_by_it(
    routing: tuple[Routing, RecordingPublish],
) -> None:
    service, sent = routing
    await service.on_filed(
        filed(
            "c1",
            "대형폐기물 스티커를 붙였는데 소파를 아직 안 가져갔어요.",
            "010-1111-2222",
            "청라로 1",
        )
    )
    await service.on_command(
        ResolveComplaint(complaint_id="c1", actor=DEPT, note="12월 1일 수거했습니다")
    )
    await service.on_filed(
        filed(
            "c2",
            "소파에 스티커 붙였는데 아직도 안 가져갔네요 수거해주세요",
            "01011112222",
            "청라로 1",
        )
    )
    mark = sent.lifecycle("c2")[-1]
    assert mark.trigger == "mark_repeated"
    assert mark.repeated_of is not None
    assert mark.repeated_of.receipt_number == "261125-000001"
    await service.on_command(ConcludeRepeated(complaint_id="c2", actor=DEPT))
    last = sent.lifecycle("c2")[-1]
    assert (last.trigger, last.to_state, last.note) == (
        "conclude_repeated",
        ComplaintState.CLOSED,
        "12월 1일 수거했습니다",
    )


async def test_two_residents_at_one_address_share_one_case_and_its_result(
    routing: tuple[Routing, RecordingPublish],
) -> None:
    service, sent = routing
    await service.on_filed(
        filed("c1", "집 앞에 누가 소파를 버리고 갔어요 수거해 주세요", "010-1111-2222", "청라로 5")
    )
    await service.on_filed(
        filed("c2", "청라로 5 앞에 소파 버려져 있어요 치워주세요", "010-3333-4444", "청라로 5")
    )
    link = sent.lifecycle("c2")[-1]
    assert (link.trigger, link.linked_to and link.linked_to.complaint_id) == ("link", "c1")
    await service.on_command(
        ResolveComplaint(complaint_id="c1", actor=DEPT, note="소파를 수거했습니다")
    )
    followed = sent.lifecycle("c2")[-1]
    assert (followed.trigger, followed.to_state, followed.note, followed.case_of) == (
        "resolve",
        ComplaintState.RESOLVED,
        "소파를 수거했습니다",
        "c1",
    )


def test_the_idf_routing_takes_from_the_classifier_is_the_one_the_eval_measures(
    trained_classifier: Classifier,
) -> None:
    """Start-up reads idf from the fitted classifier instead of tokenizing the examples
    again; on the shipped examples it is the idf ``sotong repeat-eval`` learns."""
    from routing.app import similarity_of, tokenizer_of
    from routing.classifier import load_examples
    from routing.similarity import Similarity, terms_of

    taken = similarity_of(trained_classifier)
    assert taken is not None
    tokenize = tokenizer_of(trained_classifier)
    learned = Similarity.fit(terms_of(e.text, tokenize) for e in load_examples())
    assert taken.idf.keys() == learned.idf.keys()
    assert all(abs(taken.idf[t] - learned.idf[t]) < 1e-9 for t in learned.idf)
    assert abs(taken.unseen_idf - learned.unseen_idf) < 0.05
