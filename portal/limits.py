"""The portal's abuse limits on what a browser reads: page views and static files per
client address, refused with a page in Korean.

The portal is the edge, so the client address is the resident's (behind a proxy, as the
server's proxy-headers setting reports it; an IPv6 client by its /64). A page view costs
tracker and database reads, so a script must not fetch thousands; a person clicking as
fast as they can stays far below the limit, and static files (a page brings a few, the
browser keeps them) have a higher one. Form posts are limited per route in
``portal.app.post_limits``; the Kakao skill per Kakao user in ``portal.chatbot.kakao``.
"""

from collections.abc import Collection
from dataclasses import dataclass

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.handlers import TEMPLATES, TEXT_SIZE_COOKIE
from portal.texts import Texts
from services.ratelimit import Decision, Limits, RateLimitMetrics, address_key

PAGES = "pages"
STATIC = "static"
READS = frozenset({"GET", "HEAD"})
UNLIMITED = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and the metrics scrape: cheap, and called by the platform, not by residents."""


class TooManyPage:
    """The 429 as a page: what was refused in Korean, when to come back, and
    ``Retry-After``. Rendered without the store (a refused request must stay cheap)."""

    def __init__(self, texts: Texts) -> None:
        self.templates = Jinja2Templates(directory=TEMPLATES)
        self.texts = texts

    def __call__(self, request: Request, seconds: int) -> HTMLResponse:
        path = request.url.path
        return self.templates.TemplateResponse(
            request,
            "too_many.html",
            {
                "title": "잠시 후 다시",
                "message": self.texts.error("too_many", seconds=seconds),
                "large_text": request.cookies.get(TEXT_SIZE_COOKIE) == "large",
                "known": False,
                "here": path,
                "page_path": path,
                "favourite_paths": set(),
            },
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )


@dataclass
class PageLimits:
    """ASGI middleware: every GET or HEAD but the probes takes one from its address's
    bucket (``static`` for ``/static/…``, ``pages`` for the rest); refused, the page."""

    app: ASGIApp
    pages: Limits
    static: Limits
    metrics: RateLimitMetrics
    refusal: TooManyPage
    unlimited: Collection[str] = UNLIMITED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in READS
            or scope["path"] in self.unlimited
        ):
            await self.app(scope, receive, send)
            return
        name, limits = (
            (STATIC, self.static) if scope["path"].startswith("/static/") else (PAGES, self.pages)
        )
        client = scope.get("client")
        decision: Decision = limits.take(address_key(client[0]) if client else "unknown")
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        self.metrics.count(name)
        response = self.refusal(Request(scope), decision.retry_after_seconds)
        await response(scope, receive, send)
