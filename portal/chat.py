"""The chat page's side of the chatbot: what the page needs from a bot, the conversation
kept for the handoff, and the filing a handoff sends to intake.

The bot itself (knowledge base, retrieval, classifier handoff) is ``portal.chatbot``,
injected into ``create_app(..., chatbot=...)``; the page only relies on this interface,
which ``portal.chatbot.Chatbot`` and ``portal.chatbot.Reply`` satisfy structurally.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["answer", "unknown", "handoff"]
Role = Literal["resident", "bot"]

ASK_FOR_PERSON = ("상담원", "사람", "직원", "담당자", "연결", "민원 신청", "민원신청", "신고할")
"""Words with which a resident asks for a person rather than an answer."""

MAX_TURNS = 20


class ReplyLike(Protocol):
    @property
    def kind(self) -> Kind: ...
    @property
    def text(self) -> str: ...
    @property
    def links(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def department(self) -> str | None: ...
    @property
    def department_name(self) -> str | None: ...
    @property
    def suggestions(self) -> tuple[str, ...]: ...


class ChatbotLike(Protocol):
    async def reply(self, text: str) -> ReplyLike: ...


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str


def wants_person(text: str) -> bool:
    squashed = text.replace(" ", "")
    return any(word.replace(" ", "") in squashed for word in ASK_FOR_PERSON)


def offers_handoff(reply: ReplyLike, asked: str) -> bool:
    """The page offers to file when the bot hands off, does not know, or the resident
    asked for a person."""
    return reply.kind in ("handoff", "unknown") or wants_person(asked)


def handoff_text(turns: Sequence[Turn]) -> str:
    """What to pre-fill: the resident's own words, the last question first."""
    said = [t.text for t in turns if t.role == "resident"]
    return said[-1] if said else ""


def transcript(turns: Sequence[Turn]) -> list[dict[str, str]]:
    return [{"role": t.role, "text": t.text} for t in turns[-MAX_TURNS:]]


def handoff_filing(
    *,
    text: str,
    turns: Sequence[Turn],
    channel_ref: str,
    resident_token: str | None,
    transcript_accepted: bool,
    phone: str = "",
) -> dict[str, Any]:
    """intake's filing body for a chat handoff (channel ``chatbot``). The department the
    bot named is shown to the resident but not sent: routing classifies the text with the
    same classifier and decides. The conversation travels as ``transcript`` where
    intake's filing API accepts that field (``transcript_accepted``, a setting). A
    ``phone`` (given with consent) is told at once its owner enters the code intake sends."""
    body: dict[str, Any] = {
        "channel": "chatbot",
        "channel_ref": channel_ref,
        "body": text,
        "resident": (
            {"phone": phone, "notification_consent": True}
            if phone
            else {"notification_consent": False}
        ),
    }
    if resident_token:
        body["resident_token"] = resident_token
    if transcript_accepted:
        body["transcript"] = transcript(turns)
    return body
