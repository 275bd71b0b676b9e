"""The live timeline over a real HTTP server, fed through the in-memory broker into the
real MongoDB: an in-process transport buffers the whole response and a stream never ends.
The rest of the read API is tested on the in-memory store in
tests/unit/test_tracker_read_api.py.
"""

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker
from pydantic import SecretStr

from schemas import topics
from schemas.events import utcnow
from schemas.tokens import hash_token
from services.runtime import Runtime
from sotong.localstack import free_port
from tests.conftest import Backends
from tests.service.test_tracker_api import drop_database, settings
from tests.unit.test_tracker_projection import filed, story
from tracker.app import create_app
from tracker.projection import TrackedEvent
from tracker.sse import StreamTickets

TOKEN = "tracking-token-of-c-1"
TICKET_KEY = b"the stream ticket key every tracker replica shares"


@dataclass
class Tracker:
    app: FastAPI
    runtime: Runtime

    async def deliver(self, *events: TrackedEvent) -> None:
        for event in events:
            await self.runtime.publish(topics.OF_EVENT[event.event_type], event)


@pytest.fixture
async def tracker(backends: Backends, unique: str) -> AsyncIterator[Tracker]:
    config = settings(backends, unique, create_topics=False).model_copy(
        update={
            "sse_poll_seconds": 0.1,
            "sse_keepalive_seconds": 0.5,
            "sse_max_per_complaint": 2,
            "stream_ticket_key": SecretStr(TICKET_KEY.decode()),
        }
    )
    runtime = Runtime.build("tracker", config)
    app = create_app(config, runtime=runtime)
    try:
        async with TestKafkaBroker(runtime.broker), app.router.lifespan_context(app):
            yield Tracker(app, runtime)
    finally:
        await drop_database(backends, f"db{unique}")


# -- the live timeline ------------------------------------------------------------------


async def sse_messages(response: httpx.Response) -> AsyncGenerator[dict[str, Any], None]:
    """Server-Sent Events as dicts: ``{"event", "id", "data"}``, or ``{"comment"}``."""
    fields: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if fields:
                if "data" in fields:
                    fields["data"] = json.loads(fields["data"])
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def next_entry(messages: AsyncIterator[dict[str, Any]], within: float = 10) -> Any:
    async with asyncio.timeout(within):
        async for message in messages:
            if message.get("event") == "timeline":
                return message
    raise AssertionError("the stream ended")


@pytest.fixture
async def served(tracker: Tracker) -> AsyncIterator[str]:
    """The same app on a real HTTP server (its lifespan is already running)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(tracker.app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    )
    serving = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started, "the server to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def until(condition: Callable[[], bool], what: str, within: float = 10) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def open_streams(tracker: Tracker) -> float:
    return tracker.runtime.registry.get_sample_value("sotong_tracker_live_streams") or 0.0


@pytest.mark.timeout(120)
async def test_the_timeline_streams_live_until_the_client_leaves(
    tracker: Tracker, served: str
) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events[:-1])

    async with (
        httpx.AsyncClient(base_url=served, timeout=30) as client,
        client.stream(
            "GET", "/v1/complaints/c-1/events", headers={"X-Tracking-Token": TOKEN}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = sse_messages(response)
        stored = [await next_entry(messages) for _ in range(3)]
        assert [m["data"]["state"] for m in stored] == ["received", "assigned", "handler_assigned"]
        assert [m["id"] for m in stored] == ["1", "2", "3"]
        assert open_streams(tracker) == 1

        await tracker.deliver(events[-1])
        live = await next_entry(messages)
        assert live["data"]["state"] == "site_check"
        assert live["data"]["note"] == "내일 오전 현장 확인 예정"
        async with asyncio.timeout(5):
            async for message in messages:
                if "comment" in message:
                    break  # a keep-alive while nothing happens
        await messages.aclose()

    await until(lambda: open_streams(tracker) == 0, "the stream to stop")


@pytest.mark.timeout(120)
async def test_a_reconnecting_stream_resumes_after_the_last_event_id(
    tracker: Tracker, served: str
) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events)

    async with (
        httpx.AsyncClient(base_url=served, timeout=30) as client,
        client.stream(
            "GET",
            "/v1/complaints/c-1/events",
            headers={"X-Tracking-Token": TOKEN, "Last-Event-ID": "3"},
        ) as response,
    ):
        messages = sse_messages(response)
        first = await next_entry(messages)
        await messages.aclose()

    assert first["id"] == "4"
    assert first["data"]["state"] == "site_check"


@pytest.mark.timeout(120)
async def test_one_complaint_has_a_few_live_streams_at_most(tracker: Tracker, served: str) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events)
    path, headers = "/v1/complaints/c-1/events", {"X-Tracking-Token": TOKEN}

    async with (
        httpx.AsyncClient(base_url=served, timeout=30) as client,
        client.stream("GET", path, headers=headers) as first,
        client.stream("GET", path, headers=headers) as second,
    ):
        following = [sse_messages(first), sse_messages(second)]
        for messages in following:
            await next_entry(messages)  # both are following now
        third = await client.get(path, headers=headers)
        for messages in following:
            await messages.aclose()
    assert third.status_code == 429
    assert third.headers["retry-after"] == "30"
    assert third.json()["error"]["code"] == "too_many_streams"
    await until(lambda: open_streams(tracker) == 0, "the streams to stop")


# -- stream tickets: what a browser's EventSource opens the stream with ------------------


def replica_tickets(ago: timedelta = timedelta(0)) -> StreamTickets:
    """Tickets as another tracker replica with the same key issues them, ``ago`` back."""
    return StreamTickets(TICKET_KEY, lifetime=timedelta(seconds=60), clock=lambda: utcnow() - ago)


@pytest.mark.timeout(120)
async def test_a_ticket_from_a_header_token_opens_the_stream(tracker: Tracker, served: str) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events)

    async with httpx.AsyncClient(base_url=served, timeout=30) as client:
        issued = await client.post(
            "/v1/complaints/c-1/stream-ticket", headers={"X-Tracking-Token": TOKEN}
        )
        assert issued.status_code == 201, issued.text
        ticket = issued.json()["ticket"]
        assert TOKEN not in issued.json()["stream"]
        async with client.stream("GET", issued.json()["stream"]) as response:
            assert response.status_code == 200
            # a resident's answer: never stored by a cache, its URL never sent on
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["referrer-policy"] == "no-referrer"
            messages = sse_messages(response)
            first = await next_entry(messages)
            await messages.aclose()
        # another replica sharing the key accepts a ticket this one issued, and vice versa
        assert replica_tickets().admits(ticket, "c-1")
        theirs, _ = replica_tickets().issue("c-1")
        async with client.stream(
            "GET", "/v1/complaints/c-1/events", params={"ticket": theirs}
        ) as response:
            assert response.status_code == 200
            messages = sse_messages(response)
            again = await next_entry(messages)
            await messages.aclose()

    assert first["data"]["state"] == again["data"]["state"] == "received"
    await until(lambda: open_streams(tracker) == 0, "the streams to stop")


@pytest.mark.timeout(120)
async def test_an_expired_another_complaints_or_tampered_ticket_is_refused(
    tracker: Tracker, served: str
) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events, *story("c-2"))
    expired, _ = replica_tickets(ago=timedelta(seconds=61)).issue("c-1")
    other, _ = replica_tickets().issue("c-2")
    valid, _ = replica_tickets().issue("c-1")
    version, expiry, nonce, mac = valid.split(".")
    tampered = [
        f"{version}.{int(expiry) + 3600}.{nonce}.{mac}",
        f"{version}.{expiry}.{nonce}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
    ]
    foreign = StreamTickets(
        b"a key no tracker replica holds, 32+", lifetime=timedelta(seconds=60), clock=utcnow
    ).issue("c-1")[0]

    async with httpx.AsyncClient(base_url=served, timeout=30) as client:
        for ticket in (expired, other, *tampered, foreign):
            response = await client.get("/v1/complaints/c-1/events", params={"ticket": ticket})
            assert response.status_code == 404, ticket
            assert response.json()["error"]["code"] == "not_found"
            assert response.headers["cache-control"] == "no-store"
    assert open_streams(tracker) == 0
