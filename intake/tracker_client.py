"""intake's reader of the tracker's HTTP API: where a complaint stands, for Open311's GETs,
and which open complaints look like a filing (``POST /v1/complaints/similar``).

intake never opens the tracker's collections. It reads what a staff key may read
(``/v1/search``, ``/v1/staff/complaints/{id}``): the fields of a search hit, which carry
no name, phone or address of a resident, so nothing personal reaches intake this way; and
the tracker's public '이미 접수된 민원' lookup (``/v1/complaints/similar``), which needs no key.
"""

from datetime import date, datetime
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from schemas.states import ComplaintState


class TrackerUnavailable(Exception):
    """The tracker did not answer, or refused intake's key: nothing to show."""


class DepartmentRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str
    name: str | None = None


class TrackedComplaint(BaseModel):
    """A complaint as a staff search shows it (the fields intake uses)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    complaint_id: str
    receipt_number: str | None
    state: ComplaintState | None
    department: DepartmentRef | None
    service_code: str | None = None
    dong: str | None = None
    excerpt: str = ""
    filed_at: datetime | None
    updated_at: datetime | None
    due_at: datetime | None


class SimilarCase(BaseModel):
    """An open complaint the tracker's lookup offers: its public summary (no text, nothing
    of its reporter)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    complaint_id: str
    state: ComplaintState
    department_name: str | None = None
    dong: str
    filed_on: date
    similarity: float


class SimilarCases(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    items: list[SimilarCase]


SIMILAR_TEXT = 500
"""The most of a text the tracker's lookup takes."""


class SearchPage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    items: list[TrackedComplaint]
    total: int
    next_offset: int | None


PAGE = 100
"""The tracker's largest page."""


class TrackerClient:
    def __init__(self, http: httpx.AsyncClient, staff_key: SecretStr | None) -> None:
        self.http = http
        self.staff_key = staff_key

    @classmethod
    def build(cls, base_url: str, staff_key: SecretStr | None) -> "TrackerClient":
        return cls(httpx.AsyncClient(base_url=base_url, timeout=10.0), staff_key)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _get(self, path: str, params: dict[str, str | int] | None = None) -> httpx.Response:
        if self.staff_key is None:
            raise TrackerUnavailable("no tracker staff key configured")
        headers = {"X-Api-Key": self.staff_key.get_secret_value()}
        try:
            response = await self.http.get(path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise TrackerUnavailable(f"tracker unreachable: {type(exc).__name__}") from exc
        if response.status_code in (401, 403) or response.status_code >= 500:
            raise TrackerUnavailable(f"tracker answered {response.status_code}")
        return response

    async def similar(self, *, dong: str, text: str, department: str) -> list[SimilarCase]:
        """The open complaints of ``department`` at ``dong`` whose text looks like ``text``,
        the most alike first (the tracker's public lookup; no key needed). Anything but an
        answer — unreachable, rate-limited, refused — is ``TrackerUnavailable``."""
        params = {"dong": dong, "text": text[:SIMILAR_TEXT], "department": department}
        try:
            response = await self.http.get("/v1/complaints/similar", params=params)
        except httpx.HTTPError as exc:
            raise TrackerUnavailable(f"tracker unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise TrackerUnavailable(f"tracker answered {response.status_code}")
        try:
            return SimilarCases.model_validate_json(response.content).items
        except ValidationError as exc:
            raise TrackerUnavailable("tracker answered what is not a lookup") from exc

    async def complaint(self, complaint_id: str) -> TrackedComplaint | None:
        """One complaint by id, or None when the tracker knows no such complaint."""
        response = await self._get(f"/v1/staff/complaints/{quote(complaint_id, safe='')}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return TrackedComplaint.model_validate_json(response.content)

    async def search(
        self,
        *,
        filed_from: datetime | None = None,
        filed_to: datetime | None = None,
        state: ComplaintState | None = None,
        service_code: str | None = None,
        receipt_number: str | None = None,
        at_most: int = 1000,
    ) -> list[TrackedComplaint]:
        """The complaints matching every filter given, newest filed first, at most
        ``at_most`` of them (page by page)."""
        params: dict[str, str | int] = {}
        if filed_from is not None:
            params["from"] = filed_from.isoformat()
        if filed_to is not None:
            params["to"] = filed_to.isoformat()
        if state is not None:
            params["state"] = state.value
        if service_code is not None:
            params["service_code"] = service_code
        if receipt_number is not None:
            params["receipt_number"] = receipt_number
        found: list[TrackedComplaint] = []
        offset: int | None = 0
        while offset is not None and len(found) < at_most:
            limit = min(PAGE, at_most - len(found))
            response = await self._get("/v1/search", params | {"limit": limit, "offset": offset})
            response.raise_for_status()
            page = SearchPage.model_validate_json(response.content)
            found += page.items
            offset = page.next_offset
        return found
