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
"""

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from portal.chatbot.bot import Chatbot, Reply
from portal.chatbot.handoff import FileComplaint, Filing, FilingFailed, Turn
from portal.chatbot.texts import KakaoTexts

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


@dataclass(frozen=True)
class Offer:
    id: str
    text: str
    department: str | None
    service_code: str | None


@dataclass
class Session:
    touched: float
    turns: deque[Turn] = field(default_factory=lambda: deque(maxlen=20))
    offer: Offer | None = None
    filed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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
    ) -> None:
        self.bot = bot
        self.file = file_complaint
        self.sessions = sessions
        self.deadline = deadline_seconds
        self.texts: KakaoTexts = bot.texts.kakao

    async def answer(self, payload: SkillPayload) -> SkillResponse:
        key = self.sessions.key(payload.userRequest.user.id)
        session = self.sessions.get(key)
        utterance = " ".join(payload.userRequest.utterance.split())
        async with session.lock:
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
                if utterance:
                    session.turns.append(Turn("resident", utterance))
                session.turns.append(Turn("bot", fit(text)))
            return skill_response(text, quick)

    def _confirm_buttons(self) -> list[tuple[str, str]]:
        return [(self.texts.confirm, self.texts.confirm), (self.texts.cancel, self.texts.cancel)]

    async def _converse(
        self, key: str, session: Session, utterance: str
    ) -> tuple[str, list[tuple[str, str]]]:
        if utterance == self.texts.confirm:
            return await self._file(key, session)
        if utterance == self.texts.cancel:
            had = session.offer is not None
            session.offer = None
            return (self.texts.cancelled if had else self.texts.nothing_pending), []
        if utterance == self.texts.offer_message and session.offer is not None:
            return self.texts.confirm_prompt, self._confirm_buttons()
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
            return f"{text}\n\n{self.texts.confirm_prompt}", self._confirm_buttons()
        # "unknown": the resident may turn the question into a complaint.
        session.offer = Offer(uuid.uuid4().hex, utterance, reply.department, None)
        return text, [(self.texts.offer, self.texts.offer_message)]

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
        )
        try:
            receipt = await self.file(filing)
        except FilingFailed as exc:
            log.warning("kakao filing failed: %s", exc)
            return self.texts.filing_failed, self._confirm_buttons()
        session.offer = None
        session.filed = True
        return self.texts.filed.format(receipt_number=receipt), []


def kakao_router(
    bot: Chatbot,
    file_complaint: FileComplaint,
    *,
    sessions: Sessions | None = None,
    deadline_seconds: float = 4.0,
    path: str = "/kakao/skill",
) -> APIRouter:
    """The skill endpoint Open Builder calls (set its URL to ``<portal>/kakao/skill``)."""
    skill = KakaoSkill(
        bot,
        file_complaint,
        sessions if sessions is not None else Sessions(),
        deadline_seconds=deadline_seconds,
    )
    router = APIRouter()

    @router.post(path, response_model=SkillResponse, tags=["kakao"])
    async def kakao_skill(payload: Annotated[SkillPayload, Body()]) -> Any:
        """One turn of a KakaoTalk conversation, answered within Open Builder's 5 seconds."""
        return await skill.answer(payload)

    return router
