"""Recovering one's complaints on another device (issue 12) on the real MongoDB-wire server:
intake's stores (complaints, recovery codes, confirmed phones) and the tracker's (event log
and read models). What intake publishes is handed to the tracker's own subscribers (the
in-memory broker), so the binding is seen where 내 민원 reads it: the tracker's list by
resident token. The code's way to a phone is the notifier's, checked by the browser tier."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from intake.app import create_app
from intake.contacts import MongoConfirmedPhones, MongoContactCodes
from intake.idempotency import MongoIdempotencyStore
from intake.photo_store import MongoPhotoStore
from intake.recovery import RECOVERY_CODES
from intake.settings import IntakeSettings
from intake.store import MongoSubmissionStore
from schemas import topics
from schemas.events import CodePurpose, ContactCodeIssued, ResidentBound
from services.mongo import Document
from tests.conftest import Backends
from tests.fakes.intake import RecordingPublish
from tests.service.test_tracker_read_api import Tracker, tracker
from tracker.projection import TRACKED_EVENT, TrackedEvent

__all__ = ["tracker"]  # the fixture: a real tracker on the in-memory broker

PHONE = "010-3333-4444"
FILING = {
    "channel": "web",
    "body": "석남동 골목 가로등이 사흘째 꺼져 있어요",
    "resident": {"phone": PHONE, "name": "홍길동"},
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Intake:
    def __init__(self, backends: Backends, db: AsyncDatabase[Document]) -> None:
        self.backends, self.db = backends, db
        self.publish = RecordingPublish()
        self.clock = Clock()
        self.handed: int = 0

    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        """A fresh app instance on the same database (as a restart or a replica is)."""
        app = create_app(
            IntakeSettings(mongo=self.backends.mongo(self.db.name)),
            store=MongoSubmissionStore(self.db),
            publish=self.publish,
            clock=self.clock,
            idempotency_store=MongoIdempotencyStore(self.db, timedelta(hours=24)),
            photo_store=MongoPhotoStore(self.db),
            contact_store=MongoContactCodes(self.db),
            recovery_store=MongoContactCodes(self.db, RECOVERY_CODES),
            confirmed_phones=MongoConfirmedPhones(self.db),
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://intake"
        ) as http:
            yield http

    async def call(self, path: str, body: dict[str, Any]) -> httpx.Response:
        async for http in self.client():
            return await http.post(path, json=body)
        raise AssertionError("no client")

    def codes(self) -> list[ContactCodeIssued]:
        return [
            e
            for e in self.publish.on(topics.CONTACT_CODES)
            if isinstance(e, ContactCodeIssued) and e.purpose is CodePurpose.RECOVERY
        ]

    async def hand_over(self, tracker: Tracker) -> None:
        """What intake published since the last call, to the tracker's subscribers."""
        sent = self.publish.sent[self.handed :]
        self.handed = len(self.publish.sent)
        tracked: list[TrackedEvent] = [
            TRACKED_EVENT.validate_json(s.event.model_dump_json())
            for s in sent
            if s.topic in (topics.FILED, topics.RESIDENT_BINDINGS)
        ]
        await tracker.deliver(*tracked)


@pytest.fixture
async def intake(backends: Backends, mongo_db: AsyncDatabase[Document]) -> Intake:
    await MongoSubmissionStore(mongo_db).ensure_indexes()
    await MongoContactCodes(mongo_db, RECOVERY_CODES).ensure_indexes()
    await MongoConfirmedPhones(mongo_db).ensure_indexes()
    return Intake(backends, mongo_db)


async def file(intake: Intake, **changes: Any) -> dict[str, Any]:
    response = await intake.call("/v1/complaints", FILING | changes)
    assert response.status_code == 201, response.text
    filed: dict[str, Any] = response.json()
    return filed


async def mine(tracker: Tracker, resident_token: str) -> list[str]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(tracker.app), base_url="http://tracker"
    ) as http:
        response = await http.get(
            "/v1/residents/me/complaints", headers={"X-Resident-Token": resident_token}
        )
    assert response.status_code == 200, response.text
    return [item["receipt_number"] for item in response.json()["items"]]


async def test_receipt_and_code_bind_a_new_token_the_tracker_lists_by(
    intake: Intake, tracker: Tracker
) -> None:
    first = await file(intake)
    resident = first["resident_token"]
    second = await file(intake, resident_token=resident)
    other_phone = await file(intake, resident_token=resident, resident={"phone": "010-9999-0000"})
    await intake.hand_over(tracker)
    filed_receipts = {first["receipt_number"], second["receipt_number"]}
    everything = filed_receipts | {other_phone["receipt_number"]}
    await until_listed(tracker, resident, everything)

    # no enumeration: an unknown receipt number answers as a known one
    known = await intake.call("/v1/recovery", {"receipt_number": first["receipt_number"]})
    unknown = await intake.call("/v1/recovery", {"receipt_number": "261202-999999"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    [sent] = intake.codes()
    assert sent.phone == PHONE
    stored = await intake.db[RECOVERY_CODES].find_one({"_id": first["complaint_id"]})
    assert stored is not None
    assert sent.code not in str(stored)  # only a salted hash

    wrong = f"{(int(sent.code) + 1) % 1_000_000:06d}"
    refused = await intake.call(
        "/v1/recovery/confirm", {"receipt_number": first["receipt_number"], "code": wrong}
    )
    never = await intake.call(
        "/v1/recovery/confirm", {"receipt_number": "261202-999999", "code": sent.code}
    )
    assert refused.status_code == never.status_code == 422
    assert refused.json() == never.json()

    right = await intake.call(
        "/v1/recovery/confirm", {"receipt_number": first["receipt_number"], "code": sent.code}
    )
    assert right.status_code == 200, right.text
    token = right.json()["resident_token"]
    assert {c["receipt_number"] for c in right.json()["complaints"]} == filed_receipts

    await intake.hand_over(tracker)
    assert await until_listed(tracker, token, filed_receipts) == filed_receipts
    assert set(await mine(tracker, resident)) == everything  # the old device keeps its list
    bound = await intake.db["intake_complaints"].find_one({"_id": first["complaint_id"]})
    assert bound is not None
    assert token not in str(bound)  # intake keeps the token's hash, never the token

    # the new token acts as the filer's: a resident action through intake
    action = await intake.call(
        f"/v1/complaints/{second['complaint_id']}/resident-actions",
        {"action": "withdraw", "token": token},
    )
    assert action.status_code == 202, action.text


async def test_tries_are_counted_across_instances_and_a_code_expires(
    intake: Intake, tracker: Tracker
) -> None:
    filed = await file(intake)
    receipt = filed["receipt_number"]
    await intake.call("/v1/recovery", {"receipt_number": receipt})
    [first] = intake.codes()
    intake.clock.now += timedelta(minutes=11)
    late = await intake.call(
        "/v1/recovery/confirm", {"receipt_number": receipt, "code": first.code}
    )

    await intake.call("/v1/recovery", {"receipt_number": receipt})
    fresh = intake.codes()[-1]
    wrong = f"{(int(fresh.code) + 1) % 1_000_000:06d}"
    for _ in range(5):  # each through a new instance: counted in the database
        tried = await intake.call(
            "/v1/recovery/confirm", {"receipt_number": receipt, "code": wrong}
        )
        assert tried.status_code == 422
    locked = await intake.call(
        "/v1/recovery/confirm", {"receipt_number": receipt, "code": fresh.code}
    )

    assert late.status_code == locked.status_code == 422
    stored = await intake.db[RECOVERY_CODES].find_one({"_id": filed["complaint_id"]})
    assert stored is not None
    assert stored["attempts"] == 5
    assert stored["confirmed_at"] is None
    assert not [s for s in intake.publish.sent if isinstance(s.event, ResidentBound)]


async def until_listed(tracker: Tracker, token: str, wanted: set[str]) -> set[str]:
    found: set[str] = set()

    async def check() -> bool:
        found.clear()
        found.update(await mine(tracker, token))
        return wanted <= found

    deadline = datetime.now(UTC) + timedelta(seconds=15)
    while not await check():
        assert datetime.now(UTC) < deadline, f"listed {found}, wanted {wanted}"
        await asyncio.sleep(0.1)
    return found
