"""Confirmed contacts: an anonymous filing's phone is told nothing until the resident
enters the one-time code sent to it (issue 11 §11).

Anyone may file on the web without a credential, so anyone could make the district send
messages to someone else's phone. Such a filing is accepted at once, and its
``ComplaintFiled`` says ``contact_unconfirmed``: the notifier holds every message to the
resident until ``ContactConfirmed``. The code message itself goes at once
(``ContactCodeIssued`` on ``contact.codes``, a topic only intake writes and only the
notifier reads, since it carries the phone and the code).

Which channels need a code, with their credential or without, is a setting: by default
``web``, ``chatbot`` and ``kakao``, whose residents type their phone into a form or a chat
nobody checks. Other credentialed channels (a call centre that took the call), Open311
apps and department systems over Kafka vouch for their contacts.

Read top-down: the pure rules (:class:`CodeRules`: issue, check, resend), the store
(one document per complaint, only the code's salted hash kept, cleared by a TTL index),
:class:`Contacts` (the application service the routes call) and :func:`contact_routes`.

The code's hash is a salted SHA-256: six digits can be tried offline by anyone who reads
the database, so what protects a code is its short life and the attempt bound, not the
hash; a keyed hash would add a secret to deploy for little.
"""

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Protocol

from fastapi import APIRouter, Body, Header, Path
from prometheus_client import CollectorRegistry, Counter
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from intake.api import CodeSent, ComplaintId, Confirmed, ConfirmRequest
from intake.store import FiledRecord
from schemas import topics
from schemas.common import Channel, Resident
from schemas.events import ContactCodeIssued, ContactConfirmed
from schemas.tokens import hash_token, token_matches
from services.http import ApiError
from services.logs import bound
from services.mongo import Document
from services.openapi import refusals
from services.runtime import Clock, Publish

log = logging.getLogger("sotong.intake")

CODES = "intake_contact_codes"
CONFIRMED_PHONES = "intake_confirmed_phones"


def needs_code(
    channel: Channel,
    holder: str | None,
    resident: Resident,
    channels: Collection[str],
    credentialed: Collection[str] = (),
) -> bool:
    """Whether a filing's phone must be confirmed, giving a phone the resident agreed to be
    told at: filed as a channel that needs codes — with its credential or without: the
    portal holds the ``web`` one, but relays what any stranger typed, so its credential
    vouches for nothing about the phone — or, without a credential (``holder`` is the
    credential's channel), as a channel with none configured at all (open to anyone, so
    naming it must not get round the code)."""
    needs = channel.value in channels or (holder is None and channel.value not in credentialed)
    return needs and resident.phone is not None and resident.notification_consent


def new_code() -> str:
    """Six digits from the OS's CSPRNG."""
    return f"{secrets.randbelow(1_000_000):06d}"


def hash_code(code: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def confirmed_phone_key(key: bytes, phone: str, resident_token_hash: str) -> str | None:
    """What a phone confirmed by one resident is remembered under: a keyed hash of the
    phone's digits and the resident token's hash together, so the phone is never kept
    readable, and a stranger who types the same phone with their own resident token (their
    own cookie) meets another key and is asked for a code. None without digits."""
    digits = "".join(c for c in phone if c.isdigit())
    if not digits:
        return None
    message = f"confirmed:{digits}:{resident_token_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CodeRecord:
    """One complaint's contact confirmation, as stored. The phone and the token hashes
    are kept beside the code so a resend needs nothing else (the phone is personal
    data: out of ``repr``)."""

    complaint_id: str
    receipt_number: str
    tracking_token_hash: str
    resident_token_hash: str | None
    code_hash: str
    salt: str
    expires_at: datetime
    purge_at: datetime
    phone: str = field(repr=False)
    attempts: int = 0
    resends: tuple[datetime, ...] = ()
    confirmed_at: datetime | None = None
    version: int = 0

    def holds(self, tracking_token: str | None, resident_token: str | None) -> bool:
        """Whether either token is this complaint's."""
        return token_matches(tracking_token, self.tracking_token_hash) or token_matches(
            resident_token, self.resident_token_hash
        )


class Verdict(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY = "already_confirmed"
    WRONG = "wrong_code"
    EXPIRED = "code_expired"
    LOCKED = "too_many_attempts"


@dataclass(frozen=True)
class CodeRules:
    """How long a code lives, how often it may be tried and re-sent. Pure."""

    ttl: timedelta = timedelta(minutes=10)
    max_attempts: int = 5
    resends_per_hour: int = 3
    keep: timedelta = timedelta(days=7)
    """How long a record outlives its last code: as long as the notifier holds messages."""

    def issue(self, record: FiledRecord, now: datetime, *, code: str, salt: str) -> CodeRecord:
        """The first code of a complaint just filed."""
        filed = record.filed
        assert filed.resident.phone is not None, "a code goes to a phone"
        return self.issue_for(
            complaint_id=filed.complaint_id,
            receipt_number=filed.receipt_number,
            tracking_token_hash=filed.tracking_token_hash,
            resident_token_hash=filed.resident_token_hash,
            phone=filed.resident.phone,
            now=now,
            code=code,
            salt=salt,
        )

    def issue_for(
        self,
        *,
        complaint_id: str,
        receipt_number: str,
        tracking_token_hash: str,
        resident_token_hash: str | None,
        phone: str,
        now: datetime,
        code: str,
        salt: str,
    ) -> CodeRecord:
        return CodeRecord(
            complaint_id=complaint_id,
            receipt_number=receipt_number,
            tracking_token_hash=tracking_token_hash,
            resident_token_hash=resident_token_hash,
            code_hash=hash_code(code, salt),
            salt=salt,
            expires_at=now + self.ttl,
            purge_at=now + self.keep,
            phone=phone,
        )

    def check(self, record: CodeRecord, code: str, now: datetime) -> tuple[Verdict, CodeRecord]:
        """The verdict on one attempt, and the record as it stands after it (a wrong or
        late attempt counts; a right one confirms)."""
        if record.confirmed_at is not None:
            return Verdict.ALREADY, record
        if record.attempts >= self.max_attempts:
            return Verdict.LOCKED, record
        tried = replace(record, attempts=record.attempts + 1)
        if now >= record.expires_at:
            return Verdict.EXPIRED, tried
        if not hmac.compare_digest(hash_code(code, record.salt), record.code_hash):
            locked = tried.attempts >= self.max_attempts
            return (Verdict.LOCKED if locked else Verdict.WRONG), tried
        return Verdict.CONFIRMED, replace(tried, confirmed_at=now)

    def attempts_left(self, record: CodeRecord) -> int:
        return max(0, self.max_attempts - record.attempts)

    def resend(
        self, record: CodeRecord, now: datetime, *, code: str, salt: str
    ) -> CodeRecord | datetime:
        """A new code (attempts start again), or when the next resend is allowed."""
        recent = tuple(t for t in record.resends if t > now - timedelta(hours=1))
        if len(recent) >= self.resends_per_hour:
            return min(recent) + timedelta(hours=1)
        return replace(
            record,
            code_hash=hash_code(code, salt),
            salt=salt,
            attempts=0,
            expires_at=now + self.ttl,
            purge_at=max(record.purge_at, now + self.keep),
            resends=(*recent, now),
        )


# -- storage ------------------------------------------------------------------------------


class ContactCodeStore(Protocol):
    """Where codes wait. Every change is compare-and-set on ``version``, so two attempts
    at once cannot both count as the fourth."""

    async def ensure_indexes(self) -> None: ...

    async def create(self, record: CodeRecord) -> bool:
        """Keep a complaint's first code; False if it has one already."""
        ...

    async def get(self, complaint_id: str) -> CodeRecord | None: ...

    async def update(self, record: CodeRecord) -> bool:
        """Write ``record`` if the stored one is still at ``record.version``; the stored
        version becomes one more. False if another change came first."""
        ...


class MongoContactCodes:
    """``intake_contact_codes``: one document per complaint, by ``_id``; a TTL index on
    ``purge_at`` removes it once nothing can be held for it any more. Recovery codes
    (``intake.recovery``) are kept alike in a collection of their own."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = CODES) -> None:
        self.col: AsyncCollection[Document] = db[collection]

    async def ensure_indexes(self) -> None:
        await self.col.create_indexes(
            [IndexModel([("purge_at", ASCENDING)], name="purge_ttl", expireAfterSeconds=0)]
        )

    async def create(self, record: CodeRecord) -> bool:
        try:
            await self.col.insert_one({"_id": record.complaint_id, **_doc(record)})
        except DuplicateKeyError:
            return False
        return True

    async def get(self, complaint_id: str) -> CodeRecord | None:
        doc = await self.col.find_one({"_id": complaint_id})
        return None if doc is None else _record(doc)

    async def update(self, record: CodeRecord) -> bool:
        fields = _doc(replace(record, version=record.version + 1))
        result = await self.col.update_one(
            {"_id": record.complaint_id, "version": record.version}, {"$set": fields}
        )
        return result.modified_count == 1


class ConfirmedPhones(Protocol):
    """Phones a resident confirmed with a code, by :func:`confirmed_phone_key`, until when
    their filings need no code again."""

    async def ensure_indexes(self) -> None: ...

    async def remember(self, keys: Collection[str], until: datetime) -> None: ...

    async def remembered(self, key: str, now: datetime) -> bool: ...


class MongoConfirmedPhones:
    """``intake_confirmed_phones``: ``{_id: key, until}``; a TTL index on ``until`` forgets
    a phone when its time is up."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.col: AsyncCollection[Document] = db[CONFIRMED_PHONES]

    async def ensure_indexes(self) -> None:
        await self.col.create_indexes(
            [IndexModel([("until", ASCENDING)], name="until_ttl", expireAfterSeconds=0)]
        )

    async def remember(self, keys: Collection[str], until: datetime) -> None:
        for key in set(keys):
            await self.col.update_one({"_id": key}, {"$set": {"until": until}}, upsert=True)

    async def remembered(self, key: str, now: datetime) -> bool:
        return await self.col.find_one({"_id": key, "until": {"$gt": now}}, {"_id": 1}) is not None


def _doc(record: CodeRecord) -> Document:
    return {
        "receipt_number": record.receipt_number,
        "tracking_token_hash": record.tracking_token_hash,
        "resident_token_hash": record.resident_token_hash,
        "code_hash": record.code_hash,
        "salt": record.salt,
        "expires_at": record.expires_at,
        "purge_at": record.purge_at,
        "phone": record.phone,
        "attempts": record.attempts,
        "resends": list(record.resends),
        "confirmed_at": record.confirmed_at,
        "version": record.version,
    }


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _record(doc: Document) -> CodeRecord:
    confirmed = doc.get("confirmed_at")
    return CodeRecord(
        complaint_id=str(doc["_id"]),
        receipt_number=str(doc["receipt_number"]),
        tracking_token_hash=str(doc["tracking_token_hash"]),
        resident_token_hash=doc.get("resident_token_hash"),
        code_hash=str(doc["code_hash"]),
        salt=str(doc["salt"]),
        expires_at=_aware(doc["expires_at"]),
        purge_at=_aware(doc["purge_at"]),
        phone=str(doc["phone"]),
        attempts=int(doc["attempts"]),
        resends=tuple(_aware(t) for t in doc.get("resends", [])),
        confirmed_at=_aware(confirmed) if confirmed is not None else None,
        version=int(doc["version"]),
    )


# -- the application service ----------------------------------------------------------------


def links(complaint_id: str) -> tuple[str, str]:
    base = f"/v1/complaints/{complaint_id}/contact"
    return f"{base}/confirm", f"{base}/code"


CAS_TRIES = 5
"""Compare-and-set attempts before answering 409: only a burst of requests for one
complaint at the same moment gets there."""


class Contacts:
    """Issues, re-sends and checks codes; publishes what the notifier needs."""

    def __init__(
        self,
        *,
        store: ContactCodeStore,
        publish: Publish,
        clock: Clock,
        rules: CodeRules,
        channels: Collection[str],
        registry: CollectorRegistry,
        credentialed: Collection[str] = (),
        phones: ConfirmedPhones | None = None,
        phone_key: bytes = b"",
        remember_for: timedelta = timedelta(0),
        owns: Callable[[str, str], Awaitable[bool]] | None = None,
    ) -> None:
        """``phones``, ``phone_key``, ``remember_for``: a phone confirmed by a resident needs
        no code at their filings for that long (none remembered when zero). ``owns``: whether
        a resident token is the complaint's (the filer's, or one bound by recovery since)."""
        self.store = store
        self.publish = publish
        self.clock = clock
        self.rules = rules
        self.channels = frozenset(channels)
        self.credentialed = frozenset(credentialed)
        self.phones = phones
        self.phone_key = phone_key
        self.remember_for = remember_for
        self.owns = owns
        self.checks = Counter(
            "sotong_contact_code_checks_total",
            "Contact code attempts, by verdict.",
            ["verdict"],
            registry=registry,
        )
        self.sent = Counter(
            "sotong_contact_codes_issued_total",
            "Contact codes handed to the notifier, first or re-sent.",
            ["kind"],
            registry=registry,
        )

    async def needed(
        self,
        channel: Channel,
        holder: str | None,
        resident: Resident,
        resident_token: str | None = None,
    ) -> bool:
        """Whether a filing's phone needs a code: by the channel's rule, unless the filer
        (``resident_token``) confirmed this very phone within ``remember_for``."""
        if not needs_code(channel, holder, resident, self.channels, self.credentialed):
            return False
        key = self._phone_key(
            resident.phone, hash_token(resident_token) if resident_token else None
        )
        if key is None or self.phones is None:
            return True
        return not await self.phones.remembered(key, self.clock())

    def _phone_key(self, phone: str | None, resident_token_hash: str | None) -> str | None:
        if not (phone and resident_token_hash and self.remember_for > timedelta(0)):
            return None
        return confirmed_phone_key(self.phone_key, phone, resident_token_hash)

    async def remember(self, phone: str, resident_token_hashes: Collection[str | None]) -> None:
        """Remember ``phone`` as confirmed by each of these residents; a failure only means
        a code is asked for again."""
        keys = [k for h in resident_token_hashes if (k := self._phone_key(phone, h))]
        if not keys or self.phones is None:
            return
        try:
            await self.phones.remember(keys, self.clock() + self.remember_for)
        except Exception:
            log.exception("a confirmed phone not remembered; the next filing asks again")

    async def proven(
        self, complaint_ids: Collection[str], phone: str, resident_token_hash: str
    ) -> None:
        """A code sent to ``phone`` was entered another way (recovery) for these complaints,
        all filed with it: their contacts count as confirmed too, and the phone as
        confirmed by that resident."""
        await self.remember(phone, [resident_token_hash])
        for complaint_id in complaint_ids:
            await self._confirm_proven(complaint_id)

    async def _confirm_proven(self, complaint_id: str) -> None:
        for _ in range(CAS_TRIES):
            record = await self.store.get(complaint_id)
            if record is None or record.confirmed_at is not None:
                return
            now = self.clock()
            if await self.store.update(replace(record, confirmed_at=now)):
                await self.publish(
                    topics.CONTACT_CODES, confirmed_event(complaint_id, now), correlation_id=None
                )
                return

    async def issue(self, record: FiledRecord) -> CodeSent:
        """The first code of a complaint just filed. The complaint is stored already, so a
        failure here must not fail the filing: the resident asks for another code."""
        now = self.clock()
        code = new_code()
        issued = self.rules.issue(record, now, code=code, salt=secrets.token_hex(8))
        confirm, resend = links(issued.complaint_id)
        sent = False
        with bound(complaint_id=issued.complaint_id):
            try:
                if await self.store.create(issued):
                    await self._send(issued, code)
                    self.sent.labels("first").inc()
                    sent = True
            except Exception:
                log.exception("contact code not sent; the resident may ask for another")
        return CodeSent(
            code_sent=sent, expires_at=issued.expires_at, confirm=confirm, resend=resend
        )

    async def resend(
        self, complaint_id: str, tracking_token: str | None, resident_token: str | None
    ) -> CodeSent:
        for _ in range(CAS_TRIES):
            record = await self._held_by(complaint_id, tracking_token, resident_token)
            if record.confirmed_at is not None:
                raise ApiError(409, "already_confirmed", "code: the contact is confirmed already")
            now = self.clock()
            code = new_code()
            outcome = self.rules.resend(record, now, code=code, salt=secrets.token_hex(8))
            if isinstance(outcome, datetime):
                wait = max(1, int((outcome - now).total_seconds()) + 1)
                raise ApiError(
                    429,
                    "too_many_codes",
                    f"code: at most {self.rules.resends_per_hour} new codes an hour; "
                    f"try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            if await self.store.update(outcome):
                await self._send(outcome, code)
                self.sent.labels("resend").inc()
                confirm, resend = links(complaint_id)
                return CodeSent(
                    code_sent=True, expires_at=outcome.expires_at, confirm=confirm, resend=resend
                )
        raise ApiError(409, "conflict", "code: another request changed it; try again")

    async def confirm(
        self,
        complaint_id: str,
        code: str,
        tracking_token: str | None,
        resident_token: str | None,
    ) -> Confirmed:
        for _ in range(CAS_TRIES):
            record = await self._held_by(complaint_id, tracking_token, resident_token)
            verdict, after = self.rules.check(record, code, self.clock())
            if after != record and not await self.store.update(after):
                continue  # another attempt came first: judge this one against it
            self.checks.labels(verdict.value).inc()
            if verdict in (Verdict.CONFIRMED, Verdict.ALREADY):
                await self.remember(
                    after.phone,
                    [
                        after.resident_token_hash,
                        hash_token(resident_token)
                        if resident_token and await self._owned(after, resident_token)
                        else None,
                    ],
                )
                # published again on a repeat, so a publish lost to a crash is made up for
                await self.publish(
                    topics.CONTACT_CODES,
                    confirmed_event(complaint_id, after.confirmed_at or self.clock()),
                    correlation_id=None,
                )
                with bound(complaint_id=complaint_id):
                    log.info("contact confirmed", extra={"verdict": verdict.value})
                return Confirmed(complaint_id=complaint_id)
            raise _refusal(verdict, self.rules.attempts_left(after))
        raise ApiError(409, "conflict", "code: another attempt was checked at once; try again")

    async def _held_by(
        self, complaint_id: str, tracking_token: str | None, resident_token: str | None
    ) -> CodeRecord:
        record = await self.store.get(complaint_id)
        if record is None or not (
            record.holds(tracking_token, resident_token)
            or (resident_token and await self._owned(record, resident_token))
        ):
            raise ApiError(
                404,
                "not_found",
                "no contact waiting for a code on this complaint for this token",
            )
        return record

    async def _owned(self, record: CodeRecord, resident_token: str) -> bool:
        """The filer's token, or one bound to the complaint by recovery since."""
        if token_matches(resident_token, record.resident_token_hash):
            return True
        return self.owns is not None and await self.owns(record.complaint_id, resident_token)

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
            ),
            correlation_id=None,
        )


def confirmed_event(complaint_id: str, at: datetime) -> ContactConfirmed:
    """The same complaint's confirmation always has the same id: a repeat is a duplicate."""
    return ContactConfirmed(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sotong:contact-confirmed:{complaint_id}")),
        complaint_id=complaint_id,
        occurred_at=at,
    )


def _refusal(verdict: Verdict, left: int) -> ApiError:
    if verdict is Verdict.WRONG:
        return ApiError(
            422, "wrong_code", f"code: not the code sent; {left} attempt(s) left for this code"
        )
    if verdict is Verdict.EXPIRED:
        return ApiError(422, "code_expired", "code: this code has expired; ask for a new one")
    return ApiError(429, "too_many_attempts", "code: too many wrong attempts; ask for a new code")


# -- HTTP ---------------------------------------------------------------------------------

TrackingToken = Annotated[
    str | None,
    Header(alias="X-Tracking-Token", description="The complaint's tracking token from filing."),
]
ResidentToken = Annotated[
    str | None,
    Header(alias="X-Resident-Token", description="The resident token given at filing."),
]


def contact_routes(contacts: Contacts) -> APIRouter:
    router = APIRouter(tags=["residents"])

    @router.post(
        "/v1/complaints/{complaint_id}/contact/confirm",
        response_model=Confirmed,
        responses=refusals(
            404,
            409,
            422,
            429,
            described={
                404: "No code waits for this complaint and token.",
                422: "The code is wrong (`wrong_code`) or expired (`code_expired`).",
                429: "Too many wrong attempts: ask for a new code.",
            },
        ),
    )
    async def confirm_contact(
        complaint_id: Annotated[ComplaintId, Path(description="The complaint's id from filing.")],
        request: Annotated[ConfirmRequest, Body()],
        x_tracking_token: TrackingToken = None,
        x_resident_token: ResidentToken = None,
    ) -> Confirmed:
        """Confirm the phone a web filing gave with the code sent to it (인증번호): the
        messages held for it go out. Confirming again answers the same."""
        return await contacts.confirm(
            str(complaint_id), request.code, x_tracking_token, x_resident_token
        )

    @router.post(
        "/v1/complaints/{complaint_id}/contact/code",
        response_model=CodeSent,
        status_code=202,
        responses=refusals(
            404,
            409,
            429,
            described={
                404: "No code waits for this complaint and token.",
                409: "The contact is confirmed already.",
                429: "New codes asked for too often: `Retry-After` says when.",
            },
        ),
    )
    async def resend_code(
        complaint_id: Annotated[ComplaintId, Path(description="The complaint's id from filing.")],
        x_tracking_token: TrackingToken = None,
        x_resident_token: ResidentToken = None,
    ) -> CodeSent:
        """Send a new code to the phone on file (the old one stops working)."""
        return await contacts.resend(str(complaint_id), x_tracking_token, x_resident_token)

    return router


__all__ = [
    "CODES",
    "CONFIRMED_PHONES",
    "CodeRecord",
    "CodeRules",
    "ConfirmedPhones",
    "ContactCodeStore",
    "Contacts",
    "MongoConfirmedPhones",
    "MongoContactCodes",
    "Verdict",
    "confirmed_phone_key",
    "contact_routes",
    "needs_code",
]
