"""intake's OpenAPI document, as an integrator reads it, against what intake answers.

schemathesis generates requests from the document (valid and invalid), sends them to the
app in process (the fakes, no lifespan, no sockets), and checks each answer's status,
content type and body against what the document says for that operation. The tests
after it pin what the document must say: the error body, the duplicate filing, the key
as a security scheme, one schema per action, no event fields in request bodies."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from intake.app import create_app
from intake.settings import IntakeSettings
from intake.tracker_client import TrackerClient
from schemas.catalogue import catalogue
from schemas.commands import DepartmentAction
from tests.fakes.intake import (
    InMemoryConfirmedPhones,
    InMemoryContactCodes,
    InMemoryIdempotencyStore,
    InMemoryPhotoStore,
    InMemorySubmissionStore,
    RecordingPublish,
)

ROADS_KEY = "roads-department-key"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class NoLifespan(Exception):
    """Raised on the lifespan scope before any message: "this app has no lifespan"."""


def without_lifespan(app: App) -> App:
    """The app without its lifespan, which would connect to Kafka and MongoDB."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise NoLifespan
        await app(scope, receive, send)

    return wrapped


def tracker_answer(request: httpx.Request) -> httpx.Response:
    """The tracker's side of the similar lookup, in memory: no open case anywhere."""
    if request.url.path == "/v1/complaints/similar":
        return httpx.Response(200, json={"items": []})
    return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})


APP = create_app(
    IntakeSettings(api_keys={"roads": SecretStr(ROADS_KEY)}),
    store=InMemorySubmissionStore(),
    publish=RecordingPublish(),
    tracker=TrackerClient(
        httpx.AsyncClient(transport=httpx.MockTransport(tracker_answer), base_url="http://t"),
        None,
    ),
    idempotency_store=InMemoryIdempotencyStore(),
    photo_store=InMemoryPhotoStore(),
    contact_store=InMemoryContactCodes(),
    recovery_store=InMemoryContactCodes(),
    confirmed_phones=InMemoryConfirmedPhones(),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", without_lifespan(APP))
schema.config.phases.update(phases=["coverage", "fuzzing"])
"""coverage: every boundary the document defines, valid and invalid (deterministic);
fuzzing: a few generated requests per operation, derandomized so a run is repeatable."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_intake_answers_what_its_document_says(case: schemathesis.Case[Any]) -> None:
    """Each generated request twice: as generated (no key: 401 where one is needed) and
    with a department's key, so the answers past the key are checked too."""
    case.call_and_validate(checks=CHECKS)
    case.call_and_validate(headers={"X-Api-Key": ROADS_KEY}, checks=CHECKS)


# What an integrator reads in the document


def document() -> dict[str, Any]:
    openapi: dict[str, Any] = APP.openapi()
    return openapi


def resolve(ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].rsplit("/", 1)[1]
    found: dict[str, Any] = document()["components"]["schemas"][name]
    return found


def request_schemas(operation: dict[str, Any]) -> list[dict[str, Any]]:
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    return [resolve(s) for s in body.get("oneOf", [body])]


OPERATIONS = {
    "file": ("/v1/complaints", "post"),
    "command": ("/v1/complaints/{complaint_id}/commands", "post"),
    "resident": ("/v1/complaints/{complaint_id}/resident-actions", "post"),
}


def operation(name: str) -> dict[str, Any]:
    path, method = OPERATIONS[name]
    found: dict[str, Any] = document()["paths"][path][method]
    return found


def test_every_refusal_is_documented_with_the_body_the_kit_sends() -> None:
    # issue 14 §5 adds 409 (a key in flight); issue 11 §1 the filing's channel credential;
    # issue 11 §11/§12 the abuse limits (per end user and phone; per department key;
    # resident actions per end user and per complaint)
    expected = {
        "file": {"401", "403", "409", "415", "422", "429"},
        "command": {"401", "409", "415", "422", "429"},
    }
    expected["resident"] = {"404", "409", "415", "422", "429"}  # per resident and complaint
    for name, statuses in expected.items():
        responses = operation(name)["responses"]
        assert {s for s in responses if s.startswith("4")} == statuses, name
        for status in statuses:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    error = document()["components"]["schemas"]["ErrorDetail"]
    assert set(error["properties"]) == {"code", "message", "fields"}
    assert "HTTPValidationError" not in document()["components"]["schemas"]


def test_the_similar_lookup_takes_a_filings_body_and_documents_its_refusals() -> None:
    lookup = document()["paths"]["/v1/complaints/similar"]["post"]
    body = lookup["requestBody"]["content"]["application/json"]["schema"]
    filing = operation("file")["requestBody"]["content"]["application/json"]["schema"]
    assert body == filing
    responses = lookup["responses"]
    assert {s for s in responses if s.startswith("4")} == {"401", "403", "415", "422", "429"}
    answer = responses["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/SimilarAnswer"}
    assert lookup["security"] == [{"ApiKey": []}]  # a channel's credential, as filing


def test_a_filing_documents_the_duplicate_answer() -> None:
    responses = operation("file")["responses"]
    for status in ("200", "201"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/FiledResponse"}


def test_the_api_key_is_a_security_scheme_the_docs_can_authorize_with() -> None:
    schemes = document()["components"]["securitySchemes"]
    assert schemes == {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": schemes["ApiKey"]["description"],
        }
    }
    assert operation("command")["security"] == [{"ApiKey": []}]
    assert operation("file")["security"] == [{"ApiKey": []}]  # a channel's credential
    for name in OPERATIONS:  # the key is the scheme; the one header parameter is the retry key
        headers = [p["name"] for p in operation(name).get("parameters", []) if p["in"] == "header"]
        assert headers == ["Idempotency-Key"], name


def test_each_department_action_has_its_own_schema_naming_what_it_needs() -> None:
    body = operation("command")["requestBody"]["content"]["application/json"]["schema"]
    mapping = body["discriminator"]["mapping"]
    assert set(mapping) == set(DepartmentAction)
    required = {
        action: set(resolve({"$ref": ref}).get("required", [])) - {"action"}
        for action, ref in mapping.items()
    }
    assert required["resolve"] == {"note"}
    assert required["transfer"] == {"note", "to_department"}
    assert required["extend"] == {"note", "new_due_at"}
    assert required["start_site_check"] == set()
    transfer = resolve({"$ref": mapping["transfer"]})
    assert transfer["properties"]["to_department"]["enum"] == list(catalogue().codes)


def test_request_bodies_carry_no_event_fields() -> None:
    internal = {"event_id", "event_type", "schema_version", "occurred_at"}
    for name in OPERATIONS:
        for schema in request_schemas(operation(name)):
            assert not internal & set(schema["properties"]), (name, schema["title"])
            assert schema.get("additionalProperties") is False


def test_a_complaint_id_is_documented_as_a_uuid() -> None:
    [param] = [p for p in operation("command")["parameters"] if p["name"] == "complaint_id"]
    assert (param["in"], param["schema"]["format"]) == ("path", "uuid")
