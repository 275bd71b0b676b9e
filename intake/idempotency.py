"""``Idempotency-Key`` (IETF httpapi draft "The Idempotency-Key HTTP Header Field"): a
request retried with the same key and body answers what the first answered and does
nothing twice.

A key is remembered per client: a department's or channel's credential (``X-Api-Key``),
or, for an anonymous filer, the key alone. The first request claims the key (``pending``);
its 2xx answer is then kept beside the claim until the key expires (a TTL index). While
the claim is pending another request with the key gets 409; the same key with another
body gets 422; a failed answer (4xx, 5xx) frees the key, so a corrected retry can use it.

A filing's answer holds the resident's tokens, and intake keeps no token readable: the
answer is kept sealed with a pad derived from the key itself (HMAC-SHA256 in counter
mode, with a tag), so only a client presenting the key can read it back; the store holds
a hash of the key, never the key.

A claim whose request died with its process (still pending after the lease) may be taken
over by a retry: the handlers derive the filing's submission id and a command's id from
the key, so the retry finds what the first attempt did instead of doing it again.

Claims and answers of concurrent requests are group-committed (``services.batching``) as
filings are: one insert and one bulk write per batch.
"""

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.events import FieldError
from services.batching import GroupCommit
from services.http import error_body
from services.keys import ApiKeys
from services.mongo import Document
from services.runtime import Clock

HEADER = "Idempotency-Key"
COLLECTION = "intake_idempotency"
DUPLICATE_KEY = 11000
MAX_KEY_LENGTH = 255
_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
STATE_KEY = "idempotency_key_id"
"""Where the middleware leaves the key's id for the route (``request.state``)."""


# Pure rules


def key_id(scope: str, key: str) -> str:
    """What is stored for a key: its hash within the client's scope."""
    return hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()


def derived_id(claim: str, purpose: str) -> str:
    """A UUID (version 4 layout) the same for every retry of one claimed request: the
    filing's submission id or the command's id."""
    digest = hashlib.sha256(f"{purpose}\0{claim}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request's fingerprint: the same JSON in another key order or spacing is the
    same request; a body that is not JSON counts byte for byte."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        ).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    head = f"{method} {path}\0".encode()
    return hashlib.sha256(head + canonical).hexdigest()


def _pad_key(key: str, scope: str, print_: str) -> bytes:
    return hmac.new(key.encode(), f"{scope}\0{print_}".encode(), hashlib.sha256).digest()


def _keystream(pad_key: bytes, length: int) -> bytes:
    blocks = (length + 31) // 32
    return b"".join(
        hmac.new(pad_key, i.to_bytes(8, "big"), hashlib.sha256).digest() for i in range(blocks)
    )[:length]


def seal(body: bytes, *, key: str, scope: str, print_: str) -> bytes:
    """``body`` XOR a keystream only the key's holder can compute, then a 32-byte tag."""
    pad_key = _pad_key(key, scope, print_)
    sealed = bytes(a ^ b for a, b in zip(body, _keystream(pad_key, len(body)), strict=True))
    tag = hmac.new(pad_key, b"tag\0" + sealed, hashlib.sha256).digest()
    return sealed + tag


class CannotUnseal(ValueError):
    """The kept answer was not sealed with this key (or was damaged)."""


def unseal(data: bytes, *, key: str, scope: str, print_: str) -> bytes:
    pad_key = _pad_key(key, scope, print_)
    sealed, tag = data[:-32], data[-32:]
    expected = hmac.new(pad_key, b"tag\0" + sealed, hashlib.sha256).digest()
    if len(data) < 32 or not hmac.compare_digest(tag, expected):
        raise CannotUnseal("the kept answer does not open with this key")
    return bytes(a ^ b for a, b in zip(sealed, _keystream(pad_key, len(sealed)), strict=True))


# Storage


@dataclass(frozen=True)
class Claim:
    key_id: str
    fingerprint: str
    at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Kept:
    """What is remembered for a key: the claim, and the answer once there is one."""

    key_id: str
    fingerprint: str
    started_at: datetime
    expires_at: datetime
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    sealed: bytes | None = None


@dataclass(frozen=True)
class Answer:
    key_id: str
    status: int
    headers: tuple[tuple[str, str], ...]
    sealed: bytes


class IdempotencyStore(Protocol):
    async def ensure_indexes(self) -> None: ...

    async def claim_many(self, claims: Sequence[Claim]) -> list[bool]:
        """Insert each claim unless its key is kept already; per claim, whether it was new."""
        ...

    async def find_many(self, key_ids: Collection[str]) -> dict[str, Kept]: ...

    async def take_over(self, key_id: str, *, started_before: datetime, at: datetime) -> bool:
        """Claim a pending key again when its claim is older than ``started_before``."""
        ...

    async def forget_expired(self, key_id: str, *, now: datetime) -> bool:
        """Delete a key past its expiry (the TTL monitor runs once a minute)."""
        ...

    async def answer_many(self, answers: Sequence[Answer]) -> None: ...

    async def release(self, key_id: str) -> None:
        """Forget a pending claim whose request failed."""
        ...


class MongoIdempotencyStore:
    """One document per key: ``_id`` is the key's hash within its client's scope.

    Every filter names fields one index covers entirely (SecantusDB plans an index only
    then): ``_id``; ``_id`` + ``state`` + ``started_at``; ``_id`` + ``expires_at``.
    """

    def __init__(self, db: AsyncDatabase[Document], ttl: timedelta) -> None:
        self.col: AsyncCollection[Document] = db[COLLECTION]
        self.ttl = ttl

    async def ensure_indexes(self) -> None:
        await self.col.create_indexes(
            [
                IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry"),
                IndexModel(
                    [("_id", ASCENDING), ("state", ASCENDING), ("started_at", ASCENDING)],
                    name="takeover",
                ),
                IndexModel([("_id", ASCENDING), ("expires_at", ASCENDING)], name="expired"),
            ]
        )

    async def claim_many(self, claims: Sequence[Claim]) -> list[bool]:
        if not claims:
            return []
        docs = [
            {
                "_id": c.key_id,
                "fingerprint": c.fingerprint,
                "state": "pending",
                "started_at": c.at,
                "expires_at": c.expires_at,
            }
            for c in claims
        ]
        inserted = [True] * len(claims)
        try:
            await self.col.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != DUPLICATE_KEY:
                    raise
                inserted[error["index"]] = False
        return inserted

    async def find_many(self, key_ids: Collection[str]) -> dict[str, Kept]:
        if not key_ids:
            return {}
        found: dict[str, Kept] = {}
        async for doc in self.col.find({"_id": {"$in": list(key_ids)}}):
            sealed = doc.get("sealed")
            found[str(doc["_id"])] = Kept(
                key_id=str(doc["_id"]),
                fingerprint=str(doc["fingerprint"]),
                started_at=doc["started_at"],
                expires_at=doc["expires_at"],
                status=doc.get("status"),
                headers=tuple((str(k), str(v)) for k, v in doc.get("headers", [])),
                sealed=bytes(sealed) if sealed is not None else None,
            )
        return found

    async def take_over(self, key_id: str, *, started_before: datetime, at: datetime) -> bool:
        result = await self.col.update_one(
            {"_id": key_id, "state": "pending", "started_at": {"$lt": started_before}},
            {"$set": {"started_at": at}},
        )
        return result.modified_count == 1

    async def forget_expired(self, key_id: str, *, now: datetime) -> bool:
        result = await self.col.delete_one({"_id": key_id, "expires_at": {"$lte": now}})
        return result.deleted_count == 1

    async def answer_many(self, answers: Sequence[Answer]) -> None:
        if not answers:
            return
        await self.col.bulk_write(
            [
                UpdateOne(
                    {"_id": a.key_id},
                    {
                        "$set": {
                            "state": "done",
                            "status": a.status,
                            "headers": [list(h) for h in a.headers],
                            "sealed": a.sealed,
                        }
                    },
                )
                for a in answers
            ],
            ordered=False,
        )

    async def release(self, key_id: str) -> None:
        await self.col.delete_one({"_id": key_id})


# The decision


class Outcome(Enum):
    CLAIMED = "claimed"
    IN_FLIGHT = "in_flight"
    MISMATCH = "mismatch"
    REPLAY = "replay"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    kept: Kept | None = None
    claim_id: str | None = None
    """For a claim: what the route derives its ids from. The same for a take-over of the
    claim (a retry after a crash finds what the first attempt did), new once the key has
    expired and is used again."""


def claim_id(key_id_: str, expires_at: datetime) -> str:
    millis = (_aware(expires_at) - _EPOCH) // timedelta(milliseconds=1)  # what BSON keeps
    return f"{key_id_}:{millis}"


class Idempotency:
    """Claims and answers keys for the middleware, group-committed across requests."""

    def __init__(
        self, store: IdempotencyStore, *, clock: Clock, ttl: timedelta, lease: timedelta
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.lease = lease
        self._claims: GroupCommit[Claim, Decision] = GroupCommit(self._claim_batch)
        self._answers: GroupCommit[Answer, None] = GroupCommit(self._answer_batch)

    async def claim(self, key_id_: str, print_: str, *, again: bool = True) -> Decision:
        now = self.clock()
        claim = Claim(key_id_, print_, now, now + self.ttl)
        decision = await self._claims.submit(claim)
        kept = decision.kept
        if decision.outcome is Outcome.CLAIMED:
            return Decision(Outcome.CLAIMED, claim_id=claim_id(key_id_, claim.expires_at))
        if kept is None:
            return decision
        if again and _aware(kept.expires_at) <= now:  # expired, not yet swept by the TTL
            await self.store.forget_expired(key_id_, now=now)
            return await self.claim(key_id_, print_, again=False)
        if decision.outcome is Outcome.IN_FLIGHT and await self.store.take_over(
            key_id_, started_before=now - self.lease, at=now
        ):
            return Decision(Outcome.CLAIMED, kept, claim_id(key_id_, kept.expires_at))
        return decision

    async def _claim_batch(self, claims: Sequence[Claim]) -> list[Decision | Exception]:
        firsts: dict[str, Claim] = {}
        for claim in claims:
            firsts.setdefault(claim.key_id, claim)
        unique = list(firsts.values())
        inserted = dict(zip(firsts, await self.store.claim_many(unique), strict=True))
        taken = [kid for kid, new in inserted.items() if not new]
        kept = await self.store.find_many(taken) if taken else {}
        decisions: list[Decision | Exception] = []
        for claim in claims:
            first = firsts[claim.key_id]
            if not inserted[claim.key_id]:
                decisions.append(self._against(claim, kept.get(claim.key_id)))
            elif first is claim:
                decisions.append(Decision(Outcome.CLAIMED))
            elif first.fingerprint != claim.fingerprint:  # the same key twice in one batch
                decisions.append(Decision(Outcome.MISMATCH))
            else:
                decisions.append(Decision(Outcome.IN_FLIGHT))
        return decisions

    @staticmethod
    def _against(claim: Claim, kept: Kept | None) -> Decision:
        if kept is None:  # claimed, then released before we looked: in flight a moment ago
            return Decision(Outcome.IN_FLIGHT)
        if kept.fingerprint != claim.fingerprint:
            return Decision(Outcome.MISMATCH, kept)
        if kept.sealed is not None and kept.status is not None:
            return Decision(Outcome.REPLAY, kept)
        return Decision(Outcome.IN_FLIGHT, kept)

    async def answer(self, answer: Answer) -> None:
        await self._answers.submit(answer)

    async def _answer_batch(self, answers: Sequence[Answer]) -> list[Exception | None]:
        await self.store.answer_many(answers)
        return [None] * len(answers)

    async def release(self, key_id_: str) -> None:
        await self.store.release(key_id_)


# The middleware

UNKEPT_HEADERS = frozenset({"content-length", "date", "server"})
"""Headers of the first answer not replayed: the rest (type, caching, referrer policy) are."""
PRIVATE = (
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)
"""What the kit puts on every answer (``services.http.PrivateByDefault``), on the
middleware's own answers too, which it answers outside the kit's middleware."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(at: datetime) -> datetime:
    """MongoDB gives datetimes back naive (UTC) unless the client asks otherwise."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _problem(status: int, code: str, reason: str) -> tuple[int, bytes]:
    body = error_body(code, f"{HEADER}: {reason}", [FieldError(field=HEADER, reason=reason)])
    return status, json.dumps(body, ensure_ascii=False).encode()


class IdempotentRequests:
    """ASGI middleware for the POST routes whose path matches ``paths``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        idempotency: Idempotency,
        paths: re.Pattern[str],
        departments: ApiKeys,
        channels: ApiKeys,
        max_body: int,
    ) -> None:
        self.app = app
        self.idempotency = idempotency
        self.paths = paths
        self.departments = departments
        self.channels = channels
        self.max_body = max_body

    def client_scope(self, api_key: str | None) -> str:
        """Whose keys these are: a department, a channel, anyone (no credential), or a
        credential nobody holds (its own scope, so it never meets another's answers)."""
        if not api_key:
            return "anonymous"
        if (department := self.departments.department(api_key)) is not None:
            return f"department:{department}"
        if (channel := self.channels.department(api_key)) is not None:
            return f"channel:{channel}"
        return "unknown:" + hashlib.sha256(api_key.encode()).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not self.paths.fullmatch(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers") or ()}
        raw_key = headers.get(HEADER.lower())
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not _KEY.fullmatch(key):
            reason = f"1 to {MAX_KEY_LENGTH} printable ASCII characters"
            await _send(send, *_problem(422, "invalid_request", reason))
            return
        body, more, replay_receive = await _read_body(receive, self.max_body)
        if more:  # larger than any route takes: the body limit inside answers it
            await self.app(scope, replay_receive, send)
            return
        api_key = headers.get("x-api-key")
        client = self.client_scope(api_key.decode("latin-1") if api_key is not None else None)
        kid = key_id(client, key)
        print_ = fingerprint(scope["method"], scope["path"], body)
        decision = await self.idempotency.claim(kid, print_)
        if decision.outcome is Outcome.MISMATCH:
            reason = "already used with another request body"
            await _send(send, *_problem(422, "idempotency_key_reused", reason))
            return
        if decision.outcome is Outcome.IN_FLIGHT:
            status, problem = _problem(409, "conflict", "a request with this key is in flight")
            await _send(send, status, problem, [(b"retry-after", b"1")])
            return
        if decision.outcome is Outcome.REPLAY:
            await self._replay(send, decision.kept, key=key, client=client, print_=print_)
            return
        scope.setdefault("state", {})[STATE_KEY] = decision.claim_id
        await self._first(scope, replay_receive, send, kid, key=key, client=client, print_=print_)

    async def _first(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        kid: str,
        *,
        key: str,
        client: str,
        print_: str,
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                assert start is not None
                status = int(start["status"])
                body = b"".join(chunks)
                if 200 <= status < 300:
                    kept = tuple(
                        (k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in start.get("headers", [])
                        if k.decode("latin-1").lower() not in UNKEPT_HEADERS
                    )
                    sealed = seal(body, key=key, scope=client, print_=print_)
                    await self.idempotency.answer(Answer(kid, status, kept, sealed))
                else:
                    await self.idempotency.release(kid)
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await self.idempotency.release(kid)
            raise

    async def _replay(
        self, send: Send, kept: Kept | None, *, key: str, client: str, print_: str
    ) -> None:
        assert kept is not None
        assert kept.sealed is not None
        assert kept.status is not None
        try:
            body = unseal(kept.sealed, key=key, scope=client, print_=print_)
        except CannotUnseal:
            await _send(send, *_problem(409, "conflict", "the kept answer cannot be read"))
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in kept.headers]
        await _send(send, kept.status, body, [*headers, (b"idempotent-replayed", b"true")])


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool, Receive]:
    """Read the body up to ``limit`` bytes; the receive returned hands it on unchanged."""
    chunks: list[bytes] = []
    size = 0
    more = True
    pending: list[Message] = []
    while more:
        message = await receive()
        pending.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if size > limit:
            break
    body = b"".join(chunks)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return body, size > limit, replayed


async def _send(
    send: Send, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    names = {k.lower() for k, _ in extra}
    if b"content-type" not in names:
        headers.append((b"content-type", b"application/json"))
    headers.extend(extra)
    headers.extend((k, v) for k, v in PRIVATE if k not in names)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
