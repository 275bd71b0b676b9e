"""'이미 접수된 민원이 있어요' for every channel (``POST /v1/complaints/similar``): before a
filing is made, the open cases it may be repeating, so an app or a call-centre operator can
offer to join one (``joins``) as the portal does.

intake knows a filing's department from its service code (the catalogue in ``schemas``);
without one it asks routing's classifier over HTTP (``POST /v1/classify``, as the portal
does) and takes the department only when routing would route there without a person's
review — otherwise it says so rather than guess. The cases come from the tracker's
public lookup (same department, same 행정동, alike text, open, recent); each is then read
through the tracker's staff API for what Open311's public GETs already show of any
request — its receipt number, when it was filed and, for services whose requests are
public, the start of its text masked again here. Nothing of a reporter (name, phone,
e-mail, address) is read or answered.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx
from pydantic import ValidationError

from intake.api import NamedDepartment, OpenCase, SimilarAnswer
from intake.tracker_client import SimilarCase, TrackedComplaint, TrackerUnavailable
from schemas.catalogue import catalogue
from schemas.events import Submission
from schemas.pii import mask_text

log = logging.getLogger("sotong.intake.similar")


class Classifies(Protocol):
    """The department routing would send a text to without review, or None."""

    async def __call__(self, text: str) -> str | None: ...


@dataclass(frozen=True)
class RoutingClassifier:
    """routing's ``POST /v1/classify`` for one text: its department when ``auto`` (routing
    would route there without review), else None; None too when routing cannot answer
    (the lookup is an offer: it never holds up a filing)."""

    http: httpx.AsyncClient

    @classmethod
    def build(cls, base_url: str) -> "RoutingClassifier":
        return cls(httpx.AsyncClient(base_url=base_url, timeout=5.0))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __call__(self, text: str) -> str | None:
        try:
            response = await self.http.post("/v1/classify", json={"texts": [text[:4000]]})
            response.raise_for_status()
            (prediction,) = response.json()["predictions"]
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            log.warning("not classified for the similar lookup: %s", type(exc).__name__)
            return None
        if prediction.get("auto") is not True:
            return None
        department = prediction.get("department")
        return department if isinstance(department, str) else None


class Tracker(Protocol):
    """What the lookup reads of the tracker (``intake.tracker_client.TrackerClient``)."""

    async def similar(self, *, dong: str, text: str, department: str) -> list[SimilarCase]: ...

    async def complaint(self, complaint_id: str) -> TrackedComplaint | None: ...


def text_of(submission: Submission) -> str:
    """What the resident wrote, as routing and the portal compare it: title and body."""
    return " ".join(part for part in (submission.title, submission.body) if part)


def open_case(
    case: SimilarCase, detail: TrackedComplaint | None, listed: Callable[[str | None], bool]
) -> OpenCase:
    """A case's public summary: the lookup's, with the staff API's receipt number, time of
    filing and (a public service only) masked excerpt when it could be read."""
    known = detail is not None and detail.complaint_id == case.complaint_id
    excerpt = (
        mask_text(detail.excerpt) or None
        if detail is not None and known and listed(detail.service_code)
        else None
    )
    return OpenCase(
        complaint_id=case.complaint_id,
        receipt_number=detail.receipt_number if detail is not None and known else None,
        state=case.state,
        department_name=case.department_name,
        excerpt=excerpt,
        dong=case.dong,
        filed_at=detail.filed_at if detail is not None and known else None,
        filed_on=case.filed_on,
        similarity=case.similarity,
    )


@dataclass(frozen=True)
class OpenCases:
    tracker: Tracker
    listed: Callable[[str | None], bool]
    """Whether a service's requests are public (Open311's ``listed``): only then an excerpt."""
    classify: Classifies | None = None
    """routing's classifier, for a filing without a (known) service code."""

    async def like(self, submission: Submission) -> SimilarAnswer:
        code = submission.service_code
        owner = catalogue().by_service_code(code) if code else None
        source: Literal["service_code", "classifier"] = "service_code"
        if owner is None and self.classify is not None:
            classified = await self.classify(text_of(submission))
            owner = catalogue().by_code.get(classified) if classified else None
            source = "classifier"
        if owner is None:
            return SimilarAnswer(
                department=None, looked_up=False, not_looked_up="no_department", items=[]
            )
        department = NamedDepartment(code=owner.code, name=owner.name, source=source)
        dong = submission.location.dong
        if not dong:
            return SimilarAnswer(
                department=department, looked_up=False, not_looked_up="no_dong", items=[]
            )
        try:
            cases = await self.tracker.similar(
                dong=dong, text=text_of(submission), department=owner.code
            )
        except TrackerUnavailable as exc:
            log.warning("similar complaints not looked up: %s", exc)
            return SimilarAnswer(
                department=department,
                looked_up=False,
                not_looked_up="tracker_unavailable",
                items=[],
            )
        details = await asyncio.gather(*(self._detail(c.complaint_id) for c in cases))
        return SimilarAnswer(
            department=department,
            looked_up=True,
            items=[open_case(c, d, self.listed) for c, d in zip(cases, details, strict=True)],
        )

    async def _detail(self, complaint_id: str) -> TrackedComplaint | None:
        """The staff API's view of one case, or None if it cannot be read now (no staff key,
        the tracker away): the summary is answered without what only it gives."""
        try:
            return await self.tracker.complaint(complaint_id)
        except (TrackerUnavailable, httpx.HTTPError, ValidationError) as exc:
            log.info("similar complaint's details not read: %s", type(exc).__name__)
            return None
