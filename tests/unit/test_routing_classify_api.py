"""Classification over HTTP: routing's answer for the portal and the command line."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from routing.classifier import Prediction
from routing.handlers import MAX_TEXTS, routes
from services.http import service_app
from tests.unit.test_routing_handlers import StubClassifier


def app_with(classifier: StubClassifier) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    async def ready(_: FastAPI) -> dict[str, bool]:
        return {"kafka": True, "mongodb": True}

    app = service_app(
        name="routing",
        title="t",
        description="t",
        lifespan=lifespan,
        registry=CollectorRegistry(),
        readiness=ready,
    )
    app.include_router(routes(classifier))
    return app


@pytest.fixture
def stub() -> StubClassifier:
    return StubClassifier(answer=Prediction("parking", 0.97, auto=True))


async def post(app: FastAPI, body: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://routing") as client:
        return await client.post("/v1/classify", json=body)


async def test_each_text_gets_the_department_routing_would_choose(stub: StubClassifier) -> None:
    response = await post(app_with(stub), {"texts": ["집앞에 차좀 빼주세요", "주차 단속 해주세요"]})
    assert response.status_code == 200
    assert response.json() == {
        "predictions": [
            {"department": "parking", "confidence": 0.97, "auto": True},
            {"department": "parking", "confidence": 0.97, "auto": True},
        ]
    }
    assert stub.asked == ["집앞에 차좀 빼주세요", "주차 단속 해주세요"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["가"] * (MAX_TEXTS + 1)}, "texts"),
        ({"texts": ["   "]}, "texts.0"),
        ({"texts": ["가" * 4001]}, "texts.0"),
        ({"texts": ["가"], "user": "x"}, "user"),
        ({}, "texts"),
    ],
)
async def test_bounded_input_is_refused_naming_the_field(
    stub: StubClassifier, body: object, field: str
) -> None:
    response = await post(app_with(stub), body)
    assert response.status_code == 422
    assert field in response.text
    assert stub.asked == []


def test_it_is_in_the_openapi_document(stub: StubClassifier) -> None:
    operation = app_with(stub).openapi()["paths"]["/v1/classify"]["post"]
    assert {"200", "422"} <= set(operation["responses"])
