"""intake's per-phone daily limit on the real MongoDB-wire server: the count is kept in the
database under a keyed hash, so it holds for a new intake process (a restart, a replica),
concurrent filings are counted once each, and the day's counts carry a TTL index."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from intake.app import create_app
from intake.settings import IntakeSettings
from intake.store import PHONE_DAYS, MongoSubmissionStore
from services.mongo import Document
from tests.conftest import Backends
from tests.fakes.intake import InMemoryIdempotencyStore, RecordingPublish
from tests.service.test_intake_retries_and_photos import ByCollection

PHONE = "010-3456-7890"
PORTAL = "portal-credential-for-service-tests"


NOON_IN_SEOUL = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def filing(i: int, phone: str = PHONE) -> dict[str, Any]:
    return {
        "channel": "web",
        "channel_ref": f"limits-{i}",
        "body": "청라동 공원 벤치가 부서졌어요",
        "resident": {"phone": phone},
    }


def intake_app(
    backends: Backends, db: AsyncDatabase[Document], **limits: Any
) -> Callable[[], httpx.AsyncClient]:
    """A new intake on the same database: what a restart or another replica is."""
    settings = IntakeSettings(
        mongo=backends.mongo(db.name),
        channel_keys={"web": SecretStr(PORTAL)},
        phone_hash_key=SecretStr("service-test-phone-key"),
        **limits,
    )
    app = create_app(
        settings,
        store=MongoSubmissionStore(db),
        publish=RecordingPublish(),
        idempotency_store=InMemoryIdempotencyStore(),
        # noon in Seoul: a run that crosses the district's midnight must not split the count
        clock=lambda: NOON_IN_SEOUL,
    )

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://intake")

    return client


def as_resident(i: int) -> dict[str, str]:
    return {"X-Api-Key": PORTAL, "X-End-User": f"203.0.113.{i}"}


async def test_the_per_phone_count_survives_a_new_intake_and_refuses_with_retry_after(
    backends: Backends, mongo_db: AsyncDatabase[Document]
) -> None:
    await MongoSubmissionStore(mongo_db).ensure_indexes()
    first = intake_app(backends, mongo_db, filings_per_day_per_phone=3)
    async with first() as http:
        codes = [
            (await http.post("/v1/complaints", json=filing(i), headers=as_resident(i))).status_code
            for i in range(2)
        ]
    assert codes == [201, 201]

    restarted = intake_app(backends, mongo_db, filings_per_day_per_phone=3)
    async with restarted() as http:
        third = await http.post("/v1/complaints", json=filing(2), headers=as_resident(2))
        fourth = await http.post("/v1/complaints", json=filing(3), headers=as_resident(3))
        other = await http.post(
            "/v1/complaints", json=filing(4, "010-1111-2222"), headers=as_resident(4)
        )
    assert third.status_code == 201
    assert fourth.status_code == 429
    assert other.status_code == 201
    retry_after = int(fourth.headers["Retry-After"])
    assert 0 < retry_after <= 24 * 3600
    error = fourth.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"].startswith("phone: ")
    assert "7890" not in fourth.text

    docs = [doc async for doc in mongo_db[PHONE_DAYS].find()]
    assert sorted(doc["n"] for doc in docs) == [1, 4]
    assert all("7890" not in str(doc["_id"]) for doc in docs)
    indexes = await mongo_db[PHONE_DAYS].index_information()
    assert indexes["expiry"]["expireAfterSeconds"] == 0


async def test_concurrent_filings_with_one_phone_are_each_counted_once(
    backends: Backends, mongo_db: AsyncDatabase[Document]
) -> None:
    await MongoSubmissionStore(mongo_db).ensure_indexes()
    listener = ByCollection()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        backends.mongo_uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        db = client[mongo_db.name]
        one = intake_app(backends, db, filings_per_day_per_phone=4)
        listener.seen.clear()
        async with one() as http:
            answers = await asyncio.gather(
                *(
                    http.post("/v1/complaints", json=filing(i), headers=as_resident(i))
                    for i in range(8)
                )
            )
        # one process: exact, each filing its own place in the count
        assert sorted(a.status_code for a in answers) == [201] * 4 + [429] * 4
        doc = await db[PHONE_DAYS].find_one()
        assert doc is not None
        assert doc["n"] == 8
        # group-committed: a few commands for eight filings, not one round trip each
        counting = sum(n for (_, target), n in listener.seen.items() if target == PHONE_DAYS)
        assert 1 <= counting <= 4, listener.seen
    finally:
        await client.close()


async def test_two_replicas_racing_never_admit_more_than_the_limit(
    backends: Backends, mongo_db: AsyncDatabase[Document]
) -> None:
    await MongoSubmissionStore(mongo_db).ensure_indexes()
    replicas = [intake_app(backends, mongo_db, filings_per_day_per_phone=4) for _ in range(2)]
    async with replicas[0]() as one, replicas[1]() as two:
        answers = await asyncio.gather(
            *(
                (one if i % 2 else two).post(
                    "/v1/complaints", json=filing(i), headers=as_resident(i)
                )
                for i in range(8)
            )
        )
    codes = [a.status_code for a in answers]
    assert set(codes) <= {201, 429}
    # racing at the limit both may refuse where one would do: never both admit
    assert 1 <= codes.count(201) <= 4
    doc = await mongo_db[PHONE_DAYS].find_one()
    assert doc is not None
    assert doc["n"] == 8  # every filing counted once, the racing first upserts included


async def test_resident_actions_are_limited_per_resident_and_per_complaint_on_real_intake(
    backends: Backends, mongo_db: AsyncDatabase[Document]
) -> None:
    """A real intake on the real database: each resident behind the portal has a budget
    of resident actions, and one complaint a budget of its own whoever calls, so guessing
    its token from many addresses stops there; the answer never quotes the token or id."""
    await MongoSubmissionStore(mongo_db).ensure_indexes()
    app = intake_app(
        backends,
        mongo_db,
        resident_actions_per_minute=2,
        complaint_actions_per_minute=5,
    )
    async with app() as http:
        filed = [
            (
                await http.post(
                    "/v1/complaints", json=filing(i, f"010-4000-000{i}"), headers=as_resident(i)
                )
            ).json()
            for i in range(2)
        ]
        one, other = (f"/v1/complaints/{f['complaint_id']}/resident-actions" for f in filed)
        token = filed[0]["tracking_token"]
        rate = {"action": "rate", "token": token, "rating": 5}
        # one resident: two actions a minute, the contact code included
        mine = [(await http.post(one, json=rate, headers=as_resident(50))).status_code]
        confirm = await http.post(
            f"/v1/complaints/{filed[0]['complaint_id']}/contact/confirm",
            json={"code": "000000"},
            headers=as_resident(50) | {"X-Tracking-Token": token},
        )
        mine.append(confirm.status_code)
        refused = await http.post(one, json=rate, headers=as_resident(50))
        # many residents guessing the complaint's token: the complaint's budget
        guesses = [
            (
                await http.post(
                    one,
                    json={"action": "withdraw", "token": f"guess-{i}"},
                    headers=as_resident(100 + i),
                )
            ).status_code
            for i in range(4)
        ]
        right_token_too = await http.post(one, json=rate, headers=as_resident(200))
        elsewhere = await http.post(
            other,
            json={"action": "withdraw", "token": filed[1]["tracking_token"]},
            headers=as_resident(201),
        )

    assert mine == [202, 422]  # the code was wrong: judged, so counted
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("client: too many resident actions")
    assert guesses == [404, 404, 404, 429]  # 2 + 3 of the complaint's 5, then refused
    assert right_token_too.status_code == 429
    assert right_token_too.json()["error"]["message"].startswith(
        "complaint: too many actions on this complaint"
    )
    assert int(right_token_too.headers["Retry-After"]) > 0
    assert token not in right_token_too.text
    assert filed[0]["complaint_id"] not in right_token_too.text
    assert elsewhere.status_code == 202
