"""What a client meets at the edge of the HTTP server, before or beside the application:
``sotong run intake`` as a process, as in production, spoken to by httpx and raw sockets.

A body over the limit and a header block over the limit are refused with the kit's JSON
error, and the client reads that answer: the server half-closes and discards what the
client is still sending (a lingering close) instead of closing under it, which would make
the client's kernel answer its next write with a reset and drop the 413 unread.
"""

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from sotong import localstack
from tests.conftest import Backends

LIMIT = 64 * 1024
"""intake's body limit here (SOTONG_INTAKE_MAX_REQUEST_BYTES): small, so the bodies that
exceed it several times over are quick to send."""
HEADER_LIMIT = 16 * 1024
LINGER_BYTES = 1024 * 1024
PHOTO_LIMIT = 128 * 1024


@pytest.fixture(scope="module")
def intake(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    unique = uuid.uuid4().hex[:10]
    env = backends.env(database=f"test_{unique}", topic_prefix=f"t{unique}.") | {
        "SOTONG_INTAKE_MAX_REQUEST_BYTES": str(LIMIT),
        "SOTONG_HTTP_MAX_HEADER_BYTES": str(HEADER_LIMIT),
        "SOTONG_HTTP_LINGER_BYTES": str(LINGER_BYTES),
        "SOTONG_INTAKE_PHOTO_MAX_BYTES": str(PHOTO_LIMIT),
    }
    log_dir = tmp_path_factory.mktemp("http-edges-logs")
    procs = localstack.start_services(env, log_dir, names=["intake"])
    try:
        yield procs["intake"].url
    finally:
        procs["intake"].child.stop()


FILING = {"channel": "web", "body": "가로등이 꺼졌어요"}


def assert_refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == code
    assert answer.headers["connection"] == "close"
    # answered before the application (431) or outside its header middleware (intake's 413)
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("times_the_limit", [1, 4, 12])
async def test_an_oversized_body_is_answered_413_and_the_client_reads_it(
    intake: str, times_the_limit: int
) -> None:
    body = b'{"channel": "web", "body": "' + b"a" * (LIMIT * times_the_limit) + b'"}'
    # a reset is a race, lost often but not always: before the lingering close, httpx's
    # async client read a reset instead of the 413 in 14 to 39 of 40 tries
    for _ in range(10):
        async with httpx.AsyncClient(base_url=intake, timeout=30) as http:
            answer = await http.post(
                "/v1/complaints", content=body, headers={"content-type": "application/json"}
            )
        assert_refused(answer, 413, "payload_too_large")
        assert str(LIMIT) in answer.json()["error"]["message"]


async def test_a_chunked_body_over_the_limit_is_answered_413_and_read(intake: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"channel": "web", "body": "'
        for _ in range(LIMIT * 6 // 8192):
            yield b"a" * 8192
        yield b'"}'

    for _ in range(5):
        async with httpx.AsyncClient(base_url=intake, timeout=30) as http:
            answer = await http.post(
                "/v1/complaints", content=chunks(), headers={"content-type": "application/json"}
            )
        assert "content-length" not in answer.request.headers
        assert_refused(answer, 413, "payload_too_large")


async def test_a_photo_over_its_limit_is_answered_413_and_read(intake: str) -> None:
    photo = b"\xff\xd8" + b"\x00" * (PHOTO_LIMIT * 5)
    for _ in range(5):
        async with httpx.AsyncClient(base_url=intake, timeout=30) as http:
            answer = await http.post("/v1/photos", files={"file": ("big.jpg", photo)})
        assert_refused(answer, 413, "payload_too_large")


def sent_until_cut_off(port: int, declared: int) -> int:
    """Bytes of a body written before the connection broke (or all of them)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(
            b"POST /v1/complaints HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(declared).encode() + b"\r\n\r\n"
        )
        sent = 0
        try:
            while sent < declared:
                sent += raw.send(b"a" * 65536)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return sent


def test_the_server_stops_discarding_beyond_its_bound(intake: str) -> None:
    """A client that goes on sending far beyond the limit is cut off once the server has
    discarded ``LINGER_BYTES`` of it: a refused request costs the server a bounded read."""
    declared = 1024 * 1024 * 1024

    sent = sent_until_cut_off(int(intake.rsplit(":", 1)[1]), declared)

    # what the server discarded, plus what the two kernels' socket buffers held
    assert LINGER_BYTES <= sent < LINGER_BYTES + 16 * 1024 * 1024


async def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


async def test_expect_100_continue_is_answered_413_before_the_body_is_sent(intake: str) -> None:
    port = int(intake.rsplit(":", 1)[1])
    request = (
        b"POST /v1/complaints HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: " + str(LIMIT * 100).encode() + b"\r\n\r\n"
    )

    status, _, body = await raw_exchange(port, request)  # no body sent at all

    assert status == 413  # not 100 Continue: the client need not send what is refused
    assert json.loads(body)["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("size", [HEADER_LIMIT + 1, 70_000, 400_000])
async def test_an_oversized_header_is_answered_431_in_the_error_shape(
    intake: str, size: int
) -> None:
    for _ in range(5):
        async with httpx.AsyncClient(base_url=intake, timeout=30) as http:
            answer = await http.post(
                "/v1/complaints", json=FILING, headers={"X-Filler": "a" * size}
            )
        assert_refused(answer, 431, "request_header_fields_too_large")
        assert str(HEADER_LIMIT) in answer.json()["error"]["message"]


def test_many_headers_count_together(intake: str) -> None:
    headers = {f"X-Filler-{n}": "a" * 1000 for n in range(HEADER_LIMIT // 1000 + 1)}
    with httpx.Client(base_url=intake, timeout=30) as http:
        answer = http.post("/v1/complaints", json=FILING, headers=headers)

    assert_refused(answer, 431, "request_header_fields_too_large")


async def test_a_header_block_arriving_slowly_is_refused_too(intake: str) -> None:
    """h11 bounds a request head only while it is incomplete: one sent in small pieces
    meets that bound rather than the check of a complete head."""
    port = int(intake.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: intake\r\n")
        for _ in range(HEADER_LIMIT // 1000 + 2):
            writer.write(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 431 ")


def test_headers_under_the_limit_reach_the_application(intake: str) -> None:
    with httpx.Client(base_url=intake, timeout=30) as http:
        answer = http.post(
            "/v1/complaints", json=FILING, headers={"X-Filler": "a" * (HEADER_LIMIT // 2)}
        )
        after = http.get("/healthz")  # the same connection, kept alive

    assert answer.status_code == 201, answer.text
    assert after.status_code == 200
