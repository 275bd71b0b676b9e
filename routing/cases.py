"""반복민원 and 중복민원: which stored complaint a new one repeats or joins. Pure.

- **Repeated** (민원 처리에 관한 법률 제23조): the same resident (the same resident key:
  a keyed hash of their phone, or the hash of their resident token), the same
  department, a concluded complaint (resolved or closed) concluded within the window,
  and texts at least ``repeat_threshold`` alike. Routing only marks it; the department
  confirms (``conclude_repeated``) or dismisses the mark.
- **Duplicate**: another complaint still open in the same department and 행정동, at the
  same place (coordinates within ``duplicate_distance_m``, or the same address when
  either has no coordinates), received within the window, texts at least
  ``duplicate_threshold`` alike, and itself a case (not linked to another, not marked
  repeated). The new complaint joins it. The service codes the two were filed with are a
  signal too (:meth:`CasePolicy.duplicate_bar`): the same code lowers the bar to
  ``duplicate_same_service_threshold``; two different codes (two residents naming two
  different problems of one department) are never linked by routing — either resident
  may still join the other's case at filing; a complaint without a code is held to
  ``duplicate_threshold``.

Two reports of the same problem in one consumed batch are matched too: each new
complaint that joins no stored case and repeats nothing is a :class:`Pending` case the
batch's later ones may join (the handler it gets in the batch is the one they get).

The candidates come from one indexed query per batch (``RoutingStore.case_candidates``)
on keys derived here (:func:`repeat_key`, :func:`case_key`), so their number is bounded
by one resident's concluded complaints in one department, or the open cases of one
department in one 행정동, never by every complaint stored.
"""

import hashlib
import hmac
import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Protocol

from routing.similarity import Similarity
from schemas.catalogue import catalogue
from schemas.events import HandlerRef, LinkedTo, RepeatedOf
from schemas.states import CONCLUDED_STATES, OPEN_STATES, ComplaintState

EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True, kw_only=True)
class CasePolicy:
    repeat_threshold: float
    repeat_window: timedelta
    duplicate_threshold: float
    duplicate_window: timedelta
    duplicate_distance_m: float
    duplicate_same_service_threshold: float | None = None
    """The bar when both were filed with one service code; None: ``duplicate_threshold``."""
    max_candidates: int = 200
    """Candidates read per batch, at most: the query's bound."""

    def duplicate_bar(self, new: str | None, case: str | None) -> float | None:
        """The text similarity a complaint filed with service code ``new`` needs to join
        a case filed with ``case``: None when it may not join it at all (two codes)."""
        if new is None or case is None:
            return self.duplicate_threshold
        if new != case:
            return None
        if self.duplicate_same_service_threshold is None:
            return self.duplicate_threshold
        return self.duplicate_same_service_threshold


class Stored(Protocol):
    """What matching reads of a stored complaint (a ``RoutingRecord`` has all of it)."""

    @property
    def complaint_id(self) -> str: ...

    @property
    def receipt_number(self) -> str: ...

    @property
    def state(self) -> ComplaintState: ...

    @property
    def department(self) -> str | None: ...

    @property
    def area(self) -> str | None: ...

    @property
    def service_code(self) -> str | None: ...

    @property
    def resident_key(self) -> str | None: ...

    @property
    def terms(self) -> tuple[str, ...]: ...

    @property
    def address(self) -> str | None: ...

    @property
    def lat(self) -> float | None: ...

    @property
    def lon(self) -> float | None: ...

    @property
    def received_at(self) -> datetime | None: ...

    @property
    def concluded_at(self) -> datetime | None: ...

    @property
    def handler(self) -> HandlerRef | None: ...

    @property
    def repeated_of(self) -> RepeatedOf | None: ...

    @property
    def linked_to(self) -> LinkedTo | None: ...


@dataclass(frozen=True, kw_only=True)
class Filing:
    """What matching reads of a new complaint, once routed."""

    complaint_id: str
    department: str
    area: str | None
    service_code: str | None
    resident_key: str | None
    terms: tuple[str, ...]
    address: str | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True, kw_only=True)
class Pending(Filing):
    """A new complaint of the same batch, as the case a later one of the batch may join:
    open, received now, its handler not yet chosen (the batch fills it in)."""

    receipt_number: str
    received_at: datetime | None
    state: ComplaintState = ComplaintState.RECEIVED
    concluded_at: datetime | None = None
    handler: HandlerRef | None = None
    repeated_of: RepeatedOf | None = None
    linked_to: LinkedTo | None = None

    @classmethod
    def of(cls, filing: Filing, receipt_number: str, now: datetime) -> "Pending":
        known = {f.name: getattr(filing, f.name) for f in fields(Filing)}
        return cls(**known, receipt_number=receipt_number, received_at=now)


@dataclass(frozen=True)
class Link:
    """The case a new complaint joins, and the handler who works it."""

    to: LinkedTo
    handler: HandlerRef | None


def resident_key(
    *, phone: str | None, resident_token_hash: str | None, phone_key: bytes | None
) -> str | None:
    """One resident across filings: a keyed hash of their phone (digits only) when a key
    is configured and they gave one, else their resident token's hash. Never the phone."""
    digits = "".join(c for c in phone or "" if c.isdigit())
    if digits and phone_key:
        return "p:" + hmac.new(phone_key, digits.encode(), hashlib.sha256).hexdigest()
    return f"t:{resident_token_hash}" if resident_token_hash else None


def repeat_key(resident: str | None, department: str | None, state: ComplaintState) -> str | None:
    """Where a concluded complaint is found again by the same resident's next one."""
    if resident is None or department is None or state not in CONCLUDED_STATES:
        return None
    return f"{resident}|{department}"


def case_key(
    department: str | None,
    area: str | None,
    state: ComplaintState,
    *,
    repeated: bool,
    linked: bool,
) -> str | None:
    """Where an open case is found by a duplicate filed in the same 행정동."""
    if department is None or not area or state not in OPEN_STATES or repeated or linked:
        return None
    return f"{department}|{area}"


def service_of(code: str | None, department: str | None) -> str | None:
    """A complaint's service code as a duplicate signal: only a code of the department it
    is in now (a case transferred elsewhere keeps the code of the department it left)."""
    dept = catalogue().by_code.get(department or "")
    return code if dept is not None and code in dept.service_codes else None


def _same_address(a: str | None, b: str | None) -> bool:
    return bool(a and b) and "".join((a or "").split()) == "".join((b or "").split())


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine): exact enough at the scale of a street."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, kw_only=True)
class Matcher:
    similarity: Similarity
    policy: CasePolicy

    def repeated_of(
        self, new: Filing, candidates: Iterable[Stored], now: datetime
    ) -> RepeatedOf | None:
        """The most alike of the same resident's concluded complaints, above the threshold."""
        if new.resident_key is None:
            return None
        since = now - self.policy.repeat_window
        best: tuple[float, Stored] | None = None
        for c in candidates:
            if (
                c.complaint_id == new.complaint_id
                or c.resident_key != new.resident_key
                or c.department != new.department
                or c.state not in CONCLUDED_STATES
                or c.concluded_at is None
                or c.concluded_at < since
            ):
                continue
            score = self.similarity.cosine(new.terms, c.terms)
            if score >= self.policy.repeat_threshold and (best is None or score > best[0]):
                best = (score, c)
        if best is None:
            return None
        score, earlier = best
        return RepeatedOf(
            complaint_id=earlier.complaint_id,
            receipt_number=earlier.receipt_number,
            similarity=round(score, 4),
        )

    def linked_to(self, new: Filing, candidates: Iterable[Stored], now: datetime) -> Link | None:
        """The most alike open case at the same place, above the threshold."""
        if not new.area:
            return None
        since = now - self.policy.duplicate_window
        best: tuple[float, float | None, Stored] | None = None
        for c in candidates:
            if (
                c.complaint_id == new.complaint_id
                or c.department != new.department
                or c.area != new.area
                or c.state not in OPEN_STATES
                or c.linked_to is not None
                or c.repeated_of is not None
                or c.received_at is None
                or c.received_at < since
            ):
                continue
            apart: float | None = None
            if (
                new.lat is not None
                and new.lon is not None
                and c.lat is not None
                and c.lon is not None
            ):
                apart = distance_m(new.lat, new.lon, c.lat, c.lon)
                if apart > self.policy.duplicate_distance_m:
                    continue
            elif not _same_address(new.address, c.address):
                continue
            bar = self.policy.duplicate_bar(
                service_of(new.service_code, new.department),
                service_of(c.service_code, c.department),
            )
            if bar is None:
                continue
            score = self.similarity.cosine(new.terms, c.terms)
            if score >= bar and (best is None or score > best[0]):
                best = (score, apart, c)
        if best is None:
            return None
        score, apart, case = best
        return Link(
            LinkedTo(
                complaint_id=case.complaint_id,
                receipt_number=case.receipt_number,
                similarity=round(score, 4),
                distance_m=None if apart is None else round(apart, 1),
            ),
            case.handler,
        )
