"""intake's confirmed contacts on the real MongoDB-wire server (issue 11 §11): the code's
record is kept as a salted hash, attempts are counted in the database across app
instances, and a confirmation is published. Kafka is replaced by a recording publish:
the code's way to the notifier is checked in tests/e2e/test_contact_confirmation.py."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from intake.app import create_app
from intake.contacts import CODES, MongoContactCodes
from intake.idempotency import MongoIdempotencyStore
from intake.photo_store import MongoPhotoStore
from intake.settings import IntakeSettings
from intake.store import MongoSubmissionStore
from schemas import topics
from schemas.events import ContactCodeIssued, ContactConfirmed
from services.mongo import Document
from tests.conftest import Backends
from tests.fakes.intake import RecordingPublish

FILING = {
    "channel": "web",
    "body": "석남동 골목 가로등이 사흘째 꺼져 있어요",
    "resident": {"phone": "010-3333-4444"},
}


class Intake:
    def __init__(self, backends: Backends, db: AsyncDatabase[Document]) -> None:
        self.backends, self.db = backends, db
        self.publish = RecordingPublish()

    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        """A fresh app instance on the same database (as a restart or a replica is)."""
        app = create_app(
            IntakeSettings(mongo=self.backends.mongo(self.db.name)),
            store=MongoSubmissionStore(self.db),
            publish=self.publish,
            idempotency_store=MongoIdempotencyStore(self.db, timedelta(hours=24)),
            photo_store=MongoPhotoStore(self.db),
            contact_store=MongoContactCodes(self.db),
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://intake"
        ) as http:
            yield http


@pytest.fixture
async def intake(backends: Backends, mongo_db: AsyncDatabase[Document]) -> Intake:
    await MongoContactCodes(mongo_db).ensure_indexes()
    await MongoSubmissionStore(mongo_db).ensure_indexes()
    return Intake(backends, mongo_db)


async def confirm(http: httpx.AsyncClient, filed: dict[str, Any], code: str) -> httpx.Response:
    return await http.post(
        f"/v1/complaints/{filed['complaint_id']}/contact/confirm",
        json={"code": code},
        headers={"X-Tracking-Token": filed["tracking_token"]},
    )


async def test_attempts_are_counted_in_the_database_and_the_right_code_confirms(
    intake: Intake,
) -> None:
    async for http in intake.client():
        filed = (await http.post("/v1/complaints", json=FILING)).json()
    [issued] = [
        e for e in intake.publish.on(topics.CONTACT_CODES) if isinstance(e, ContactCodeIssued)
    ]
    wrong = f"{(int(issued.code) + 1) % 1_000_000:06d}"

    doc = await intake.db[CODES].find_one({"_id": filed["complaint_id"]})
    assert doc is not None
    assert issued.code not in str(doc), "only a salted hash of the code is stored"

    for _ in range(4):  # four wrong tries, each through a new instance
        async for http in intake.client():
            assert (await confirm(http, filed, wrong)).status_code == 422
    async for http in intake.client():
        assert (await confirm(http, filed, issued.code)).status_code == 200
        assert (await confirm(http, filed, issued.code)).status_code == 200

    doc = await intake.db[CODES].find_one({"_id": filed["complaint_id"]})
    assert doc is not None
    assert doc["attempts"] == 5
    assert doc["confirmed_at"] is not None
    confirmations = [
        e for e in intake.publish.on(topics.CONTACT_CODES) if isinstance(e, ContactConfirmed)
    ]
    assert {e.complaint_id for e in confirmations} == {filed["complaint_id"]}
    assert len({e.event_id for e in confirmations}) == 1
