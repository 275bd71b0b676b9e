"""A spec-form ``POST requests`` (``application/x-www-form-urlencoded``) into a submission.

Every field the spec names is read, and nothing is dropped silently: a field that is not
in the spec (or the Korean profile's ``dong``) is refused with its name, as is
``address_id`` (the district has no address database to resolve it against).
``device_id`` is accepted and not kept (it identifies a phone; nobody here needs it);
``account_id`` is echoed in the answer and not kept either.

How the spec's fields become a submission:

- ``last_name`` + ``first_name`` → the resident's name, in Korean order (홍 + 길동 = 홍길동;
  with a space and first name first when either is not Hangul); ``phone``, ``email``
  → the resident's contact;
- ``lat``/``long`` → coordinates, ``address_string`` → the address, ``dong`` or
  ``attribute[dong]`` → the 행정동 (Korean profile);
- ``description`` → the body, followed by the attributes' answers in Korean
  (``[대형폐기물] 버릴 물건의 종류: 소파``) so the department reads them where it reads the
  rest; the service's name → the title; ``media_url`` → an attachment.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

from pydantic import ValidationError

from intake.open311.render import Open311Error
from intake.open311.services import Attribute, Datatype, Open311Services, Service
from schemas.common import Channel
from schemas.events import ComplaintSubmitted, Submission
from services.errors import field_errors

FIELDS = frozenset(
    {
        "api_key",
        "jurisdiction_id",
        "service_code",
        "lat",
        "long",
        "address_string",
        "address_id",
        "email",
        "device_id",
        "account_id",
        "first_name",
        "last_name",
        "phone",
        "description",
        "media_url",
        "dong",
    }
)
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
_HANGUL = re.compile(r"^[가-힣]+$")
MAX_FORM_BYTES = 64 * 1024

SUBMISSION_FIELDS = {
    "body": "description",
    "title": "service_code",
    "resident.name": "last_name and first_name",
    "resident.phone": "phone",
    "resident.email": "email",
    "location.address": "address_string",
    "location.dong": "dong",
    "location.coordinates.lat": "lat",
    "location.coordinates.lon": "long",
    "location.coordinates": "lat",
    "attachments": "media_url",
    "attachments.0": "media_url",
}
"""A submission field → the form field it came from, so an error names what the app sent."""


def bad(field: str, reason: str) -> Open311Error:
    return Open311Error(400, f"{field}: {reason}")


@dataclass(frozen=True)
class Form:
    """The decoded form: single fields and the attributes (a list for ``[]`` ones)."""

    fields: dict[str, str]
    attributes: dict[str, list[str]]
    unknown: tuple[str, ...] = ()

    @classmethod
    def parse(cls, body: bytes) -> "Form":
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Open311Error(400, "the body must be form-encoded UTF-8") from exc
        fields: dict[str, str] = {}
        attributes: dict[str, list[str]] = {}
        unknown: list[str] = []
        for name, value in pairs:
            if match := _ATTRIBUTE.match(name):
                code, many = match.group(1), match.group(2)
                if not many and code in attributes:
                    raise bad(name, "given more than once")
                attributes.setdefault(code, []).append(value)
            elif name not in FIELDS:
                unknown.append(name)
            elif name in fields:
                raise bad(name, "given more than once")
            else:
                fields[name] = value
        kept = {k: v for k, v in fields.items() if v != ""}
        return cls(kept, attributes, tuple(unknown))


def resident_name(first: str | None, last: str | None) -> str | None:
    if first and last:
        return last + first if _HANGUL.match(first + last) else f"{first} {last}"
    return first or last


def _answer_text(attribute: Attribute, values: list[str]) -> str:
    """What the department reads for one answer; refuses an answer the definition does not
    allow, naming the attribute."""
    name = f"attribute[{attribute.code}]"
    if attribute.datatype is not Datatype.MULTIVALUELIST and len(values) != 1:
        raise bad(name, "takes one value")
    if attribute.datatype in (Datatype.SINGLEVALUELIST, Datatype.MULTIVALUELIST):
        names = []
        for value in values:
            found = attribute.value_name(value)
            if found is None:
                keys = ", ".join(v.key for v in attribute.values)
                raise bad(name, f"{value!r} is not one of: {keys}")
            names.append(found)
        return ", ".join(names)
    (value,) = values
    if attribute.datatype is Datatype.NUMBER and not re.fullmatch(r"[1-9][0-9]{0,1}", value):
        raise bad(name, "must be a whole number from 1 to 99")
    if len(value) > 200:
        raise bad(name, "at most 200 characters")
    return value


def attribute_lines(service: Service, given: dict[str, list[str]]) -> list[str]:
    """The answers, in the definition's order, as ``설명: 값`` lines."""
    unknown = sorted(set(given) - {a.code for a in service.text.attributes})
    if unknown:
        raise bad(f"attribute[{unknown[0]}]", f"not an attribute of {service.code}")
    lines = []
    for attribute in sorted(service.text.attributes, key=lambda a: a.order):
        values = [v for v in given.get(attribute.code, []) if v != ""]
        if not values:
            if attribute.required:
                raise bad(f"attribute[{attribute.code}]", "required for this service")
            continue
        lines.append(f"{attribute.description}: {_answer_text(attribute, values)}")
    return lines


def _coordinates(fields: dict[str, str]) -> dict[str, float] | None:
    lat, long = fields.get("lat"), fields.get("long")
    if lat is None and long is None:
        return None
    if lat is None or long is None:
        raise bad("long" if long is None else "lat", "lat and long go together")
    try:
        return {"lat": float(lat), "lon": float(long)}
    except ValueError as exc:
        raise bad("lat" if not _is_float(lat) else "long", "must be a decimal number") from exc


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ServiceRequest:
    submission: ComplaintSubmitted
    account_id: str | None


def service_request(form: Form, services: Open311Services, now: datetime) -> ServiceRequest:
    """The submission a valid form files; an Open311Error (400) naming the first bad field."""
    if form.unknown:
        raise bad(form.unknown[0], "not a field of the GeoReport v2 request")
    fields = form.fields
    attributes = dict(form.attributes)
    code = fields.get("service_code")
    if code is None:
        raise bad("service_code", "required")
    service = services.by_code.get(code)
    if service is None:
        raise bad("service_code", f"unknown service code {code!r} (see services.json)")
    if "address_id" in fields:
        raise bad("address_id", "not supported here; send lat and long, or address_string")
    dong_values = [v for v in attributes.pop("dong", []) if v != ""]
    if len(dong_values) > 1:
        raise bad("attribute[dong]", "takes one value")
    dong = fields.get("dong")
    if dong_values and dong is not None and dong_values[0] != dong:
        raise bad("dong", "differs from attribute[dong]")
    dong = dong or (dong_values[0] if dong_values else None)
    coordinates = _coordinates(fields)
    if coordinates is None and "address_string" not in fields:
        raise bad("lat", "a location is required: lat and long, or address_string")

    lines = attribute_lines(service, attributes)
    description = fields.get("description")
    body = "\n\n".join(
        part
        for part in (
            description,
            "\n".join([f"[{service.text.service_name}]", *lines]) if lines else None,
        )
        if part
    )
    resident = {
        "name": resident_name(fields.get("first_name"), fields.get("last_name")),
        "phone": fields.get("phone"),
        "email": fields.get("email"),
    }
    raw = {
        "channel": Channel.OPEN311,
        "title": service.text.service_name,
        "body": body or service.text.service_name,
        "service_code": service.code,
        "resident": {k: v for k, v in resident.items() if v is not None},
        "location": {
            "address": fields.get("address_string"),
            "dong": dong,
            "coordinates": coordinates,
        },
        "attachments": [fields["media_url"]] if "media_url" in fields else [],
    }
    try:
        Submission.model_validate(raw)
    except ValidationError as exc:
        first = field_errors(exc)[0]
        name = SUBMISSION_FIELDS.get(first.field, first.field)
        if first.field == "body" and description and len(body) > len(description):
            reason = f"{first.reason} (with the attributes' answers appended)"
        else:
            reason = first.reason
        raise bad(name, reason) from exc
    submission = ComplaintSubmitted.model_validate(raw | {"occurred_at": now})
    return ServiceRequest(submission, fields.get("account_id"))
