"""The HTTP server's edges without a socket: the kit's protocol fed bytes through an
in-memory transport, and the body limit behind another middleware. The same edges over a
real socket, as a client meets them: tests/service/test_http_edges.py."""

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import h11
import httpx
import pytest
import uvicorn
from uvicorn.server import ServerState

from intake.app import create_app
from intake.settings import IntakeSettings
from services.http import BoundedHeadConnection, JsonErrorsH11Protocol, server_protocol
from tests.fakes.intake import InMemorySubmissionStore, RecordingPublish

LIMIT = 64 * 1024


def intake() -> Any:
    return create_app(
        IntakeSettings(max_request_bytes=LIMIT),
        store=InMemorySubmissionStore(),
        publish=RecordingPublish(),
    )


async def test_a_chunked_body_over_the_limit_behind_a_middleware_is_413() -> None:
    """intake's own body limit sits outside the kit's metrics middleware, whose task group
    turns the limit's exception into an exception group FastAPI answered 400 (then 422)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"channel": "web", "body": "'
        for _ in range(LIMIT * 3 // 8192):
            yield b"a" * 8192
        yield b'"}'

    transport = httpx.ASGITransport(intake())
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        answer = await http.post(
            "/v1/complaints", content=chunks(), headers={"content-type": "application/json"}
        )

    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert answer.headers["connection"] == "close"


# -- the request head -------------------------------------------------------------------


def head(headers: Iterable[tuple[str, str]]) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"GET /healthz HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode()


def test_a_complete_head_over_the_bound_is_refused_with_the_hint_431() -> None:
    conn = BoundedHeadConnection(2048)
    conn.receive_data(head([("X-Filler", "a" * 3000)]))

    with pytest.raises(h11.RemoteProtocolError) as caught:
        conn.next_event()
    assert caught.value.error_status_hint == 431
    assert conn.refusal is caught.value


def test_an_incomplete_head_over_the_bound_is_refused_with_the_hint_431() -> None:
    conn = BoundedHeadConnection(2048)
    conn.receive_data(head([("X-Filler", "a" * 3000)])[:2500])  # no blank line yet

    with pytest.raises(h11.RemoteProtocolError) as caught:
        conn.next_event()
    assert caught.value.error_status_hint == 431


def test_a_head_within_the_bound_is_a_request() -> None:
    conn = BoundedHeadConnection(2048)
    conn.receive_data(head([("X-Filler", "a" * 1500)]))

    assert isinstance(conn.next_event(), h11.Request)
    assert conn.refusal is None


# -- the protocol on an in-memory transport ---------------------------------------------


class MemoryTransport(asyncio.Transport):
    """What the protocol writes, whether it half-closed or closed, and whether it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.eof_written = False
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.eof_written, "written after the half-close"
        self.written += data

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8001)}.get(
            name, default
        )

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        raw_head, _, body = bytes(self.written).partition(b"\r\n\r\n")
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        headers = {n.strip().lower(): v.strip() for n, _, v in (h.partition(":") for h in lines)}
        return int(status_line.split()[1]), headers, body


def protocol(linger_bytes: int = 256 * 1024) -> tuple[JsonErrorsH11Protocol, MemoryTransport]:
    config = uvicorn.Config(intake(), lifespan="off", log_config=None)
    kind = server_protocol(max_head_bytes=4096, linger_bytes=linger_bytes, linger_seconds=30)
    made = kind(config=config, server_state=ServerState(), app_state={})
    transport = MemoryTransport()
    made.connection_made(transport)
    return made, transport


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the protocol did not get there")


async def test_a_body_refused_unread_is_answered_then_discarded_not_reset() -> None:
    made, transport = protocol(linger_bytes=256 * 1024)
    made.data_received(
        b"POST /v1/complaints HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000\r\n\r\n" + b"a" * 1000
    )
    await until(lambda: transport.eof_written)

    status, headers, body = transport.answer()
    assert (status, headers["connection"]) == (413, "close")
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    # half-closed, reading on: what the client still sends is read and dropped
    assert made.lingering
    assert transport.reading
    assert not transport.closed
    made.data_received(b"a" * 200 * 1024)
    assert not transport.closed
    made.data_received(b"a" * 100 * 1024)  # beyond the bound: closed for good
    assert transport.closed


async def test_a_client_that_stops_sending_ends_the_lingering() -> None:
    made, transport = protocol()
    made.data_received(
        b"POST /v1/complaints HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: 10000000\r\n\r\n"
    )
    await until(lambda: transport.eof_written)

    assert transport.answer()[0] == 413
    assert b"100 Continue" not in transport.written
    made.eof_received()  # asyncio closes the transport itself when this returns falsy
    made.connection_lost(None)
    assert made._linger_timer is None


async def test_an_oversized_head_is_431_in_the_error_shape_and_lingers() -> None:
    made, transport = protocol()
    made.data_received(head([("X-Filler", "a" * 5000)]))

    status, headers, body = transport.answer()
    assert (status, headers["content-type"], headers["connection"]) == (
        431,
        "application/json",
        "close",
    )
    assert (headers["cache-control"], headers["referrer-policy"]) == ("no-store", "no-referrer")
    error = json.loads(body)["error"]
    assert error["code"] == "request_header_fields_too_large"
    assert "4096" in error["message"]
    assert transport.eof_written
    assert not transport.closed
    made.data_received(b"more of what the client was sending")
    assert not transport.closed


async def test_a_finished_request_closes_at_once() -> None:
    made, transport = protocol()
    made.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await until(lambda: transport.closed)

    assert transport.answer()[0] == 200
    assert not made.lingering
    assert not transport.eof_written


async def test_a_stopping_server_closes_a_lingering_connection_at_once() -> None:
    made, transport = protocol()
    made.data_received(
        b"POST /v1/complaints HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
    )
    await until(lambda: transport.eof_written)
    assert not transport.closed

    made.shutdown()

    assert transport.closed
