"""다른 기기에서 내 민원 찾기: a resident on a new phone (or a browser that forgot its cookie)
types a complaint's 접수번호, enters the code intake sent to the phone that complaint was
filed with, and this browser's cookie then holds a resident token that lists those
complaints (intake binds it; the tracker lists by it).

Two form posts, each checked here first and then by intake; errors are shown next to their
field in Korean, and what was typed stays. The page never says whether a receipt number
exists or has a phone (intake does not say either). The posts are limited per client
address as the other acting posts are (``portal.app``).
"""

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from portal.clients import IntakeApi, Recovered, Refused, ServiceUnavailable, TrackerApi
from portal.texts import Texts

RECEIPT = re.compile(r"^[0-9]{6}-[0-9]{6}$")
CODE = re.compile(r"^[0-9]{6}$")
POSTS = ("/recover", "/recover/confirm")
"""What ``portal.app`` limits per client address."""
LISTED_WAIT_SECONDS = 3.0
"""How long a right code waits for the tracker to list the complaints before showing 내 민원
(the binding reaches it over Kafka, within a second on a quiet stack)."""

Page = Callable[[Request, str, dict[str, Any], int], Awaitable[HTMLResponse]]
Remember = Callable[[Response, Request, str], None]
ResidentOf = Callable[[Request], str | None]


def receipt_of(typed: str) -> str:
    """A receipt number as typed, with spaces gone and a missing hyphen put back."""
    compact = re.sub(r"\s", "", typed)
    if re.fullmatch(r"[0-9]{12}", compact):
        return f"{compact[:6]}-{compact[6:]}"
    return compact


async def listed(tracker: TrackerApi, resident_token: str, wanted: set[str], wait: float) -> bool:
    """Whether the tracker lists every one of ``wanted`` for the token, asking a few times
    within ``wait`` seconds."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            shown = {s.complaint_id for s in await tracker.my_complaints(resident_token)}
        except ServiceUnavailable:
            shown = set()
        if wanted <= shown:
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.2)


def add_recovery_routes(
    router: APIRouter,
    *,
    intake: IntakeApi,
    tracker: TrackerApi,
    texts: Texts,
    page: Page,
    remember: Remember,
    resident_of: ResidentOf,
    listed_wait: float = LISTED_WAIT_SECONDS,
) -> None:
    """Adds the pages to ``router``, before its catch-all page; ``page``, ``remember`` and
    ``resident_of`` are the portal's own page helpers (``portal.handlers``)."""

    async def recover_page(
        request: Request,
        *,
        step: str,
        receipt: str = "",
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        context = {
            "title": "다른 기기에서 내 민원 찾기",
            "step": step,
            "receipt": receipt,
            "errors": errors or {},
        }
        return await page(request, "recover.html", context, status)

    async def refused_page(
        request: Request, refused: Refused, *, step: str, field: str, receipt: str, wrong: str
    ) -> HTMLResponse:
        """intake's refusal on the step's field: too many tries (429) or ``wrong`` (422)."""
        too_many = refused.status == 429
        return await recover_page(
            request,
            step=step,
            receipt=receipt,
            errors={field: texts.error("recovery_too_many" if too_many else wrong)},
            status=429 if too_many else 422,
        )

    @router.get("/recover", response_class=HTMLResponse)
    async def recover_form(request: Request) -> Response:
        return await recover_page(request, step="receipt")

    @router.post("/recover", response_class=HTMLResponse)
    async def ask_code(
        request: Request, receipt_number: Annotated[str, Form(max_length=40)] = ""
    ) -> Response:
        receipt = receipt_of(receipt_number)
        if not RECEIPT.match(receipt):
            errors = {"receipt": texts.error("receipt_invalid")}
            return await recover_page(
                request, step="receipt", receipt=receipt_number, errors=errors, status=422
            )
        try:
            refused = await intake.start_recovery(receipt)
        except ServiceUnavailable:
            errors = {"receipt": texts.error("unavailable")}
            return await recover_page(
                request, step="receipt", receipt=receipt, errors=errors, status=503
            )
        if refused is not None:
            return await refused_page(
                request,
                refused,
                step="receipt",
                field="receipt",
                receipt=receipt,
                wrong="receipt_invalid",
            )
        return await recover_page(request, step="code", receipt=receipt)

    @router.post("/recover/confirm", response_class=HTMLResponse)
    async def enter_code(
        request: Request,
        receipt_number: Annotated[str, Form(max_length=40)] = "",
        code: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        receipt = receipt_of(receipt_number)
        if not RECEIPT.match(receipt):
            errors = {"receipt": texts.error("receipt_invalid")}
            return await recover_page(request, step="receipt", errors=errors, status=422)
        typed = code.strip()
        if not CODE.match(typed):
            errors = {"code": texts.error("code_invalid")}
            return await recover_page(
                request, step="code", receipt=receipt, errors=errors, status=422
            )
        resident = resident_of(request)
        try:
            answer = await intake.confirm_recovery(receipt, code=typed, resident_token=resident)
            if resident and isinstance(answer, Refused) and "resident_token" in answer.message:
                # a cookie intake never issued (another installation): take a new token
                answer = await intake.confirm_recovery(receipt, code=typed, resident_token=None)
        except ServiceUnavailable:
            errors = {"code": texts.error("unavailable")}
            return await recover_page(
                request, step="code", receipt=receipt, errors=errors, status=503
            )
        if isinstance(answer, Refused):
            return await refused_page(
                request,
                answer,
                step="code",
                field="code",
                receipt=receipt,
                wrong="recovery_code_wrong",
            )
        return await recovered(request, answer, resident)

    async def recovered(request: Request, answer: Recovered, resident: str | None) -> Response:
        token = answer.resident_token or resident  # intake answers one when given none
        if token:
            await listed(tracker, token, {cid for cid, _ in answer.complaints}, listed_wait)
        response = RedirectResponse(f"/my?recovered={len(answer.complaints)}", status_code=303)
        if answer.resident_token is not None:
            remember(response, request, answer.resident_token)
        return response


__all__ = ["POSTS", "add_recovery_routes", "receipt_of"]
