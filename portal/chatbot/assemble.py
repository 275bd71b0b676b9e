"""The chatbot and its Kakao skill built from settings the portal's composition root has
read, over the one HTTP client the portal owns (opened and closed in its lifespan)."""

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from fastapi import APIRouter

from portal.chatbot.bot import Chatbot
from portal.chatbot.handoff import IntakeFiler, RoutingClassifier
from portal.chatbot.kakao import KakaoLimits, Sessions, kakao_router
from portal.chatbot.retrieval import Morphemes
from portal.chatbot.settings import ChatbotSettings
from services.ratelimit import Limits, Rate


@dataclass(frozen=True)
class Assembled:
    bot: Chatbot
    filer: IntakeFiler
    """Files a confirmed chat handoff (``Filing(channel="chatbot", ...)`` from the page)."""
    kakao: APIRouter
    """``POST /kakao/skill``: include it in the portal's app."""


def assemble(
    settings: ChatbotSettings,
    client: httpx.AsyncClient,
    *,
    morphemes: Morphemes | None = None,
    refused: Callable[[str], None] = lambda _: None,
) -> Assembled:
    """Loads Kiwi and indexes the knowledge base (seconds, ~330 MB): call it once, at start.
    ``refused`` counts the Kakao skill's refusals by limit name (the portal's metric)."""
    key = settings.intake_api_key.get_secret_value() if settings.intake_api_key else None
    secret = settings.kakao_user_key_secret
    bot = Chatbot.load(
        classify=RoutingClassifier(
            client, settings.routing_url, timeout=settings.classify_timeout_seconds
        ),
        thresholds=settings.thresholds,
        morphemes=morphemes,
    )
    filer = IntakeFiler(client, settings.intake_url, key, timeout=settings.filing_timeout_seconds)
    sessions = Sessions(
        secret.get_secret_value().encode() if secret else None,
        max_users=settings.kakao_max_users,
        ttl_seconds=settings.kakao_session_ttl_seconds,
    )
    limits = KakaoLimits(
        per_user=Limits.of(
            [
                Rate(settings.kakao_messages_per_minute, 60),
                Rate(settings.kakao_messages_per_hour, 3600),
            ],
            max_keys=settings.kakao_max_users,
        ),
        overall=Limits.of([Rate(settings.kakao_total_per_minute, 60)], max_keys=1),
        refused=refused,
    )
    router = kakao_router(
        bot,
        filer,
        sessions=sessions,
        deadline_seconds=settings.kakao_deadline_seconds,
        codes=filer,
        limits=limits,
    )
    return Assembled(bot, filer, router)
