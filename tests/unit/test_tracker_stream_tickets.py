"""Stream tickets: what a browser's EventSource opens a live timeline with instead of the
tracking token in its URL. Signed, so any tracker replica with the key accepts them;
short-lived and for one complaint.

The stream itself needs a real HTTP server (tests/service/test_tracker_read_api.py); here
the tickets as values, and the routes' refusals and documentation on the in-memory app.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from schemas.tokens import hash_token
from tests.unit.test_tracker_api import Tracker, running
from tests.unit.test_tracker_projection import filed, story
from tracker.settings import TrackerSettings
from tracker.sse import StreamTickets

KEY = b"a stream ticket key of 32 bytes or more"
NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
TOKEN = "tracking-token-of-c-1"
RESIDENT = "resident-token-of-c-1-0123456789"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def tickets(clock: Clock, key: bytes = KEY) -> StreamTickets:
    return StreamTickets(key, lifetime=timedelta(seconds=60), clock=clock)


def test_a_ticket_opens_its_complaint_until_it_expires() -> None:
    clock = Clock()
    issuer = tickets(clock)
    ticket, expires_at = issuer.issue("c-1")

    assert expires_at == NOW + timedelta(seconds=60)
    assert issuer.admits(ticket, "c-1")
    clock.now = NOW + timedelta(seconds=59)
    assert issuer.admits(ticket, "c-1")
    clock.now = NOW + timedelta(seconds=60)
    assert not issuer.admits(ticket, "c-1")


def test_another_replica_with_the_key_accepts_it_and_one_without_does_not() -> None:
    clock = Clock()
    ticket, _ = tickets(clock).issue("c-1")

    assert tickets(clock).admits(ticket, "c-1")
    assert not tickets(clock, b"another key, also 32 bytes long!!").admits(ticket, "c-1")


def test_a_ticket_opens_no_other_complaint() -> None:
    clock = Clock()
    ticket, _ = tickets(clock).issue("c-1")

    assert not tickets(clock).admits(ticket, "c-2")


def tampered(ticket: str) -> list[str]:
    version, expiry, nonce, mac = ticket.split(".")
    flip = {"A": "B"}.get(mac[0], "A")
    return [
        f"{version}.{int(expiry) + 3600}.{nonce}.{mac}",  # a longer life
        f"{version}.{expiry}.{nonce}x.{mac}",
        f"{version}.{expiry}.{nonce}.{flip}{mac[1:]}",
        f"t2.{expiry}.{nonce}.{mac}",
        f"{version}.{expiry}.{nonce}",
        f"{version}.٣{expiry[1:]}.{nonce}.{mac}",  # a digit, but not an ASCII one
        f"{version}.{expiry}.{nonce}.{mac}한",
        "",
        "t1...",
        TOKEN,
    ]


def test_a_changed_ticket_opens_nothing() -> None:
    clock = Clock()
    issuer = tickets(clock)
    ticket, _ = issuer.issue("c-1")

    for changed in tampered(ticket):
        assert not issuer.admits(changed, "c-1"), changed
    assert not issuer.admits(None, "c-1")


def test_tickets_differ_and_hold_no_token() -> None:
    issuer = tickets(Clock())
    first, _ = issuer.issue("c-1")
    second, _ = issuer.issue("c-1")

    assert first != second
    assert "c-1" not in first


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        tickets(Clock(), b"short")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        TrackerSettings(http_port=0, stream_ticket_key=SecretStr("short"))


# -- the routes -------------------------------------------------------------------------


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    async with running(
        stream_ticket_key=SecretStr(KEY.decode()), clock=Clock(), stream_ticket_seconds=60
    ) as tracker:
        events = story("c-1")
        events[0] = filed(
            "c-1", token_hash=hash_token(TOKEN), resident_token_hash=hash_token(RESIDENT)
        )
        await tracker.deliver(*events, *story("c-2"))
        yield tracker


@pytest.mark.parametrize(
    "headers",
    [{"X-Tracking-Token": TOKEN}, {"X-Resident-Token": RESIDENT}],
    ids=["tracking", "resident"],
)
async def test_a_resident_gets_a_ticket_with_a_token_in_a_header(
    tracker: Tracker, headers: dict[str, str]
) -> None:
    response = await tracker.http.post("/v1/complaints/c-1/stream-ticket", headers=headers)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert tickets(Clock()).admits(answer["ticket"], "c-1")
    assert answer["expires_at"] == "2026-12-02T06:01:00Z"
    assert answer["stream"] == f"/v1/complaints/c-1/events?ticket={answer['ticket']}"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("path", "params", "headers"),
    [
        ("/v1/complaints/c-1/stream-ticket", {}, {}),
        ("/v1/complaints/c-1/stream-ticket", {}, {"X-Tracking-Token": "wrong"}),
        ("/v1/complaints/c-1/stream-ticket", {"token": TOKEN}, {}),  # only in a header
        ("/v1/complaints/c-2/stream-ticket", {}, {"X-Tracking-Token": TOKEN}),
        ("/v1/complaints/nobody/stream-ticket", {}, {"X-Tracking-Token": TOKEN}),
    ],
)
async def test_no_ticket_without_the_complaints_own_token(
    tracker: Tracker, path: str, params: dict[str, str], headers: dict[str, str]
) -> None:
    response = await tracker.http.post(path, params=params, headers=headers)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_a_stream_refuses_an_expired_another_complaints_or_changed_ticket(
    tracker: Tracker,
) -> None:
    expired, _ = tickets(Clock(NOW - timedelta(seconds=61))).issue("c-1")
    other, _ = tickets(Clock()).issue("c-2")
    valid, _ = tickets(Clock()).issue("c-1")

    for ticket in [expired, other, *tampered(valid)]:
        response = await tracker.http.get("/v1/complaints/c-1/events", params={"ticket": ticket})
        assert response.status_code == 404, ticket
        assert response.json()["error"]["code"] == "not_found"


async def test_the_documents_say_ticket_and_take_no_token_in_the_url(
    tracker: Tracker,
) -> None:
    paths = (await tracker.http.get("/openapi.json")).json()["paths"]

    issue = paths["/v1/complaints/{complaint_id}/stream-ticket"]["post"]
    assert {"201", "404"} <= set(issue["responses"])
    assert {p["name"] for p in issue["parameters"]} == {
        "complaint_id",
        "X-Tracking-Token",
        "X-Resident-Token",
    }
    stream = {
        p["name"]: p for p in paths["/v1/complaints/{complaint_id}/events"]["get"]["parameters"]
    }
    assert "token" not in stream  # a browser passes a ticket; anything else a header
    assert "deprecated" not in stream["ticket"]
    view = {p["name"] for p in paths["/v1/complaints/{complaint_id}"]["get"]["parameters"]}
    assert "token" not in view
