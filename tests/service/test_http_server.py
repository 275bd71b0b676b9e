"""What a client meets before the application runs: ``sotong run intake`` as a process on
a free port, on the real backends, spoken to over a raw socket.

uvicorn's HTTP/1.1 parser (h11) answers a request it cannot parse itself; with the
protocol ``sotong run`` passes it, that answer is the same JSON error as every other.
"""

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest

from services.http import MALFORMED_HTTP
from sotong import localstack
from tests.conftest import Backends


@pytest.fixture(scope="module")
def intake(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    unique = uuid.uuid4().hex[:10]
    env = backends.env(database=f"test_{unique}", topic_prefix=f"t{unique}.")
    log_dir = tmp_path_factory.mktemp("http-server-logs")
    procs = localstack.start_services(env, log_dir, names=["intake"])
    try:
        yield procs["intake"].port
    finally:
        procs["intake"].child.stop()


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes or says how long it is)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


async def test_raw_korean_in_the_url_gets_the_json_error(intake: int) -> None:
    request = "GET /v1/complaints/한글 HTTP/1.1\r\nHost: intake\r\n\r\n".encode()

    status, headers, body = await exchange(intake, request)

    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": {"code": "invalid_request", "message": MALFORMED_HTTP}}


async def test_percent_encoded_korean_in_the_url_reaches_the_app(intake: int) -> None:
    payload = b'{"action": "withdraw", "token": "a-tracking-token"}'
    request = (
        b"POST /v1/complaints/%ED%95%9C%EA%B8%80/resident-actions HTTP/1.1\r\n"
        b"Host: intake\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )

    status, headers, body = await exchange(intake, request)

    assert (status, headers["content-type"]) == (422, "application/json")
    fields = json.loads(body)["error"]["fields"]
    assert [f["field"] for f in fields] == ["path.complaint_id"]


async def test_a_json_body_without_a_content_type_is_read_as_json(intake: int) -> None:
    payload = json.dumps({"channel": "web", "body": "가로등이 꺼졌어요"}).encode()
    request = (
        b"POST /v1/complaints HTTP/1.1\r\nHost: intake\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )

    status, _, body = await exchange(intake, request)

    assert status == 201, body
    assert json.loads(body)["duplicate"] is False
