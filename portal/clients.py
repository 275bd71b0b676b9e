"""intake and tracker as the portal sees them: their public HTTP APIs, nothing more.

The portal is a channel like any other: it files and acts as the resident through
intake, and reads through tracker. The shapes below name only the fields the pages show
(readers ignore the rest, so tracker may add fields freely). ``IntakeApi`` and
``TrackerApi`` are what the handlers need; tests pass in-memory doubles
(``tests/fakes/portal.py``) and the browser tier runs these against the real services.
"""

from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict

END_USER: ContextVar[str | None] = ContextVar("portal_end_user", default=None)
"""The resident a request to the portal is for (their client address), set by the portal's
middleware for the request's duration: the clients pass it to intake and tracker as
``X-End-User`` beside the portal's channel credential, so those limit each resident
rather than the portal as one client."""


def channel_headers(key: str | None) -> dict[str, str]:
    """The portal's credential and, with it, the end user it acts for. Without a credential
    intake and tracker would ignore ``X-End-User``, so it is not sent."""
    if not key:
        return {}
    end_user = END_USER.get()
    return {"X-Api-Key": key} | ({"X-End-User": end_user} if end_user else {})


class _Read(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Department(_Read):
    code: str
    name: str | None = None


class Handler(_Read):
    name: str
    office_phone: str


class PhotoOnFile(_Read):
    """A photo of the complaint, as the tracker lists it: intake serves its bytes."""

    photo_id: str


class StepCorrection(_Read):
    fields: list[str]
    dong: str | None = None
    photos: list[PhotoOnFile] = []


class StepRating(_Read):
    score: int
    comment: str | None = None


class Step(_Read):
    sequence: int
    state: str
    from_state: str | None = None
    trigger: str
    occurred_at: datetime
    department: str | None = None
    department_name: str | None = None
    handler: Handler | None = None
    note: str | None = None
    remedy: str | None = None
    due_at: datetime | None = None
    actor: str
    correction: StepCorrection | None = None
    rating: StepRating | None = None


class Similar(_Read):
    """An open complaint at the same place about the same problem, as any resident may see
    it (the tracker's public summary: nothing about its reporter)."""

    complaint_id: str
    state: str
    department_name: str | None = None
    dong: str
    filed_on: date


class Refusal(_Read):
    action: str
    reason_ko: str
    occurred_at: datetime


class Complaint(_Read):
    """One complaint as tracker shows it to its resident."""

    complaint_id: str
    receipt_number: str
    state: str | None = None
    department: Department | None = None
    handler: Handler | None = None
    due_at: datetime | None = None
    overdue: bool = False
    filed_at: datetime
    title: str | None = None
    transfer_count: int = 0
    reopen_count: int = 0
    timeline: list[Step] = []
    rejections: list[Refusal] = []
    dong: str | None = None
    rating: int | None = None
    photos: list[PhotoOnFile] = []


class Summary(_Read):
    """One line of "내 민원"."""

    complaint_id: str
    receipt_number: str | None = None
    state: str | None = None
    department: Department | None = None
    handler: Handler | None = None
    title: str | None = None
    filed_at: datetime | None = None
    updated_at: datetime | None = None
    due_at: datetime | None = None
    overdue: bool = False


@dataclass(frozen=True)
class Filed:
    complaint_id: str
    receipt_number: str
    tracking_token: str
    resident_token: str
    duplicate: bool
    contact_pending: bool = False
    """A code was sent to the phone: nothing else is until it is entered (인증번호)."""


@dataclass(frozen=True)
class Refused:
    """intake said no: per field (its names, e.g. ``resident.phone``), or as a whole."""

    status: int
    message: str
    fields: tuple[tuple[str, str], ...] = ()
    code: str | None = None
    """intake's error code (``wrong_code``, ``code_expired``…), when it gave one."""


@dataclass(frozen=True)
class Recovered:
    """The complaints now bound to the resident token (다른 기기에서 내 민원 찾기): intake's
    new token when the browser had none."""

    resident_token: str | None
    complaints: tuple[tuple[str, str], ...]
    """(complaint id, receipt number), newest filed first."""


@dataclass(frozen=True)
class Uploaded:
    """A photo intake kept (its metadata stripped): the id a filing names it by."""

    photo_id: str


class ServiceUnavailable(RuntimeError):
    """intake or tracker did not answer; the page says so instead of failing blank."""


class IntakeApi(Protocol):
    async def file(self, body: dict[str, Any]) -> Filed | Refused: ...

    async def upload_photo(self, data: bytes, filename: str, media_type: str) -> Uploaded | Refused:
        """Hand a photo to intake, which judges it by its bytes and strips its metadata."""
        ...

    async def photo(
        self, photo_id: str, *, token: str, thumbnail: bool
    ) -> tuple[bytes, str] | None:
        """A photo of the complaint whose tracking token this is, as intake serves it to
        its resident (bytes and media type); None when it is not that complaint's."""
        ...

    async def resident_action(
        self,
        complaint_id: str,
        *,
        action: str,
        token: str,
        note: str | None,
        fields: Mapping[str, object] | None = None,
    ) -> Refused | None:
        """``fields``: what the action carries beside a note (a correction's, a rating's)."""
        ...

    async def confirm_contact(self, complaint_id: str, *, token: str, code: str) -> Refused | None:
        """Enter the code sent to the filing's phone; None when confirmed."""
        ...

    async def resend_code(self, complaint_id: str, *, token: str) -> Refused | None:
        """Have a new code sent; None when it was."""
        ...

    async def start_recovery(self, receipt_number: str) -> Refused | None:
        """Have a recovery code sent to the phone on file of this receipt number (intake
        answers alike whether there is one); None when asked."""
        ...

    async def confirm_recovery(
        self, receipt_number: str, *, code: str, resident_token: str | None
    ) -> Recovered | Refused:
        """Enter the recovery code: the complaints join ``resident_token`` (or a new one)."""
        ...


class TrackerApi(Protocol):
    async def complaint(self, complaint_id: str, *, resident_token: str) -> Complaint | None: ...

    async def my_complaints(self, resident_token: str, *, limit: int = 50) -> list[Summary]: ...

    def changes(self, complaint_id: str, *, resident_token: str) -> AsyncIterator[int]:
        """The sequence of each timeline entry as tracker stores it, live (SSE)."""
        ...

    async def similar(self, *, dong: str, text: str, department: str) -> list[Similar]:
        """'이미 접수된 민원이 있어요': open complaints like this one at this 행정동; none when
        the tracker cannot say (a lookup never stands between a resident and filing)."""
        ...


def _refused(response: httpx.Response) -> Refused:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return Refused(response.status_code, response.text[:200])
    fields = tuple(
        (str(f.get("field", "")), str(f.get("reason", ""))) for f in error.get("fields") or ()
    )
    code = error.get("code")
    return Refused(
        response.status_code,
        str(error.get("message", "")),
        fields,
        code=code if isinstance(code, str) else None,
    )


class HttpIntake:
    """``keys``: the portal's credential for each channel it files as (``web`` for its
    form, ``chatbot`` for a chat handoff), from ``SOTONG_PORTAL_INTAKE_KEYS``."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, keys: Mapping[str, str] | None = None
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.keys = dict(keys or {})

    def _resident(self) -> dict[str, str]:
        """For a resident's action: the portal's credential naming the resident, so intake
        limits each resident, not the portal as one client."""
        return channel_headers(self.keys.get("web") or self.keys.get("chatbot"))

    async def file(self, body: dict[str, Any]) -> Filed | Refused:
        # the form's own id keys the request: a resubmitted form gets the first answer,
        # tokens included (a duplicate channel_ref alone is answered without them)
        ref = body.get("channel_ref")
        headers = {"Idempotency-Key": str(ref)} if ref else {}
        headers |= channel_headers(self.keys.get(str(body.get("channel"))))
        try:
            response = await self.client.post(
                f"{self.base_url}/v1/complaints", json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("intake did not answer") from exc
        if response.status_code in (200, 201):
            data = response.json()
            if "tracking_token" not in data:  # filed before, and its answer is forgotten
                return Refused(409, f"filed before: {data['receipt_number']}")
            return Filed(
                complaint_id=data["complaint_id"],
                receipt_number=data["receipt_number"],
                tracking_token=data["tracking_token"],
                resident_token=data["resident_token"],
                duplicate=bool(data["duplicate"]),
                contact_pending=data.get("contact") is not None,
            )
        if response.status_code >= 500:
            raise ServiceUnavailable(f"intake answered {response.status_code}")
        return _refused(response)

    async def photo(
        self, photo_id: str, *, token: str, thumbnail: bool
    ) -> tuple[bytes, str] | None:
        url = f"{self.base_url}/v1/photos/{photo_id}" + ("/thumbnail" if thumbnail else "")
        try:
            response = await self.client.get(url, headers={"X-Tracking-Token": token})
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("intake did not answer") from exc
        if response.status_code == 200:
            media_type = response.headers.get("content-type", "application/octet-stream")
            return response.content, media_type
        if response.status_code >= 500:
            raise ServiceUnavailable(f"intake answered {response.status_code}")
        return None

    async def upload_photo(self, data: bytes, filename: str, media_type: str) -> Uploaded | Refused:
        try:
            response = await self.client.post(
                f"{self.base_url}/v1/photos",
                files={"file": (filename, data, media_type)},
                headers=self._resident(),
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("intake did not answer") from exc
        if response.status_code == 201:
            return Uploaded(str(response.json()["photo_id"]))
        if response.status_code >= 500:
            raise ServiceUnavailable(f"intake answered {response.status_code}")
        return _refused(response)

    async def resident_action(
        self,
        complaint_id: str,
        *,
        action: str,
        token: str,
        note: str | None,
        fields: Mapping[str, object] | None = None,
    ) -> Refused | None:
        body: dict[str, Any] = {**(fields or {}), "action": action, "token": token}
        if note:
            body["note"] = note
        url = f"{self.base_url}/v1/complaints/{complaint_id}/resident-actions"
        try:
            response = await self.client.post(url, json=body, headers=self._resident())
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("intake did not answer") from exc
        if response.status_code == 202:
            return None
        if response.status_code >= 500:
            raise ServiceUnavailable(f"intake answered {response.status_code}")
        return _refused(response)

    async def confirm_contact(self, complaint_id: str, *, token: str, code: str) -> Refused | None:
        url = f"{self.base_url}/v1/complaints/{complaint_id}/contact/confirm"
        return await self._contact(url, token, {"code": code}, ok=200)

    async def resend_code(self, complaint_id: str, *, token: str) -> Refused | None:
        url = f"{self.base_url}/v1/complaints/{complaint_id}/contact/code"
        return await self._contact(url, token, None, ok=202)

    async def _recovery(self, path: str, body: dict[str, Any], ok: int) -> httpx.Response:
        headers = channel_headers(self.keys.get("web"))  # limited per resident, not per portal
        try:
            response = await self.client.post(f"{self.base_url}{path}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("intake did not answer") from exc
        if response.status_code >= 500:
            raise ServiceUnavailable(f"intake answered {response.status_code}")
        return response

    async def start_recovery(self, receipt_number: str) -> Refused | None:
        response = await self._recovery("/v1/recovery", {"receipt_number": receipt_number}, 202)
        return None if response.status_code == 202 else _refused(response)

    async def confirm_recovery(
        self, receipt_number: str, *, code: str, resident_token: str | None
    ) -> Recovered | Refused:
        body: dict[str, Any] = {"receipt_number": receipt_number, "code": code}
        if resident_token:
            body["resident_token"] = resident_token
        response = await self._recovery("/v1/recovery/confirm", body, 200)
        if response.status_code != 200:
            return _refused(response)
        data = response.json()
        return Recovered(
            resident_token=data.get("resident_token"),
            complaints=tuple(
                (str(c["complaint_id"]), str(c["receipt_number"])) for c in data["complaints"]
            ),
        )

    async def _contact(
        self, url: str, token: str, body: dict[str, Any] | None, *, ok: int
    ) -> Refused | None:
        try:
            response = await self.client.post(
                url, json=body, headers={"X-Tracking-Token": token} | self._resident()
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("intake did not answer") from exc
        if response.status_code == ok:
            return None
        if response.status_code >= 500:
            raise ServiceUnavailable(f"intake answered {response.status_code}")
        return _refused(response)


class HttpTracker:
    """``streams`` holds the live timelines, one long-lived connection per open page, in a
    pool of its own, so many open pages never starve the short calls of connections.
    ``key``: the portal's credential at the tracker (its ``SOTONG_TRACKER_CHANNEL_KEYS``),
    so the tracker limits the portal's residents one by one."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        streams: httpx.AsyncClient | None = None,
        key: str | None = None,
    ) -> None:
        self.client = client
        self.streams = streams or client
        self.base_url = base_url.rstrip("/")
        self.key = key

    async def _get(self, path: str, resident_token: str, **params: Any) -> httpx.Response:
        try:
            response = await self.client.get(
                f"{self.base_url}{path}",
                params=params,
                headers={"X-Resident-Token": resident_token} | channel_headers(self.key),
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("tracker did not answer") from exc
        if response.status_code >= 500:
            raise ServiceUnavailable(f"tracker answered {response.status_code}")
        return response

    async def complaint(self, complaint_id: str, *, resident_token: str) -> Complaint | None:
        response = await self._get(f"/v1/complaints/{complaint_id}", resident_token)
        if response.status_code != 200:
            return None
        return Complaint.model_validate(response.json())

    async def my_complaints(self, resident_token: str, *, limit: int = 50) -> list[Summary]:
        response = await self._get("/v1/residents/me/complaints", resident_token, limit=limit)
        if response.status_code != 200:
            return []
        return [Summary.model_validate(item) for item in response.json()["items"]]

    async def similar(self, *, dong: str, text: str, department: str) -> list[Similar]:
        try:
            response = await self.client.get(
                f"{self.base_url}/v1/complaints/similar",
                params={"dong": dong, "text": text[:500], "department": department},
                headers=channel_headers(self.key),
            )
            if response.status_code != 200:  # 429, 422, 5xx: file without the offer
                return []
            return [Similar.model_validate(item) for item in response.json()["items"]]
        except (httpx.HTTPError, ValueError, KeyError):
            return []

    async def changes(self, complaint_id: str, *, resident_token: str) -> AsyncIterator[int]:
        url = f"{self.base_url}/v1/complaints/{complaint_id}/events"
        headers = {"X-Resident-Token": resident_token, "Accept": "text/event-stream"}
        headers |= channel_headers(self.key)
        timeout = httpx.Timeout(10.0, read=None)
        try:
            async with self.streams.stream("GET", url, headers=headers, timeout=timeout) as stream:
                if stream.status_code != 200:
                    return
                async for line in stream.aiter_lines():
                    if line.startswith("id:"):
                        yield int(line[3:].strip())
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("tracker's live timeline dropped") from exc
