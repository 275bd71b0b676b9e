"""The one-screen filing form: what the resident typed, checked field by field in Korean,
and turned into intake's filing body. Pure."""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from portal.texts import Texts
from schemas.catalogue import catalogue
from schemas.common import PHONE_PATTERN

BODY_MAX = 4000
NOTE_MAX = 2000

FIELD_OF_INTAKE = {
    "body": "body",
    "title": "title",
    "location.address": "address",
    "location.dong": "dong",
    "location.coordinates": "position",
    "location.coordinates.lat": "position",
    "location.coordinates.lon": "position",
    "resident.name": "name",
    "resident.phone": "phone",
    "service_code": "service",
    "attachments": "photos",
    "photos": "photos",
}
"""intake's field names (its 422 answers) → the form's."""


@dataclass(frozen=True)
class FilingForm:
    body: str = ""
    title: str = ""
    address: str = ""
    dong: str = ""
    lat: str = ""
    lon: str = ""
    name: str = ""
    phone: str = ""
    consent: bool = False
    service: str = ""
    photos: tuple[str, ...] = ()
    submission_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def from_form(cls, data: Mapping[str, str], photos: tuple[str, ...] = ()) -> "FilingForm":
        def text(name: str) -> str:
            return str(data.get(name, "")).strip()

        submission_id = text("submission_id")
        try:
            submission_id = str(uuid.UUID(submission_id))
        except ValueError:
            submission_id = str(uuid.uuid4())
        return cls(
            body=str(data.get("body", "")).strip(),
            title=text("title"),
            address=text("address"),
            dong=text("dong"),
            lat=text("lat"),
            lon=text("lon"),
            name=text("name"),
            phone=text("phone"),
            consent=text("consent") in ("on", "true", "1", "yes"),
            service=text("service"),
            photos=photos,
            submission_id=submission_id,
        )

    def with_new_submission(self) -> "FilingForm":
        return replace(self, submission_id=str(uuid.uuid4()))


Errors = dict[str, str]


def _position(form: FilingForm) -> tuple[float, float] | None:
    if not form.lat and not form.lon:
        return None
    lat, lon = float(form.lat), float(form.lon)
    if not (33.0 <= lat <= 39.0 and 124.0 <= lon <= 132.0):
        raise ValueError("outside Korea")
    return lat, lon


def check(form: FilingForm, texts: Texts, dongs: tuple[str, ...]) -> Errors:
    """Each field's problem, in words the resident reads next to it."""
    errors: Errors = {}
    if not form.body:
        errors["body"] = texts.error("body_required")
    elif len(form.body) > BODY_MAX:
        errors["body"] = texts.error("body_too_long", count=f"{len(form.body):,}")
    if len(form.title) > 200:
        errors["title"] = texts.error("title_too_long")
    if len(form.address) > 200:
        errors["address"] = texts.error("address_too_long")
    if form.dong and form.dong not in dongs:
        errors["dong"] = texts.error("dong_unknown")
    if len(form.name) > 50:
        errors["name"] = texts.error("name_too_long")
    errors |= check_contact(form.phone, form.consent, texts)
    try:
        _position(form)
    except ValueError:
        errors["position"] = texts.error("position_invalid")
    if form.service and catalogue().by_service_code(form.service) is None:
        errors["service"] = texts.error("service_unknown")
    return errors


def check_contact(phone: str, consent: bool, texts: Texts) -> Errors:
    """A phone to be told at, and the consent to be told: both or neither (the filing
    form and the chat handoff ask alike)."""
    if phone and not PHONE_PATTERN.match(phone):
        return {"phone": texts.error("phone_invalid")}
    if phone and not consent:
        return {"consent": texts.error("phone_needs_consent")}
    if consent and not phone:
        return {"phone": texts.error("consent_needs_phone")}
    return {}


def filing_body(
    form: FilingForm,
    *,
    channel: str = "web",
    resident_token: str | None,
    joins: str | None = None,
) -> dict[str, Any]:
    """intake's ``POST /v1/complaints`` body. ``channel_ref`` is the form's own id, so a
    second tap or a reload of the same form files nothing new (intake answers
    ``duplicate: true`` with the same complaint)."""
    body: dict[str, Any] = {
        "channel": channel,
        "channel_ref": f"portal-{form.submission_id}",
        "body": form.body,
    }
    if form.title:
        body["title"] = form.title
    if form.service:
        body["service_code"] = form.service
    if form.photos:
        body["photos"] = list(form.photos)  # ids intake answered for the uploads
    if joins:
        body["joins"] = joins  # the open case the resident chose to join
    location: dict[str, Any] = {}
    if form.address:
        location["address"] = form.address
    if form.dong:
        location["dong"] = form.dong
    position = _position(form)
    if position is not None:
        location["coordinates"] = {"lat": position[0], "lon": position[1]}
    if location:
        body["location"] = location
    resident: dict[str, Any] = {"notification_consent": form.consent}
    if form.name:
        resident["name"] = form.name
    if form.phone:
        resident["phone"] = form.phone
    body["resident"] = resident
    if resident_token:
        body["resident_token"] = resident_token
    return body


def intake_errors(fields: tuple[tuple[str, str], ...], texts: Texts) -> tuple[Errors, list[str]]:
    """intake's refusals placed next to the form's fields; what has no field goes on top."""
    errors: Errors = {}
    general: list[str] = []
    for name, reason in fields:
        target = FIELD_OF_INTAKE.get(name)
        if target is None:
            general.append(texts.error("refused", message=f"{name}: {reason}"))
        else:
            errors.setdefault(target, texts.error("refused", message=reason))
    return errors, general


def check_note(note: str, texts: Texts, *, required: bool) -> str | None:
    if required and not note.strip():
        return texts.error("note_required")
    if len(note) > NOTE_MAX:
        return texts.error("note_too_long")
    return None


COMMENT_MAX = 500
TITLE_MAX = 200
ADDRESS_MAX = 200


@dataclass(frozen=True)
class CorrectionForm:
    """정정: only what the resident changed travels (an untouched 행정동 is not sent)."""

    address: str = ""
    dong: str = ""
    title: str = ""
    photos: tuple[str, ...] = ()
    """Ids intake answered for the photos uploaded with it (사진 추가)."""

    def fields(self, current_dong: str | None, current_title: str | None) -> dict[str, object]:
        changed: dict[str, object] = {"address": self.address}
        if self.dong and self.dong != current_dong:
            changed["dong"] = self.dong
        if self.title and self.title != current_title:
            changed["title"] = self.title
        changed["photos"] = list(self.photos)
        return {name: value for name, value in changed.items() if value}


def check_correction(
    form: CorrectionForm, texts: Texts, dongs: tuple[str, ...], changed: Mapping[str, object]
) -> Errors:
    errors: Errors = {}
    if len(form.address) > ADDRESS_MAX:
        errors["correct-address"] = texts.error("address_too_long")
    if form.dong and form.dong not in dongs:
        errors["correct-dong"] = texts.error("dong_unknown")
    if len(form.title) > TITLE_MAX:
        errors["correct-title"] = texts.error("title_too_long")
    if not errors and not changed:
        errors["correct"] = texts.error("correct_empty")
    return errors


def check_rating(rating: str, comment: str, texts: Texts) -> Errors:
    errors: Errors = {}
    if rating not in {"1", "2", "3", "4", "5"}:
        errors["rating"] = texts.error("rating_required")
    if len(comment.strip()) > COMMENT_MAX:
        errors["rating-comment"] = texts.error("comment_too_long")
    return errors
