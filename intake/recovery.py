"""Recovering one's complaints on another device (issue 12): the receipt number, and a
one-time code sent to the phone on file.

intake and tracker keep only hashes of the tokens, so nobody can hand an old resident
token back. Instead a resident on a new phone (or a browser that forgot its cookie) types
a complaint's receipt number; intake sends a code to the phone that complaint was filed
with (the same ``contact.codes`` path as the contact code, ``purpose: recovery``), and on
the right code binds a resident token — the device's own, or a new one intake makes and
answers once — to that complaint and to the same resident's others.

**Which others.** The complaints filed under the same resident token (one device's, and
those bound to it by an earlier recovery) *that name the same phone*. Not every complaint
naming that phone: anyone may type any phone into a web filing, so the phone's owner would
be handed strangers' complaints (with their names and addresses). Not every complaint of
that resident token either: one filed with another phone, or with none, was never tied to
the phone the code proves. The phone is compared in memory, never stored in clear
anywhere new (it already is in the complaint intake keeps).

**No enumeration.** ``POST /v1/recovery`` answers the same 202 whether the receipt number
exists, has a phone, or neither; a code is refused with the same 422 whether it is wrong,
expired, used up, locked or was never sent. Requests are limited per client (the route's
limit) and per receipt number (``Limits`` here, in memory), and codes per complaint as the
contact codes are (``CodeRules``, in MongoDB).

The binding reaches the tracker as one ``ResidentBound`` per complaint on
``resident.bindings`` (intake to tracker only: a token hash, no contact), keyed by the
complaint id like every message about it; its id derives from the complaint and the hash,
so publishing it again is harmless. intake's own checks (resident actions, contact codes,
photos) read the binding from ``intake_complaints`` (``SubmissionStore.token_matches``).
"""

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field

from intake.contacts import (
    CAS_TRIES,
    CodeRecord,
    CodeRules,
    ContactCodeStore,
    Contacts,
    Verdict,
    new_code,
)
from intake.filing import new_tracking_token
from intake.store import Owner, SubmissionStore
from schemas import topics
from schemas.common import Text
from schemas.events import CodePurpose, ContactCodeIssued, bound_event
from schemas.tokens import hash_token
from services.http import ApiError
from services.keys import ApiKeys
from services.logs import bound
from services.openapi import refusals
from services.ratelimit import (
    EndUsers,
    Limits,
    Rate,
    RateLimitMetrics,
    RouteLimit,
    RouteLimits,
    too_many,
)
from services.runtime import Clock, Publish

log = logging.getLogger("sotong.intake")

RECOVERY_CODES = "intake_recovery_codes"
RECEIPT_PATTERN = r"^[0-9]{6}-[0-9]{6}$"
MAX_RECOVERED = 100
"""Complaints one recovery binds at most (the newest filed)."""
PER_RECEIPT = "receipt"
"""The limit's name in ``sotong_rate_limited_total`` and the 429's message."""


def digits(phone: str | None) -> str:
    return "".join(c for c in phone or "" if c.isdigit())


def recoverable(
    target: Owner, candidates: Sequence[Owner], limit: int = MAX_RECOVERED
) -> list[Owner]:
    """The complaints a right code for ``target`` binds: ``target`` first, then those of
    ``candidates`` that share a resident token hash with it and name the same phone, at
    most ``limit`` in all. Pure."""
    phone = digits(target.phone)
    if not phone:
        return []
    hashes = set(target.resident_hashes)
    found = [target]
    for owner in candidates:
        if len(found) >= limit:
            break
        if owner.complaint_id == target.complaint_id:
            continue
        if hashes & set(owner.resident_hashes) and digits(owner.phone) == phone:
            found.append(owner)
    return found


# -- HTTP shapes ---------------------------------------------------------------------------


class RecoveryRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt_number: str = Field(
        pattern=RECEIPT_PATTERN, description="접수번호 of one of the resident's complaints."
    )


class RecoveryConfirmRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt_number: str = Field(pattern=RECEIPT_PATTERN, description="The same 접수번호.")
    code: str = Field(pattern=r"^[0-9]{6}$", description="The six digits sent (인증번호).")
    resident_token: Annotated[Text, Field(min_length=16, max_length=100)] | None = Field(
        default=None,
        description="This device's resident token, if it has one (from an earlier filing): "
        "the complaints join it. Left out, intake makes a new one and answers it once.",
    )


class RecoveryStarted(BaseModel):
    """The same answer whatever the receipt number: no one learns from it whether such a
    complaint exists or has a phone."""

    code_sent_if_on_file: bool = Field(
        default=True,
        description="A code went to the phone on file, if the complaint exists and has one.",
    )
    expires_at: datetime = Field(description="A code sent now is refused after this time.")
    confirm: str = Field(default="/v1/recovery/confirm", description="POST the code here.")


class RecoveredComplaint(BaseModel):
    complaint_id: str
    receipt_number: str


class Recovered(BaseModel):
    resident_token: str | None = Field(
        default=None,
        description="Made by intake when none was passed: keep it (the only copy); it "
        "follows these complaints (`X-Resident-Token`) and files the next ones.",
    )
    complaints: list[RecoveredComplaint] = Field(
        description="The complaints now bound to the resident token, newest filed first."
    )


def refused() -> ApiError:
    """One refusal for every code that does not recover: wrong, expired, used up, locked, or
    never sent (an unknown receipt number looks the same)."""
    return ApiError(
        422,
        "wrong_code",
        "code: not accepted for this receipt number (wrong, expired, used or tried too often); "
        "ask for a new code",
    )


# -- the application service ----------------------------------------------------------------


class Recovery:
    """Sends recovery codes and binds resident tokens on the right one."""

    def __init__(
        self,
        *,
        store: SubmissionStore,
        codes: ContactCodeStore,
        contacts: Contacts,
        publish: Publish,
        clock: Clock,
        rules: CodeRules,
        per_receipt: Limits,
        metrics: RateLimitMetrics,
        registry: CollectorRegistry,
    ) -> None:
        self.store = store
        self.codes = codes
        self.contacts = contacts
        self.publish = publish
        self.clock = clock
        self.rules = rules
        self.per_receipt = per_receipt
        self.metrics = metrics
        self.checks = Counter(
            "sotong_recovery_code_checks_total",
            "Recovery code attempts, by verdict.",
            ["verdict"],
            registry=registry,
        )
        self.recovered = Counter(
            "sotong_recovery_complaints_bound_total",
            "Complaints bound to a resident token by recovery.",
            registry=registry,
        )

    async def start(self, receipt_number: str) -> RecoveryStarted:
        """Send a code to the phone on file, if there is one; the same answer either way."""
        decision = self.per_receipt.take(receipt_number)
        if not decision.allowed:
            self.metrics.count(PER_RECEIPT)
            raise too_many(PER_RECEIPT, decision, "codes for this receipt number")
        now = self.clock()
        owner = await self.store.owner_by_receipt(receipt_number)
        if owner is not None and owner.phone:
            with bound(complaint_id=owner.complaint_id):
                try:
                    await self._issue(owner, owner.phone)
                except Exception:
                    log.exception("recovery code not sent; the resident may ask again")
        return RecoveryStarted(expires_at=now + self.rules.ttl)

    async def _issue(self, owner: Owner, phone: str) -> None:
        for _ in range(CAS_TRIES):
            now = self.clock()
            code, salt = new_code(), secrets.token_hex(8)
            existing = await self.codes.get(owner.complaint_id)
            if existing is None:
                fresh = self.rules.issue_for(
                    complaint_id=owner.complaint_id,
                    receipt_number=owner.receipt_number,
                    tracking_token_hash="",  # a recovery code is proven by nothing but itself
                    resident_token_hash=None,
                    phone=phone,
                    now=now,
                    code=code,
                    salt=salt,
                )
                if await self.codes.create(fresh):
                    await self._send(fresh, code)
                    return
                continue
            # a used code makes way for a new one, within the same hourly count
            outcome = self.rules.resend(
                replace(existing, confirmed_at=None, phone=phone), now, code=code, salt=salt
            )
            if isinstance(outcome, datetime):
                log.info("recovery codes asked for too often; none sent")
                return
            if await self.codes.update(outcome):
                await self._send(outcome, code)
                return
        log.warning("recovery code not sent: the record kept changing")

    async def _send(self, record: CodeRecord, code: str) -> None:
        await self.publish(
            topics.CONTACT_CODES,
            ContactCodeIssued(
                complaint_id=record.complaint_id,
                receipt_number=record.receipt_number,
                phone=record.phone,
                code=code,
                expires_at=record.expires_at,
                occurred_at=self.clock(),
                purpose=CodePurpose.RECOVERY,
            ),
            correlation_id=None,
        )

    async def confirm(
        self, receipt_number: str, code: str, resident_token: str | None
    ) -> Recovered:
        """On the right code, bind the resident token to the complaint and its resident's
        others (see the module's docstring), then use the code up."""
        owner = await self.store.owner_by_receipt(receipt_number)
        if owner is None or not owner.phone:
            self.checks.labels("unknown").inc()
            raise refused()
        if resident_token is not None and not await self.store.known_residents([resident_token]):
            raise ApiError(
                422, "invalid_request", "resident_token: not a resident token intake issued"
            )
        token = resident_token or new_tracking_token()
        token_hash = hash_token(token)
        remembered = resident_token is not None
        for _ in range(CAS_TRIES):
            record = await self.codes.get(owner.complaint_id)
            if record is None:
                self.checks.labels("none_sent").inc()
                raise refused()
            verdict, after = self.rules.check(record, code, self.clock())
            if verdict is not Verdict.CONFIRMED:
                if after != record and not await self.codes.update(after):
                    continue  # another attempt came first: judge this one against it
                self.checks.labels(verdict.value).inc()
                raise refused()
            # the effects first, each safe to repeat; the code is used up after them, so
            # a failure here leaves it valid for the resident's retry
            if not remembered:
                await self.store.remember_residents([token], self.clock())
                remembered = True
            complaints = await self._bind(owner, token_hash)
            if not await self.codes.update(after):
                continue
            self.checks.labels("confirmed").inc()
            self.recovered.inc(len(complaints))
            try:
                await self.contacts.proven(
                    [o.complaint_id for o in complaints], owner.phone, token_hash
                )
            except Exception:
                log.exception("the contact not marked confirmed by the recovery")
            with bound(complaint_id=owner.complaint_id):
                log.info("complaints recovered", extra={"count": len(complaints)})
            return Recovered(
                resident_token=None if resident_token is not None else token,
                complaints=[
                    RecoveredComplaint(complaint_id=o.complaint_id, receipt_number=o.receipt_number)
                    for o in complaints
                ],
            )
        raise ApiError(409, "conflict", "code: another attempt was checked at once; try again")

    async def _bind(self, owner: Owner, token_hash: str) -> list[Owner]:
        candidates = await self.store.owned_by(owner.resident_hashes, limit=MAX_RECOVERED)
        complaints = recoverable(owner, candidates)
        await self.store.bind_resident([o.complaint_id for o in complaints], token_hash)
        now = self.clock()
        sent = await asyncio.gather(
            *(
                self.publish(
                    topics.RESIDENT_BINDINGS,
                    bound_event(o.complaint_id, token_hash, now),
                    correlation_id=None,
                )
                for o in complaints
            ),
            return_exceptions=True,
        )
        if any(isinstance(outcome, BaseException) for outcome in sent):
            raise ApiError(
                503, "unavailable", "the complaints could not be bound now; enter the code again"
            )
        return complaints


# -- HTTP ---------------------------------------------------------------------------------

ROUTES = (("POST", "/v1/recovery"), ("POST", "/v1/recovery/confirm"))


def recovery_limits(
    *,
    per_minute: int,
    per_hour: int,
    per_credential_minute: int,
    max_keys: int,
    channels: ApiKeys,
    metrics: RateLimitMetrics,
) -> RouteLimits:
    """Both routes share one budget per end user (a client address, or the resident a
    credentialed channel names in X-End-User), as filings do."""
    limit = RouteLimit(
        "recovery",
        Limits.of([Rate(per_minute, 60), Rate(per_hour, 3600)], max_keys=max_keys),
        per_credential=Limits.of([Rate(per_credential_minute, 60)], max_keys=64),
        what="recovery requests",
    )
    return RouteLimits(dict.fromkeys(ROUTES, limit), end_users=EndUsers(channels), metrics=metrics)


def recovery_routes(recovery: Recovery) -> APIRouter:
    router = APIRouter(tags=["residents"])

    @router.post(
        "/v1/recovery",
        response_model=RecoveryStarted,
        status_code=202,
        responses=refusals(
            422,
            429,
            described={
                422: "Not a receipt number (`YYMMDD-NNNNNN`).",
                429: "Too many requests from this client or for this receipt number.",
            },
        ),
    )
    async def start_recovery(request: Annotated[RecoveryRequest, Body()]) -> RecoveryStarted:
        """다른 기기에서 내 민원 찾기: send a one-time code to the phone the complaint with this
        receipt number was filed with. The answer is the same whether or not such a
        complaint exists or has a phone."""
        return await recovery.start(request.receipt_number)

    @router.post(
        "/v1/recovery/confirm",
        response_model=Recovered,
        response_model_exclude_none=True,
        responses=refusals(
            409,
            422,
            429,
            described={
                422: "The code is not accepted (`wrong_code`: wrong, expired, used, tried "
                "too often or never sent), or `resident_token` is not one intake issued.",
            },
        ),
    )
    async def confirm_recovery(
        request: Annotated[RecoveryConfirmRequest, Body()],
    ) -> Recovered:
        """Enter the code: the resident token (this device's, or a new one answered once)
        now follows the complaint and the same resident's others with the same phone. A
        503 means the binding could not be published: the code still works, enter it again."""
        return await recovery.confirm(request.receipt_number, request.code, request.resident_token)

    return router


__all__ = [
    "RECOVERY_CODES",
    "Recovered",
    "Recovery",
    "RecoveryStarted",
    "recoverable",
    "recovery_limits",
    "recovery_routes",
]
