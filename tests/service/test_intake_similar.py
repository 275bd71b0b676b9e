"""'이미 접수된 민원이 있어요' across the boundary: intake on the real MongoDB-wire server asks
the real tracker over HTTP (served by uvicorn, its read models in the real database server,
fed through the in-memory broker: the fixtures of tests/service/test_tracker_read_api.py).
One resident files; another, about to file the same, is offered the first one's open case
by intake — its public summary only — and joining it is filing with ``joins``."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from intake.app import create_app as intake_app
from intake.contacts import MongoContactCodes
from intake.idempotency import MongoIdempotencyStore
from intake.photo_store import MongoPhotoStore
from intake.settings import IntakeSettings
from intake.store import COLLECTION, MongoSubmissionStore
from intake.tracker_client import TrackerClient
from schemas import ComplaintState, topics
from schemas.events import ComplaintFiled, ComplaintStatusChanged
from services.mongo import Document
from tests.conftest import Backends
from tests.fakes.intake import RecordingPublish
from tests.service.test_tracker_api import STAFF_KEY
from tests.service.test_tracker_read_api import Tracker, served, tracker  # noqa: F401

S = ComplaintState
FIRST: dict[str, Any] = {
    "channel": "web",
    "title": "가로등 고장",
    "body": "청라1동 주민센터 앞 가로등이 일주일째 꺼져 있어요. 연락은 010-1234-5678로 주세요",
    "service_code": "street-light",
    "resident": {"name": "홍길동", "phone": "010-1234-5678"},
    "location": {"address": "인천 서구 청라커낼로 100", "dong": "청라1동"},
}
SECOND: dict[str, Any] = {
    "channel": "web",
    "title": "가로등",
    "body": "주민센터 앞 가로등이 꺼져서 밤에 너무 어두워요",
    "service_code": "street-light",
    "resident": {"name": "김주민", "phone": "010-5555-6666"},
    "location": {"address": "인천 서구 청라커낼로 98", "dong": "청라1동"},
}
PERSONAL = ("홍길동", "010-1234-5678", "1234-5678", "청라커낼로 100")


@pytest.fixture
async def intake(
    backends: Backends,
    mongo_db: AsyncDatabase[Document],
    served: str,  # noqa: F811
) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingPublish]]:
    await MongoSubmissionStore(mongo_db).ensure_indexes()
    publish = RecordingPublish()
    client = TrackerClient.build(served, SecretStr(STAFF_KEY))
    app = intake_app(
        IntakeSettings(mongo=backends.mongo(mongo_db.name)),
        store=MongoSubmissionStore(mongo_db),
        publish=publish,
        tracker=client,
        idempotency_store=MongoIdempotencyStore(mongo_db, timedelta(hours=24)),
        photo_store=MongoPhotoStore(mongo_db),
        contact_store=MongoContactCodes(mongo_db),
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://intake"
        ) as http:
            yield http, publish
    finally:
        await client.aclose()


def moved(filed: ComplaintFiled, sequence: int, to: S, **fields: Any) -> ComplaintStatusChanged:
    return ComplaintStatusChanged(
        complaint_id=filed.complaint_id,
        receipt_number=filed.receipt_number,
        sequence=sequence,
        from_state=None,
        to_state=to,
        trigger=fields.pop("trigger", to.value),
        actor="routing",
        occurred_at=filed.occurred_at + timedelta(seconds=sequence),
        **fields,
    )


@pytest.mark.timeout(120)
async def test_a_second_resident_is_offered_the_first_ones_open_case_and_joins_it(
    tracker: Tracker,  # noqa: F811
    intake: tuple[httpx.AsyncClient, RecordingPublish],
    mongo_db: AsyncDatabase[Document],
) -> None:
    http, publish = intake
    first = await http.post("/v1/complaints", json=FIRST)
    assert first.status_code == 201, first.text
    [filed] = publish.on(topics.FILED)
    assert isinstance(filed, ComplaintFiled)
    await tracker.deliver(
        filed,
        moved(filed, 1, S.RECEIVED, trigger="file"),
        moved(filed, 2, S.ASSIGNED, trigger="assign", department="roads", department_name="도로과"),
    )

    async def offered() -> list[dict[str, Any]]:
        response = await http.post("/v1/complaints/similar", json=SECOND)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["looked_up"] is True
        assert answer["department"] == {"code": "roads", "name": "도로과", "source": "service_code"}
        for personal in PERSONAL:
            assert personal not in response.text
        items: list[dict[str, Any]] = answer["items"]
        return items

    found: list[dict[str, Any]] = []
    for _ in range(100):  # the tracker's batched ingest stores it within a moment
        found = await offered()
        if found:
            break
        await asyncio.sleep(0.05)
    [case] = found
    assert case["complaint_id"] == filed.complaint_id
    assert case["receipt_number"] == filed.receipt_number
    assert (case["state"], case["department_name"], case["dong"]) == (
        "assigned",
        "도로과",
        "청라1동",
    )
    assert case["excerpt"].startswith("청라1동 주민센터 앞 가로등이 일주일째")
    assert case["filed_at"] is not None
    assert await mongo_db[COLLECTION].count_documents({}) == 1  # the lookup filed nothing
    assert len(publish.on(topics.FILED)) == 1

    joined = await http.post("/v1/complaints", json=SECOND | {"joins": case["complaint_id"]})
    assert joined.status_code == 201, joined.text
    second = publish.on(topics.FILED)[-1]
    assert isinstance(second, ComplaintFiled)
    assert second.joins == filed.complaint_id
