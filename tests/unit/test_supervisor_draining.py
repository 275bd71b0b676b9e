"""intake's drain gate: once told to drain, writes get 503 with Retry-After; reads pass."""

from typing import Any

from services.draining import DrainGate


async def call(gate: DrainGate, method: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await gate({"type": "http", "method": method, "path": "/v1/complaints"}, receive, send)
    return sent


async def inner(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def test_filings_are_refused_with_retry_after_only_while_draining() -> None:
    gate = DrainGate(inner, retry_after_seconds=17)
    assert (await call(gate, "POST"))[0]["status"] == 201
    gate.drain()
    start, body = await call(gate, "POST")
    assert start["status"] == 503
    assert (b"retry-after", b"17") in start["headers"]
    assert b'"code": "draining"' in body["body"]
    assert (await call(gate, "GET"))[0]["status"] == 201
