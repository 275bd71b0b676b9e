"""intake and tracker as the portal sees them: their public HTTP APIs, nothing more.

The portal is a channel like any other: it files and acts as the resident through
intake, and reads through tracker. The shapes below name only the fields the pages show
(readers ignore the rest, so tracker may add fields freely). ``IntakeApi`` and
``TrackerApi`` are what the handlers need; tests pass in-memory doubles
(``tests/fakes/portal.py``) and the browser tier runs these against the real services.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict


class _Read(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Department(_Read):
    code: str
    name: str | None = None


class Handler(_Read):
    name: str
    office_phone: str


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


class ServiceUnavailable(RuntimeError):
    """intake or tracker did not answer; the page says so instead of failing blank."""


class IntakeApi(Protocol):
    async def file(self, body: dict[str, Any]) -> Filed | Refused: ...

    async def resident_action(
        self, complaint_id: str, *, action: str, token: str, note: str | None
    ) -> Refused | None: ...

    async def confirm_contact(self, complaint_id: str, *, token: str, code: str) -> Refused | None:
        """Enter the code sent to the filing's phone; None when confirmed."""
        ...

    async def resend_code(self, complaint_id: str, *, token: str) -> Refused | None:
        """Have a new code sent; None when it was."""
        ...


class TrackerApi(Protocol):
    async def complaint(self, complaint_id: str, *, resident_token: str) -> Complaint | None: ...

    async def my_complaints(self, resident_token: str, *, limit: int = 50) -> list[Summary]: ...

    def changes(self, complaint_id: str, *, resident_token: str) -> AsyncIterator[int]:
        """The sequence of each timeline entry as tracker stores it, live (SSE)."""
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
    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")

    async def file(self, body: dict[str, Any]) -> Filed | Refused:
        # the form's own id keys the request: a resubmitted form gets the first answer,
        # tokens included (a duplicate channel_ref alone is answered without them)
        ref = body.get("channel_ref")
        headers = {"Idempotency-Key": str(ref)} if ref else {}
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

    async def resident_action(
        self, complaint_id: str, *, action: str, token: str, note: str | None
    ) -> Refused | None:
        body: dict[str, Any] = {"action": action, "token": token}
        if note:
            body["note"] = note
        url = f"{self.base_url}/v1/complaints/{complaint_id}/resident-actions"
        try:
            response = await self.client.post(url, json=body)
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

    async def _contact(
        self, url: str, token: str, body: dict[str, Any] | None, *, ok: int
    ) -> Refused | None:
        try:
            response = await self.client.post(url, json=body, headers={"X-Tracking-Token": token})
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("intake did not answer") from exc
        if response.status_code == ok:
            return None
        if response.status_code >= 500:
            raise ServiceUnavailable(f"intake answered {response.status_code}")
        return _refused(response)


class HttpTracker:
    """``streams`` holds the live timelines, one long-lived connection per open page, in a
    pool of its own, so many open pages never starve the short calls of connections."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, streams: httpx.AsyncClient | None = None
    ) -> None:
        self.client = client
        self.streams = streams or client
        self.base_url = base_url.rstrip("/")

    async def _get(self, path: str, resident_token: str, **params: Any) -> httpx.Response:
        try:
            response = await self.client.get(
                f"{self.base_url}{path}",
                params=params,
                headers={"X-Resident-Token": resident_token},
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

    async def changes(self, complaint_id: str, *, resident_token: str) -> AsyncIterator[int]:
        url = f"{self.base_url}/v1/complaints/{complaint_id}/events"
        headers = {"X-Resident-Token": resident_token, "Accept": "text/event-stream"}
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
