"""In-memory doubles for the portal's collaborators: intake's and tracker's HTTP APIs as
the portal sees them (``portal.clients``), its store, and a chatbot with the interface
``portal.chatbot`` will have.

The intake double files and deduplicates as intake does (same ``(channel, channel_ref)``
→ the same complaint, ``duplicate=True``), refuses a resident token it never issued and
a resident action with the wrong tracking token; the tracker double answers only to the
resident token a complaint was filed with, and streams the sequences it is told about.
"""

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from portal.clients import (
    Complaint,
    Department,
    Filed,
    Handler,
    Recovered,
    Refused,
    Similar,
    Step,
    Summary,
    Uploaded,
)
from portal.sealing import seal, unseal
from portal.store import COMPLAINT_ID, Favourite, Followed, Signal

T0 = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)


@dataclass
class FakeIntake:
    filings: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    by_ref: dict[tuple[str, str], Filed] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # complaint id → tracking token
    residents: set[str] = field(default_factory=set)
    counter: int = 0
    on_file: Any = None  # called with (body, Filed) after each new filing
    photos: dict[str, bytes] = field(default_factory=dict)  # uploaded to intake
    codes: dict[str, str] = field(default_factory=dict)
    """complaint id → the code sent, for web filings with a phone to tell (as intake)."""
    confirmed: set[str] = field(default_factory=set)
    resent: list[str] = field(default_factory=list)
    recovery_codes: dict[str, str] = field(default_factory=dict)
    """receipt number → the recovery code sent to its phone (as intake, only with a phone)."""
    recovery_asks: list[str] = field(default_factory=list)
    on_recover: Any = None  # called with (resident token, complaint ids) on a right code
    bound: dict[str, set[str]] = field(default_factory=dict)
    """complaint id → resident tokens recovery bound to it (accepted as the tracking token)."""

    async def file(self, body: dict[str, Any]) -> Filed | Refused:
        if not str(body.get("body", "")).strip():
            return Refused(422, "body: Field required", (("body", "Field required"),))
        key = (body["channel"], body.get("channel_ref") or str(uuid.uuid4()))
        if key in self.by_ref:
            return replace(self.by_ref[key], duplicate=True)
        resident = body.get("resident_token")
        if resident is not None and resident not in self.residents:
            return Refused(422, "resident_token: not issued by an earlier filing")
        resident = resident or secrets.token_urlsafe(24)
        self.residents.add(resident)
        self.counter += 1
        filed = Filed(
            complaint_id=str(uuid.uuid4()),
            receipt_number=f"261202-{self.counter:06d}",
            tracking_token=secrets.token_urlsafe(24),
            resident_token=resident,
            duplicate=False,
            contact_pending=_needs_code(body),
        )
        if filed.contact_pending:
            self.codes[filed.complaint_id] = f"{secrets.randbelow(1_000_000):06d}"
        self.by_ref[key] = filed
        self.tokens[filed.complaint_id] = filed.tracking_token
        self.filings.append(body)
        if self.on_file is not None:
            self.on_file(body, filed)
        return filed

    async def upload_photo(self, data: bytes, filename: str, media_type: str) -> Uploaded | Refused:
        """As intake judges a photo: by its bytes (JPEG or PNG here), whatever its name."""
        if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
            return Refused(422, "file: not a JPEG, PNG or HEIC image (judged by its content)")
        photo_id = secrets.token_urlsafe(16)
        self.photos[photo_id] = data
        return Uploaded(photo_id)

    async def photo(
        self, photo_id: str, *, token: str, thumbnail: bool
    ) -> tuple[bytes, str] | None:
        """As intake: only to a tracking token of a complaint whose action attached it."""
        owners = {a["complaint_id"] for a in self.actions if photo_id in (a.get("photos") or ())}
        if photo_id not in self.photos or not any(self.tokens.get(c) == token for c in owners):
            return None
        return self.photos[photo_id], "image/png"

    async def resident_action(
        self,
        complaint_id: str,
        *,
        action: str,
        token: str,
        note: str | None,
        fields: Mapping[str, object] | None = None,
    ) -> Refused | None:
        if self.tokens.get(complaint_id) != token and token not in self.bound.get(complaint_id, ()):
            return Refused(404, "no such complaint")
        for photo_id in (fields or {}).get("photos") or ():  # type: ignore[attr-defined]
            if photo_id not in self.photos:  # as intake: only an upload it kept
                return Refused(422, f"photos: no photo {photo_id} was uploaded")
        self.actions.append(
            {"complaint_id": complaint_id, "action": action, "token": token, "note": note}
            | dict(fields or {})
        )
        return None

    async def confirm_contact(self, complaint_id: str, *, token: str, code: str) -> Refused | None:
        if self.tokens.get(complaint_id) != token:
            return Refused(404, "no contact waiting", code="not_found")
        if code != self.codes.get(complaint_id):
            return Refused(422, "code: not the code sent", code="wrong_code")
        self.confirmed.add(complaint_id)
        return None

    async def resend_code(self, complaint_id: str, *, token: str) -> Refused | None:
        if self.tokens.get(complaint_id) != token:
            return Refused(404, "no contact waiting", code="not_found")
        self.resent.append(complaint_id)
        return None

    async def start_recovery(self, receipt_number: str) -> Refused | None:
        self.recovery_asks.append(receipt_number)
        if len(self.recovery_asks) > 5:
            return Refused(429, "client: too many recovery requests", code="rate_limited")
        filed = self._by_receipt(receipt_number)
        if filed is not None and filed[1].get("resident", {}).get("phone"):
            self.recovery_codes[receipt_number] = f"{secrets.randbelow(1_000_000):06d}"
        return None

    async def confirm_recovery(
        self, receipt_number: str, *, code: str, resident_token: str | None
    ) -> Recovered | Refused:
        if resident_token is not None and resident_token not in self.residents:
            return Refused(422, "resident_token: not a resident token intake issued")
        found = self._by_receipt(receipt_number)
        if found is None or self.recovery_codes.pop(receipt_number, None) != code:
            return Refused(422, "code: not accepted for this receipt number", code="wrong_code")
        token = resident_token or secrets.token_urlsafe(24)
        self.residents.add(token)
        target = found[0]
        mine = [f for f in self.by_ref.values() if f.resident_token == target.resident_token]
        for f in mine:
            self.bound.setdefault(f.complaint_id, set()).add(token)
        if self.on_recover is not None:
            self.on_recover(token, [f.complaint_id for f in mine])
        return Recovered(
            resident_token=None if resident_token else token,
            complaints=tuple((f.complaint_id, f.receipt_number) for f in mine),
        )

    def _by_receipt(self, receipt_number: str) -> tuple[Filed, dict[str, Any]] | None:
        bodies = dict(
            zip((f.complaint_id for f in self.by_ref.values()), self.filings, strict=False)
        )
        for filed in self.by_ref.values():
            if filed.receipt_number == receipt_number:
                return filed, bodies.get(filed.complaint_id, {})
        return None


CODE_CHANNELS = ("web", "chatbot", "kakao")
"""intake's default SOTONG_INTAKE_CONTACT_CODE_CHANNELS."""


def _needs_code(body: dict[str, Any]) -> bool:
    resident = body.get("resident") or {}
    return (
        body.get("channel") in CODE_CHANNELS
        and bool(resident.get("phone"))
        and resident.get("notification_consent", True) is not False
    )


@dataclass
class FakeTracker:
    complaints: dict[str, tuple[str, Complaint]] = field(default_factory=dict)
    streams: dict[str, asyncio.Queue[int]] = field(default_factory=dict)
    offers: dict[tuple[str, str], list[Similar]] = field(default_factory=dict)
    """'이미 접수된 민원이 있어요' answers, by (행정동, department)."""
    lookups: list[tuple[str, str]] = field(default_factory=list)
    bound: dict[str, set[str]] = field(default_factory=dict)
    """complaint id → resident tokens bound to it by recovery (as ResidentBound does)."""

    def bind(self, resident_token: str, complaint_ids: list[str]) -> None:
        for complaint_id in complaint_ids:
            self.bound.setdefault(complaint_id, set()).add(resident_token)

    def _owns(self, complaint_id: str, resident_token: str) -> bool:
        held = self.complaints.get(complaint_id)
        return held is not None and (
            held[0] == resident_token or resident_token in self.bound.get(complaint_id, set())
        )

    async def similar(self, *, dong: str, text: str, department: str) -> list[Similar]:
        self.lookups.append((dong, department))
        return list(self.offers.get((dong, department), []))

    def store(self, resident_token: str, complaint: Complaint) -> None:
        self.complaints[complaint.complaint_id] = (resident_token, complaint)
        queue = self.streams.get(complaint.complaint_id)
        if queue is not None and complaint.timeline:
            queue.put_nowait(complaint.timeline[-1].sequence)

    def received(self, filed: Filed, title: str | None = None) -> Complaint:
        complaint = Complaint(
            complaint_id=filed.complaint_id,
            receipt_number=filed.receipt_number,
            state="received",
            filed_at=T0,
            title=title,
            timeline=[step(1, "received", "receive")],
        )
        self.store(filed.resident_token, complaint)
        return complaint

    def advance(self, complaint_id: str, new_step: Step, **changes: Any) -> Complaint:
        resident, complaint = self.complaints[complaint_id]
        updated = complaint.model_copy(
            update={"state": new_step.state, "timeline": [*complaint.timeline, new_step], **changes}
        )
        self.store(resident, updated)
        return updated

    async def complaint(self, complaint_id: str, *, resident_token: str) -> Complaint | None:
        held = self.complaints.get(complaint_id)
        return held[1] if held and self._owns(complaint_id, resident_token) else None

    async def my_complaints(self, resident_token: str, *, limit: int = 50) -> list[Summary]:
        own = [c for cid, (_, c) in self.complaints.items() if self._owns(cid, resident_token)]
        return [
            Summary.model_validate(c.model_dump(), from_attributes=False)
            for c in sorted(own, key=lambda c: c.filed_at, reverse=True)[:limit]
        ]

    async def changes(self, complaint_id: str, *, resident_token: str) -> AsyncIterator[int]:
        if await self.complaint(complaint_id, resident_token=resident_token) is None:
            return
        queue = self.streams.setdefault(complaint_id, asyncio.Queue())
        while True:
            yield await queue.get()


def step(
    sequence: int,
    state: str,
    trigger: str,
    *,
    department: str | None = None,
    department_name: str | None = None,
    handler: Handler | None = None,
    note: str | None = None,
    from_state: str | None = None,
    actor: str = "routing",
) -> Step:
    return Step(
        sequence=sequence,
        state=state,
        from_state=from_state,
        trigger=trigger,
        occurred_at=T0 + timedelta(minutes=sequence),
        department=department,
        department_name=department_name,
        handler=handler,
        note=note,
        actor=actor,
    )


WASTE = Department(code="resource-circulation", name="자원순환과")
LEE = Handler(name="이지우", office_phone="032-560-5001")


@dataclass
class FakePortalStore:
    """The same semantics as ``MongoPortalStore`` (tests/contract/test_portal_store.py)."""

    residents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _doc(self, resident_token: str) -> dict[str, Any]:
        from schemas.tokens import hash_token

        return self.residents.setdefault(
            hash_token(resident_token), {"complaints": {}, "favourites": [], "signals": []}
        )

    async def ensure_indexes(self) -> None:
        return None

    async def follow(
        self, resident_token: str, complaint_id: str, tracking_token: str, receipt_number: str
    ) -> None:
        if not COMPLAINT_ID.match(complaint_id):
            raise ValueError("complaint id must be a UUID")
        sealed = seal(tracking_token, resident_token=resident_token, complaint_id=complaint_id)
        self._doc(resident_token)["complaints"][complaint_id] = {"t": sealed, "r": receipt_number}

    async def followed(self, resident_token: str) -> list[Followed]:
        return [Followed(cid, e["r"]) for cid, e in self._doc(resident_token)["complaints"].items()]

    async def tracking_token(self, resident_token: str, complaint_id: str) -> str | None:
        entry = self._doc(resident_token)["complaints"].get(complaint_id)
        if entry is None:
            return None
        return unseal(entry["t"], resident_token=resident_token, complaint_id=complaint_id)

    async def favourites(self, resident_token: str) -> list[Favourite]:
        return list(self._doc(resident_token)["favourites"])

    async def add_favourite(self, resident_token: str, favourite: Favourite) -> None:
        favourites = self._doc(resident_token)["favourites"]
        if all(f.path != favourite.path for f in favourites):
            favourites.append(favourite)
            del favourites[:-30]

    async def remove_favourite(self, resident_token: str, path: str) -> None:
        doc = self._doc(resident_token)
        doc["favourites"] = [f for f in doc["favourites"] if f.path != path]

    async def record_signals(self, resident_token: str, rules: list[str], at: datetime) -> None:
        signals = self._doc(resident_token)["signals"]
        signals.extend(Signal(rule, at) for rule in rules)
        del signals[:-50]

    async def signals(self, resident_token: str) -> list[Signal]:
        return list(self._doc(resident_token)["signals"])


@dataclass(frozen=True)
class Reply:
    """The shape of ``portal.chatbot.Reply``."""

    kind: Literal["answer", "unknown", "handoff"]
    text: str
    links: tuple[tuple[str, str], ...] = ()
    department: str | None = None
    department_name: str | None = None
    suggestions: tuple[str, ...] = ()


@dataclass
class FakeChatbot:
    """Answers from a small table by keyword; a complaint-like text is handed off; the
    rest it does not know. Records what it was asked."""

    answers: dict[str, Reply] = field(default_factory=dict)
    complaint_words: tuple[str, ...] = ("쌓여", "고장", "시끄러")
    asked: list[str] = field(default_factory=list)

    async def reply(self, text: str) -> Reply:
        self.asked.append(text)
        for word, reply in self.answers.items():
            if word in text:
                return reply
        if any(word in text for word in self.complaint_words):
            return Reply(
                "handoff",
                "민원으로 접수해 드릴까요?",
                department="resource-circulation",
                department_name="자원순환과",
            )
        return Reply("unknown", "잘 모르겠어요. 민원으로 남기시면 담당 부서가 답해 드려요.")


BULKY = Reply(
    "answer",
    "(시험용 답변) 대형폐기물 배출 신고 안내입니다.",
    links=(("대형폐기물 배출 신고", "/chat?q=대형폐기물"),),
    department="resource-circulation",
    department_name="자원순환과",
    suggestions=("대형폐기물 수수료는 얼마예요?",),
)
