"""A correction and ratings reaching tracker on the real embedded Kafka and MongoDB: the
corrected facts come from the command (``complaint.commands``, which tracker now reads),
counted once routing's change names it; other commands are passed over; ratings show in
``/v1/stats`` per department."""

import asyncio

import httpx
import pytest
from faststream.kafka import KafkaBroker

from schemas import topics
from schemas.commands import StartSiteCheck
from schemas.tokens import hash_token
from services.broker import topic_name
from tests.conftest import Backends
from tests.service.test_tracker_api import STAFF, drop_database, settings
from tests.unit.test_tracker_corrections_ratings import corrected, handled, resolved_and_rated
from tests.unit.test_tracker_projection import filed
from tracker.app import create_app

TOKEN = "tracking-token-of-c1"


async def test_a_correction_and_ratings_on_the_real_broker_and_store(
    backends: Backends, unique: str
) -> None:
    config = settings(backends, unique, create_topics=True)
    app = create_app(config)
    publisher = KafkaBroker(backends.kafka_bootstrap, enable_idempotence=False)
    command, changes = corrected("c1")
    events = [filed("c1", token_hash=hash_token(TOKEN)), *handled("c1")[1:], *changes]
    rated = [e for i, s in enumerate([5, 4, 4]) for e in resolved_and_rated(f"r{i}", "roads", s)]
    transport = httpx.ASGITransport(app)

    async def publish(topic: str, payload: bytes, key: str) -> None:
        await publisher.publish(payload, topic=topic_name(config.kafka, topic), key=key.encode())

    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://tracker") as http,
            publisher,
        ):
            # the command after routing's changes: the address and title wait for it
            for event in [*events, *rated]:
                raw = event.model_dump_json().encode()
                await publish(topics.OF_EVENT[event.event_type], raw, event.complaint_id)
            other = StartSiteCheck(complaint_id="c1", actor="roads")
            await publish(topics.COMMANDS, other.model_dump_json().encode(), "c1")
            await publish(topics.COMMANDS, b"not a command", "c1")
            await publish(topics.COMMANDS, command.model_dump_json().encode(), "c1")
            for _ in range(150):
                view = await http.get("/v1/complaints/c1", headers={"X-Tracking-Token": TOKEN})
                if view.status_code == 200 and view.json()["title"] == "가로등이 꺼져 있어요":
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("the corrected title did not show within 30 s")
            shown = view.json()
            assert shown["dong"] == "청라3동"
            assert [t["trigger"] for t in shown["timeline"]][-2:] == ["correct", "reassign"]
            assert shown["timeline"][-2]["correction"] == {
                "fields": ["address", "dong", "title"],
                "dong": "청라3동",
                "photos": [],
            }
            assert shown["handler"]["name"] == "이담당"
            assert "address" not in shown.get("resident", {})  # the resident's view: no contact
            for _ in range(150):
                stats = (await http.get("/v1/stats", params=PERIOD, headers=STAFF)).json()
                if stats["by_department"].get("roads", {}).get("ratings") == 3:
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("the ratings did not reach the statistics within 30 s")
            roads = stats["by_department"]["roads"]
            assert (roads["ratings"], roads["rating_mean"]) == (3, 4.33)
    finally:
        await drop_database(backends, f"db{unique}")


PERIOD = {"from": "2025-03-01T00:00:00", "to": "2025-04-01T00:00:00"}
