"""The kit's HTTP face, shared by all four services: what an OpenAPI document says about
refusals, and what a request that cannot be read is answered."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
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


def app() -> FastAPI:
    built = service_app(
        name="test",
        title="test",
        description="test",
        lifespan=no_lifespan,
        registry=CollectorRegistry(),
        readiness=ready,
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
