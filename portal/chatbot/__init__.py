"""The 24/7 chatbot: answers from a knowledge base kept as data, hands off to a complaint
through intake, and speaks KakaoTalk's skill protocol. What the portal codes against:
``Reply``, ``Chatbot`` (``Chatbot.load(classify=...)``, ``await bot.reply(text)``),
``kakao_router`` and the HTTP collaborators in ``handoff``."""

from portal.chatbot.assemble import Assembled, assemble
from portal.chatbot.bot import (
    Chatbot,
    Classification,
    ClassifierUnavailable,
    Classify,
    Reply,
    Thresholds,
)
from portal.chatbot.handoff import (
    CodeOutcome,
    ContactCodes,
    FileComplaint,
    Filing,
    FilingFailed,
    IntakeFiler,
    Receipt,
    RoutingClassifier,
    Turn,
)
from portal.chatbot.kakao import KakaoLimits, Sessions, kakao_router
from portal.chatbot.settings import ChatbotSettings

__all__ = [
    "Assembled",
    "Chatbot",
    "ChatbotSettings",
    "Classification",
    "ClassifierUnavailable",
    "Classify",
    "CodeOutcome",
    "ContactCodes",
    "FileComplaint",
    "Filing",
    "FilingFailed",
    "IntakeFiler",
    "KakaoLimits",
    "Receipt",
    "Reply",
    "RoutingClassifier",
    "Sessions",
    "Thresholds",
    "Turn",
    "assemble",
    "kakao_router",
]
