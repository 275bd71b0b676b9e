"""The composition root as deployed: the resident's view fed by the real embedded Kafka
and MongoDB. The resident's view itself is tested in tests/unit/test_tracker_api.py."""

import asyncio

import httpx
import pytest
from faststream.kafka import KafkaBroker
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from schemas import topics
from schemas.tokens import hash_token
from services.broker import topic_name
from services.mongo import Document
from tests.conftest import FAST_RETRY, Backends
from tests.unit.test_tracker_api import TOKEN
from tests.unit.test_tracker_projection import filed, story
from tracker.app import create_app
from tracker.projection import TrackedEvent
from tracker.settings import TrackerSettings
from tracker.store import EVENTS


def settings(backends: Backends, unique: str, *, create_topics: bool) -> TrackerSettings:
    kafka = backends.kafka(f"t{unique}.").model_copy(update={"create_topics": create_topics})
    return TrackerSettings(
        kafka=kafka,
        mongo=backends.mongo(f"db{unique}"),
        retry=FAST_RETRY,
        http_port=0,
        staff_api_keys={"ops": SecretStr(STAFF_KEY)},
        stats_min_cell=1,
    )


STAFF_KEY = "staff-key-for-statistics"
PERIOD = {"from": "2025-03-01T00:00:00", "to": "2025-04-01T00:00:00"}
STAFF = {"X-Api-Key": STAFF_KEY}


async def drop_database(backends: Backends, name: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(backends.mongo_uri)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


async def test_on_the_real_broker_published_events_reach_the_view(
    backends: Backends, unique: str
) -> None:
    """Topics, indexes, consumer group, readiness."""
    config = settings(backends, unique, create_topics=True)
    app = create_app(config)
    publisher = KafkaBroker(backends.kafka_bootstrap, enable_idempotence=False)
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    transport = httpx.ASGITransport(app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://tracker") as http,
            publisher,
        ):
            assert (await http.get("/readyz")).json() == {
                "ready": True,
                "checks": {"kafka": True, "mongodb": True},
            }
            for event in reversed(events):
                await publisher.publish(
                    event.model_dump_json().encode(),
                    topic=topic_name(config.kafka, topics.OF_EVENT[event.event_type]),
                    key=event.complaint_id.encode(),
                )

            for _ in range(150):
                response = await http.get("/v1/complaints/c-1", headers={"X-Tracking-Token": TOKEN})
                if response.status_code == 200 and len(response.json()["timeline"]) == 4:
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("the view did not show all four transitions within 30 s")
            view = response.json()
            assert view["state"] == "site_check"
            assert len(view["notifications"]) == 2
            assert len(view["rejections"]) == 1
    finally:
        await drop_database(backends, f"db{unique}")


async def test_on_the_real_broker_events_before_their_filing_wait_unseen_in_the_log(
    backends: Backends, unique: str
) -> None:
    """Kafka orders each topic, not the four together: a complaint's status changes,
    notifications and rejections can be stored before its filing. Until the filing is
    stored nothing shows them (no phantom in the statistics); then all of them show."""
    config = settings(backends, unique, create_topics=True)
    app = create_app(config)
    publisher = KafkaBroker(backends.kafka_bootstrap, enable_idempotence=False)
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    client: AsyncMongoClient[Document] = AsyncMongoClient(backends.mongo_uri)
    logged = client[f"db{unique}"][EVENTS]

    async def publish(*batch: TrackedEvent) -> None:
        for event in batch:
            await publisher.publish(
                event.model_dump_json().encode(),
                topic=topic_name(config.kafka, topics.OF_EVENT[event.event_type]),
                key=event.complaint_id.encode(),
            )

    async def stored(count: int) -> None:
        for _ in range(150):
            if await logged.count_documents({"complaint_id": "c-1"}) >= count:
                return
            await asyncio.sleep(0.2)
        pytest.fail(f"tracker did not store {count} events of c-1 within 30 s")

    transport = httpx.ASGITransport(app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://tracker") as http,
            publisher,
        ):
            await publish(*events[1:])
            await stored(len(events) - 1)

            stats = (await http.get("/v1/stats", params=PERIOD, headers=STAFF)).json()
            assert (stats["complaints"], stats["awaiting_routing"]) == (0, 0)
            hidden = await http.get("/v1/complaints/c-1", headers={"X-Tracking-Token": TOKEN})
            assert hidden.status_code == 404

            await publish(events[0])
            for _ in range(150):
                response = await http.get("/v1/complaints/c-1", headers={"X-Tracking-Token": TOKEN})
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("the filing did not bring the complaint in within 30 s")
            view = response.json()
            assert [entry["sequence"] for entry in view["timeline"]] == [1, 2, 3, 4]
            assert (len(view["notifications"]), len(view["rejections"])) == (2, 1)
            stats = (await http.get("/v1/stats", params=PERIOD, headers=STAFF)).json()
            assert (stats["complaints"], stats["by_state"]) == (1, {"site_check": 1})
    finally:
        await client.close()
        await drop_database(backends, f"db{unique}")
