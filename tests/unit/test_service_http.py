"""The kit's HTTP face, shared by all four services: what an OpenAPI document says about
refusals, and what a request that cannot be read is answered."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from services.http import ApiError, service_app
from services.openapi import refusals

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@asynccontextmanager
async def no_lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield


async def ready(_: FastAPI) -> dict[str, bool]:
    return {}


class Note(BaseModel):
    text: str


def app(max_request_bytes: int = 1024 * 1024) -> FastAPI:
    built = service_app(
        name="test",
        title="test",
        description="test",
        lifespan=no_lifespan,
        registry=CollectorRegistry(),
        readiness=ready,
        max_request_bytes=max_request_bytes,
    )

    @built.post("/notes/{n}", responses={404: {"description": "No such note."}})
    async def post_note(n: int, note: Note) -> Note:
        if n > 9:
            raise ApiError(404, "not_found", "no such note")
        return note

    @built.get("/notes", responses=refusals(401, 403, 429))
    async def notes() -> list[Note]:
        return []

    return built


def responses(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method]["responses"]
    return found


def test_every_documented_refusal_gets_the_error_body_even_when_a_route_named_no_model() -> None:
    document = app().openapi()

    posted = responses(document, "/notes/{n}", "post")
    assert {s for s in posted if s.startswith("4")} == {"404", "415", "422"}
    assert posted["404"]["description"] == "No such note."
    listed = responses(document, "/notes", "get")
    assert {s for s in listed if s.startswith("4")} == {"401", "403", "429"}
    for status, response in [*posted.items(), *listed.items()]:
        if status.startswith("4"):
            assert response["content"]["application/json"]["schema"] == ERROR_REF
    schemas = document["components"]["schemas"]
    assert {"ErrorResponse", "ErrorDetail", "FieldError"} <= set(schemas)
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)


async def test_a_body_that_is_not_utf8_is_malformed_json_not_a_bare_400() -> None:
    transport = httpx.ASGITransport(app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post(
            "/notes/1",
            content=b'{"text": "\xff\xfe"}',
            headers={"Content-Type": "application/json"},
        )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["message"] == "malformed JSON: the body is not UTF-8"


# The docs page, on a network that reaches no CDN

URL_IN_PAGE = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")


def urls_in(page: str) -> list[str]:
    return [next(g for g in groups if g) for groups in URL_IN_PAGE.findall(page)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
@pytest.mark.parametrize("which", ["kit", "intake"])
async def test_the_docs_pages_load_everything_from_the_service_itself(
    page: str, which: str
) -> None:
    served = app() if which == "kit" else intake_app()
    transport = httpx.ASGITransport(served)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        html = await http.get(page)
        urls = urls_in(html.text)
        answers = {url: await http.get(url) for url in urls}

    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "://" not in html.text, "an absolute URL: the page would reach another host"
    assert "/openapi.json" in urls
    assert any(url.endswith(".js") for url in urls)
    for url, answer in answers.items():
        assert url.startswith("/"), url
        assert answer.status_code == 200, url
        assert answer.content, url
    if page == "/docs":
        assert answers["/docs-assets/swagger-ui-bundle.js"].headers["content-type"] in {
            "text/javascript; charset=utf-8",
            "application/javascript",
        }
        assert '"validatorUrl": null' in html.text


def intake_app() -> FastAPI:
    from intake.app import create_app
    from intake.settings import IntakeSettings
    from tests.fakes.intake import InMemorySubmissionStore, RecordingPublish

    return create_app(IntakeSettings(), store=InMemorySubmissionStore(), publish=RecordingPublish())


async def test_a_body_over_the_limit_is_refused_with_413_declared_or_streamed() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app(max_request_bytes=2048)), base_url="http://t"
    ) as http:
        fits = await http.post("/notes/1", json={"text": "가" * 500})
        declared = await http.post("/notes/1", json={"text": "가" * 1000})

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"text": "'
            for _ in range(10):
                yield b"x" * 512
            yield b'"}'

        streamed = await http.post(
            "/notes/1", content=chunks(), headers={"content-type": "application/json"}
        )
        metrics = (await http.get("/metrics")).text
    assert fits.status_code == 200
    for refused in (declared, streamed):
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "payload_too_large"
        assert "2048 bytes" in refused.json()["error"]["message"]
    assert 'status="413"' in metrics


async def test_a_method_nobody_uses_is_one_metric_label() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app()), base_url="http://t") as http:
        for method in ("FOO", "BAR", "X" * 40):
            await http.request(method, "/notes")
        metrics = (await http.get("/metrics")).text
    assert 'method="OTHER"' in metrics
    assert "FOO" not in metrics
    assert "BAR" not in metrics


async def test_every_answer_is_private_by_default() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app()), base_url="http://t") as http:
        answers = [
            await http.post("/notes/1", json={"text": "x"}),
            await http.post("/notes/10", json={"text": "x"}),
            await http.get("/nowhere"),
            await http.get("/healthz"),
        ]
    for answer in answers:
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_a_dependency_that_is_away_is_503_with_retry_after_not_500() -> None:
    """The database or broker being away is retryable: the client is told to retry."""
    from aiokafka.errors import KafkaConnectionError
    from pymongo.errors import ServerSelectionTimeoutError

    built = app()
    failures: dict[str, Exception] = {
        "db": ServerSelectionTimeoutError("127.0.0.1:27117: connection refused"),
        "broker": KafkaConnectionError("no broker"),
    }

    @built.get("/away/{what}")
    async def away(what: str) -> None:
        raise failures[what]

    transport = httpx.ASGITransport(built, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for what in failures:
            answer = await http.get(f"/away/{what}")
            assert answer.status_code == 503, what
            assert answer.headers["retry-after"] == "5"
            assert answer.json()["error"]["code"] == "unavailable"
            assert "27117" not in answer.text
