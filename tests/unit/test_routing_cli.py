"""``sotong classify`` asks the running routing service first and falls back to its own."""

import json

import httpx

from routing.cli import remote


def routing_answering(ready: int) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            return httpx.Response(ready, json={})
        texts = json.loads(request.content)["texts"]
        assert texts == ["집앞에 차좀 빼주세요"]
        return httpx.Response(
            200, json={"predictions": [{"department": "parking", "confidence": 0.99, "auto": True}]}
        )

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_a_ready_routing_service_answers() -> None:
    answer = remote("http://routing", routing_answering(200))
    assert answer is not None
    assert answer("집앞에 차좀 빼주세요") == {
        "department": "parking",
        "confidence": 0.99,
        "auto": True,
    }


def test_a_routing_service_not_ready_is_not_asked() -> None:
    assert remote("http://routing", routing_answering(503)) is None


def test_no_routing_service_means_classifying_here() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    assert remote("http://127.0.0.1:1", client) is None
