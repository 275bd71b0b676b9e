"""What every service's OpenAPI document says about refusals, so it matches what they answer.

Every 4xx from a service comes from the kit's handlers (``services/http.py``) as
``{"error": {"code", "message", "fields"}}``. Routes name the statuses they can answer
(:func:`refusals`); :func:`document` then gives every documented 4xx that body, replaces
FastAPI's own 422 schema (which the services never send) with it, and adds the 415 every
operation with a JSON body can answer.
"""

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import FieldError

Responses = dict[int | str, dict[str, Any]]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str = Field(
        description="For machines: invalid_request, unauthorized, forbidden, not_found, "
        "unsupported_media_type…",
        examples=["invalid_request"],
    )
    message: str = Field(description="For people, in English.", examples=["note: Field required"])
    fields: list[FieldError] = Field(
        default_factory=list,
        description="Only on 422: each invalid field (``path.complaint_id``, ``note``, "
        "``(body)`` for the body as a whole) and why.",
    )


class ErrorResponse(BaseModel):
    """Every refusal, from every service."""

    model_config = ConfigDict(frozen=True)

    error: ErrorDetail


DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "Not readable as HTTP (raw non-ASCII in the URL): answered before any route.",
    401: "No valid X-Api-Key header.",
    403: "The key does not act for this.",
    404: "Not found.",
    409: "Conflicts with what is stored.",
    413: "The body is too large.",
    415: "The body is declared as something else than JSON: "
    "Content-Type must be application/json (or left out).",
    422: "Invalid: `fields` names each invalid field and why; malformed JSON is reported "
    "with its position.",
    429: "Too many requests: wait as long as Retry-After says, then try again.",
}

_REF = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": _REF.format(model=ErrorResponse.__name__)}
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def refusals(*statuses: int, described: Mapping[int, str] | None = None) -> Responses:
    """The refusals a route can answer, for ``responses=``: ``refusals(401, 404)``, with a
    route's own wording where it says more (``described={404: "..."}``)."""
    own = described or {}
    return {
        status: {"model": ErrorResponse, "description": own.get(status, DESCRIPTIONS[status])}
        for status in statuses
    }


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": dict(_ERROR_REF)}}


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make a FastAPI-generated document say what the kit answers (changes it in place)."""
    components: dict[str, Any] = openapi.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template=_REF)
    for name, schema in error_schema.pop("$defs", {}).items():
        components.setdefault(name, schema)
    components[ErrorResponse.__name__] = error_schema
    for path_item in openapi.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {"description": DESCRIPTIONS[422], "content": _error_content()}
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("415", {"description": DESCRIPTIONS[415]})
            for status, response in responses.items():
                if status.startswith("4"):
                    response["content"] = _error_content()
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return openapi
