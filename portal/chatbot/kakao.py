"""A KakaoTalk channel for the bot: a skill server for Kakao i Open Builder.

Open Builder POSTs a skill payload (``userRequest.utterance``, ``userRequest.user.id``)
and shows the answer if it arrives within 5 seconds: ``{"version": "2.0", "template":
{"outputs": [{"simpleText": {"text": ...}}], "quickReplies": [...]}}``, the text at most
1,000 characters. The conversation lives here, per Kakao user, in a bounded store whose
entries expire; the user id is kept only as a keyed hash (HMAC-SHA256 with a secret that
never leaves the process), so a leaked store names nobody.

A filing is offered, never made unasked: the bot's handoff (or a "don't know" the
resident turns into a complaint) becomes a pending offer, and only the confirming quick
reply files it through intake with channel ``kakao`` and the conversation as transcript.

A phone the resident types while an offer is pending is filed with it, to be told at.
Nothing proves it is theirs (the skill payload carries no verified number: Kakao gives a
KakaoTalk-verified phone only to Kakao Login apps, with the user's consent), so intake
sends it a one-time code; while one is pending for this Kakao user, a six-digit reply is
that code, confirmed through intake's ``POST /v1/complaints/{id}/contact/confirm``. The
phone and the code never enter the transcript (masked there).

Open Builder calls from Kakao's servers, so the client address says nothing: messages
are limited per Kakao user (by the keyed hash) and in total (``KakaoLimits``), and the
refusal is still a skill answer (Kakao shows nothing for an HTTP error).
"""

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from portal.chatbot.bot import Chatbot, Reply
from portal.chatbot.handoff import (
    CodeOutcome,
    ContactCodes,
    FileComplaint,
    Filing,
    FilingFailed,
    Turn,
)
from portal.chatbot.texts import KakaoTexts
from schemas.common import PHONE_PATTERN
from schemas.pii import mask_text
from services.ratelimit import Limits

log = logging.getLogger("sotong.portal.kakao")

MAX_TEXT = 1000
MAX_QUICK_REPLIES = 10
MAX_LABEL = 14
MAX_UTTERANCE = 1000


class KakaoUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200, description="The bot user key.")


class KakaoUserRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    utterance: str = Field(max_length=MAX_UTTERANCE, description="What the user sent.")
    user: KakaoUser


class SkillPayload(BaseModel):
    """What Open Builder sends; only the fields the skill reads are declared."""

    model_config = ConfigDict(extra="ignore")

    userRequest: KakaoUserRequest


class QuickReply(BaseModel):
    label: str = Field(max_length=MAX_LABEL)
    action: str = "message"
    messageText: str


class SimpleText(BaseModel):
    text: str = Field(max_length=MAX_TEXT)


class Output(BaseModel):
    simpleText: SimpleText


class Template(BaseModel):
    outputs: list[Output]
    quickReplies: list[QuickReply] = Field(default_factory=list, max_length=MAX_QUICK_REPLIES)


class SkillResponse(BaseModel):
    version: str = "2.0"
    template: Template


def fit(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def skill_response(text: str, quick: Sequence[tuple[str, str]] = ()) -> SkillResponse:
    return SkillResponse(
        template=Template(
            outputs=[Output(simpleText=SimpleText(text=fit(text)))],
            quickReplies=[
                QuickReply(label=fit(label, MAX_LABEL), messageText=message)
                for label, message in quick[:MAX_QUICK_REPLIES]
            ],
        )
    )


CODE = re.compile(r"[0-9]{6}")
KAKAO_USER = "kakao_user"
KAKAO_TOTAL = "kakao_total"


@dataclass(frozen=True)
class Offer:
    id: str
    text: str
    department: str | None
    service_code: str | None
    phone: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PendingCode:
    """A filed complaint whose phone waits for its code: what confirming it needs."""

    complaint_id: str
    tracking_token: str = field(repr=False)


@dataclass
class Session:
    touched: float
    turns: deque[Turn] = field(default_factory=lambda: deque(maxlen=20))
    offer: Offer | None = None
    filed: bool = False
    pending: PendingCode | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class KakaoLimits:
    """Messages per Kakao user (keyed by the user's keyed hash) and for the skill as a
    whole (one key): Open Builder calls from Kakao's own servers, so an address would put
    every resident in one bucket. ``refused`` counts a refusal by limit name."""

    per_user: Limits
    overall: Limits
    refused: Callable[[str], None] = lambda _: None

    def admit(self, key: str) -> bool:
        if not self.per_user.take(key).allowed:
            self.refused(KAKAO_USER)
            return False
        if not self.overall.take("all").allowed:
            self.refused(KAKAO_TOTAL)
            return False
        return True


class Sessions:
    """Conversations by keyed hash of the Kakao user id: at most ``max_users``, the least
    recently used evicted first, each forgotten ``ttl_seconds`` after its last message."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        max_users: int = 10_000,
        ttl_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_users < 1 or ttl_seconds <= 0:
            raise ValueError("max_users must be at least 1 and ttl_seconds positive")
        self.secret = secret or secrets.token_bytes(32)
        self.max_users = max_users
        self.ttl = ttl_seconds
        self.clock = clock
        self.entries: OrderedDict[str, Session] = OrderedDict()

    def key(self, user_id: str) -> str:
        return hmac.new(self.secret, user_id.encode(), hashlib.sha256).hexdigest()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> Session:
        now = self.clock()
        while self.entries:
            oldest_key, oldest = next(iter(self.entries.items()))
            if now - oldest.touched < self.ttl:
                break
            del self.entries[oldest_key]
        session = self.entries.pop(key, None)
        if session is None:
            session = Session(touched=now)
        session.touched = now
        self.entries[key] = session
        while len(self.entries) > self.max_users:
            self.entries.popitem(last=False)
        return session


class KakaoSkill:
    def __init__(
        self,
        bot: Chatbot,
        file_complaint: FileComplaint,
        sessions: Sessions,
        *,
        deadline_seconds: float = 4.0,
        codes: ContactCodes | None = None,
        limits: KakaoLimits | None = None,
    ) -> None:
        self.bot = bot
        self.file = file_complaint
        self.sessions = sessions
        self.deadline = deadline_seconds
        self.codes = codes
        self.limits = limits
        self.texts: KakaoTexts = bot.texts.kakao

    async def answer(self, payload: SkillPayload) -> SkillResponse:
        key = self.sessions.key(payload.userRequest.user.id)
        if self.limits is not None and not self.limits.admit(key):
            return skill_response(self.texts.too_many)
        session = self.sessions.get(key)
        utterance = " ".join(payload.userRequest.utterance.split())
        async with session.lock:
            # a phone or a code is kept out of the transcript the handler reads
            heard = self._heard(session, utterance)
            try:
                text, quick = await asyncio.wait_for(
                    self._converse(key, session, utterance), self.deadline
                )
            except TimeoutError:
                log.warning("kakao skill answer exceeded %.1f s", self.deadline)
                return skill_response(self.texts.too_slow)
            if session.filed:
                # what was filed went with its complaint; the next one starts afresh
                session.turns.clear()
                session.filed = False
            else:
                if heard:
                    session.turns.append(Turn("resident", heard))
                session.turns.append(Turn("bot", fit(text)))
            return skill_response(text, quick)

    def _heard(self, session: Session, utterance: str) -> str:
        if session.pending is not None and CODE.fullmatch(utterance):
            return "******"
        if self._is_phone(session, utterance):
            return mask_text(utterance.replace(" ", ""))
        return utterance

    def _is_phone(self, session: Session, utterance: str) -> bool:
        return (
            self.codes is not None
            and session.offer is not None
            and PHONE_PATTERN.match(utterance.replace(" ", "")) is not None
        )

    def _confirm_buttons(self) -> list[tuple[str, str]]:
        return [(self.texts.confirm, self.texts.confirm), (self.texts.cancel, self.texts.cancel)]

    async def _converse(
        self, key: str, session: Session, utterance: str
    ) -> tuple[str, list[tuple[str, str]]]:
        if session.pending is not None and CODE.fullmatch(utterance):
            return await self._code(key, session, utterance)
        if session.pending is not None and utterance == self.texts.resend_code:
            return await self._code(key, session, None)
        if session.offer is not None and self._is_phone(session, utterance):
            phone = utterance.replace(" ", "")
            session.offer = replace(session.offer, phone=phone)
            noted = self.texts.phone_noted.format(phone=mask_text(phone))
            return noted, self._confirm_buttons()
        if utterance == self.texts.confirm:
            return await self._file(key, session)
        if utterance == self.texts.cancel:
            had = session.offer is not None
            session.offer = None
            return (self.texts.cancelled if had else self.texts.nothing_pending), []
        if utterance == self.texts.offer_message and session.offer is not None:
            return self._prompt(session.offer), self._confirm_buttons()
        reply = await self.bot.reply(utterance)
        return self._after(reply, utterance, session)

    def _after(
        self, reply: Reply, utterance: str, session: Session
    ) -> tuple[str, list[tuple[str, str]]]:
        text = reply.text
        if reply.links:
            text += "\n\n" + "\n".join(f"{label}: {url}" for label, url in reply.links)
        if reply.kind == "answer":
            session.offer = None
            return text, [(q, q) for q in reply.suggestions]
        if reply.kind == "handoff":
            complaint = reply.complaint_text or self._earlier_words(session)
            if complaint is None:
                session.offer = None
                return text, []
            session.offer = Offer(uuid.uuid4().hex, complaint, reply.department, reply.service_code)
            return f"{text}\n\n{self._prompt(session.offer)}", self._confirm_buttons()
        # "unknown": the resident may turn the question into a complaint.
        session.offer = Offer(uuid.uuid4().hex, utterance, reply.department, None)
        return text, [(self.texts.offer, self.texts.offer_message)]

    def _prompt(self, offer: Offer) -> str:
        """Filing is one tap away; with codes to confirm a phone, the phone may come first."""
        if self.codes is None or offer.phone is not None:
            return self.texts.confirm_prompt
        return f"{self.texts.confirm_prompt}\n{self.texts.phone_prompt}"

    @staticmethod
    def _earlier_words(session: Session) -> str | None:
        said = [t.text for t in session.turns if t.role == "resident"][-3:]
        return "\n".join(said) or None

    async def _file(self, key: str, session: Session) -> tuple[str, list[tuple[str, str]]]:
        offer = session.offer
        if offer is None:
            return self.texts.nothing_pending, []
        filing = Filing(
            text=offer.text,
            department=offer.department,
            channel="kakao",
            transcript=(*session.turns, Turn("resident", self.texts.confirm)),
            user_key_hash=key,
            offer_id=offer.id,
            service_code=offer.service_code,
            phone=offer.phone,
        )
        try:
            receipt = await self.file(filing)
        except FilingFailed as exc:
            log.warning("kakao filing failed: %s", exc)
            return self.texts.filing_failed, self._confirm_buttons()
        session.offer = None
        session.filed = True
        filed = self.texts.filed.format(receipt_number=receipt.receipt_number)
        if (
            self.codes is not None
            and receipt.code_pending
            and receipt.complaint_id
            and receipt.tracking_token
        ):
            session.pending = PendingCode(receipt.complaint_id, receipt.tracking_token)
            return f"{filed}\n\n{self.texts.code_prompt}", [self._resend_button()]
        return filed, []

    def _resend_button(self) -> tuple[str, str]:
        return self.texts.resend_code, self.texts.resend_code

    async def _code(
        self, key: str, session: Session, code: str | None
    ) -> tuple[str, list[tuple[str, str]]]:
        """Enter the code (``code``) or ask for a new one (None) through intake."""
        pending = session.pending
        assert pending is not None
        assert self.codes is not None
        session.filed = True  # the code exchange belongs to no complaint's conversation
        try:
            if code is None:
                outcome = await self.codes.resend(pending.complaint_id, pending.tracking_token, key)
            else:
                outcome = await self.codes.confirm(
                    pending.complaint_id, pending.tracking_token, code, key
                )
        except FilingFailed as exc:
            log.warning("kakao contact code not checked: %s", exc)
            return self.texts.code_failed, [self._resend_button()]
        if outcome is CodeOutcome.CONFIRMED:
            session.pending = None
            return self.texts.code_confirmed, []
        if outcome is CodeOutcome.GONE:  # no code waits any more (long expired)
            session.pending = None
            return self.texts.code_failed, []
        text = {
            CodeOutcome.SENT: self.texts.code_sent,
            CodeOutcome.WRONG: self.texts.code_wrong,
            CodeOutcome.EXPIRED: self.texts.code_expired,
            CodeOutcome.LOCKED: self.texts.code_locked,
            CodeOutcome.TOO_MANY_CODES: self.texts.code_too_many,
        }.get(outcome, self.texts.too_many)
        return text, [self._resend_button()]


def kakao_router(
    bot: Chatbot,
    file_complaint: FileComplaint,
    *,
    sessions: Sessions | None = None,
    deadline_seconds: float = 4.0,
    path: str = "/kakao/skill",
    codes: ContactCodes | None = None,
    limits: KakaoLimits | None = None,
) -> APIRouter:
    """The skill endpoint Open Builder calls (set its URL to ``<portal>/kakao/skill``).
    With ``codes``, the resident may give a phone and confirm it with the code intake
    sends; without, the skill files without one, as before."""
    skill = KakaoSkill(
        bot,
        file_complaint,
        sessions if sessions is not None else Sessions(),
        deadline_seconds=deadline_seconds,
        codes=codes,
        limits=limits,
    )
    router = APIRouter()

    @router.post(path, response_model=SkillResponse, tags=["kakao"])
    async def kakao_skill(payload: Annotated[SkillPayload, Body()]) -> Any:
        """One turn of a KakaoTalk conversation, answered within Open Builder's 5 seconds."""
        return await skill.answer(payload)

    return router
