"""What a resident's browser asks and what the portal does about it: pages in, intake
and tracker over HTTP out.

Read top-down: ``Resident`` (who is asking: the cookie), ``Portal`` (the collaborators
the composition root chose), then ``routes``: home and search, filing, the timeline
and its live stream, the resident's actions, 내 민원, favourites, the chat page.

The resident is the ``resident_token`` intake issued at their first filing, kept in an
``HttpOnly``, ``SameSite=Lax`` cookie (``Secure`` over HTTPS): tracker reads every
complaint of theirs with it, so a returning resident never identifies again. Forms post
without JavaScript; htmx only adds the live timeline (its SSE extension).
"""

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUpload

from portal import chat, forms, suggestions
from portal.chat import ChatbotLike, Turn
from portal.chatbot.bot import ClassifierUnavailable, Classify
from portal.clients import (
    Complaint,
    Filed,
    IntakeApi,
    Refused,
    ServiceUnavailable,
    Similar,
    Summary,
    TrackerApi,
)
from portal.menu import Menu
from portal.photos import MAX_BYTES, MAX_PHOTOS, PHOTO_ID
from portal.recovery import add_recovery_routes
from portal.store import Favourite, PortalStore
from portal.suggestions import Behaviour, Rules
from portal.texts import Texts
from portal.timeline import build, kst
from schemas.catalogue import catalogue
from schemas.states import OPEN_STATES
from services.runtime import Clock

log = logging.getLogger("sotong.portal")

COOKIE = "sotong_resident"
TEXT_SIZE_COOKIE = "sotong_text"
TEMPLATES = Path(__file__).parent / "templates"
TRANSIENT = frozenset({"filed", "done", "forgotten", "code", "recovered"})
CODE_ERRORS = {
    "wrong_code": "code_wrong",
    "code_expired": "code_expired",
    "too_many_attempts": "code_locked",
    "too_many_codes": "code_too_many",
    "not_found": "code_not_found",
    "rate_limited": "too_many_actions",
}
"""intake's error codes for the contact code → the words in texts.ko.json."""
"""Query parameters that say what just happened, not which page this is."""
MAX_HISTORY_CHARS = 20_000


@dataclass(frozen=True)
class Portal:
    intake: IntakeApi
    tracker: TrackerApi
    store: PortalStore
    chatbot: ChatbotLike | None
    menu: Menu
    rules: Rules
    texts: Texts
    dongs: tuple[str, ...]
    clock: Clock
    cookie_secure: bool | None
    cookie_max_age: int
    transcript_accepted: bool
    live_retry_seconds: float = 1.0
    classify: Classify | None = None
    """Which department a text goes to (routing's), for '이미 접수된 민원이 있어요' when the
    resident chose no service; without it the offer is made only for a chosen service."""


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _local_path(value: str | None, default: str = "/") -> str:
    """A path on this site only (no scheme, no host, no ``//``): where a form may send the
    resident back, and what a favourite may point at."""
    if not value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return default
    return value


def safe_link(url: str) -> str | None:
    """A link a page may show: this site's own paths and http(s) addresses; nothing that
    runs script or leaves for another scheme."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return url
    return _local_path(url, default="") or None


def same_origin(request: Request) -> bool:
    """A form post from this site's own pages. Browsers send ``Origin`` with every POST;
    one from another site (which could log the resident out or star pages) is refused.
    Without ``Origin`` (an old browser, a script), the SameSite=Lax cookie is the guard."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def sse_message(event: str, html: str) -> str:
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {event}\n{data}\n\n"


def routes(portal: Portal) -> APIRouter:
    router = APIRouter()
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.globals["kst"] = kst
    templates.env.globals["texts"] = portal.texts
    templates.env.filters["safe_link"] = safe_link

    def resident_of(request: Request) -> str | None:
        token = request.cookies.get(COOKIE)
        return token if token and 16 <= len(token) <= 100 else None

    async def page(
        request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        resident = resident_of(request)
        favourites = await portal.store.favourites(resident) if resident else []
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in TRANSIENT]
        base = {
            "large_text": request.cookies.get(TEXT_SIZE_COOKIE) == "large",
            "known": resident is not None,
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "page_path": request.url.path + (f"?{urlencode(kept)}" if kept else ""),
            "favourite_paths": {f.path for f in favourites},
        }
        return templates.TemplateResponse(request, name, base | context, status_code=status)

    def remember(response: Response, request: Request, resident_token: str) -> None:
        secure = portal.cookie_secure
        if secure is None:
            proto = request.headers.get("x-forwarded-proto", request.url.scheme)
            secure = proto.split(",")[0].strip() == "https"
        response.set_cookie(
            COOKIE,
            resident_token,
            max_age=portal.cookie_max_age,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
        )

    async def unavailable(request: Request, exc: ServiceUnavailable) -> HTMLResponse:
        log.warning("a service did not answer: %s", exc)
        return await page(request, "unavailable.html", {"title": "잠시 후 다시"}, status=503)

    async def record(resident_token: str, behaviour: Behaviour) -> None:
        await portal.store.record_signals(
            resident_token, suggestions.met(portal.rules, behaviour), portal.clock()
        )

    # -- home and search ----------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request, q: Annotated[str, Query(max_length=200)] = "") -> Response:
        resident = resident_of(request)
        mine: list[Summary] = []
        suggested: list[suggestions.Suggestion] = []
        answer = None
        try:
            if resident:
                mine = await portal.tracker.my_complaints(resident)
                rule_ids = [s.rule for s in await portal.store.signals(resident)]
                for summary in mine:
                    behaviour = Behaviour(
                        "complaint",
                        department=summary.department.code if summary.department else None,
                        text=summary.title or "",
                    )
                    rule_ids[:0] = suggestions.met(portal.rules, behaviour)
                suggested = suggestions.suggest(portal.rules, portal.menu, rule_ids)
            if q.strip() and portal.chatbot is not None:
                reply = await portal.chatbot.reply(q.strip())
                if reply.kind == "answer":
                    answer = reply
                if resident:
                    await record(
                        resident, Behaviour("question", department=reply.department, text=q)
                    )
        except ServiceUnavailable as exc:
            return await unavailable(request, exc)
        return await page(
            request,
            "home.html",
            {
                "title": "소통1번가",
                "q": q,
                "results": portal.menu.search(q) if q.strip() else [],
                "answer": answer,
                "tasks": portal.menu.home,
                "open": [s for s in mine if s.state in OPEN_STATES or s.state is None],
                "suggested": suggested,
            },
        )

    # -- filing ---------------------------------------------------------------------------

    async def filing_page(
        request: Request,
        form: forms.FilingForm,
        errors: dict[str, str],
        general: list[str] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        department = catalogue().by_service_code(form.service) if form.service else None
        return await page(
            request,
            "file.html",
            {
                "title": "민원 신청",
                "form": form,
                "errors": errors,
                "general": general or [],
                "dongs": portal.dongs,
                "department": department,
                "max_photos": MAX_PHOTOS,
            },
            status=status,
        )

    @router.get("/file", response_class=HTMLResponse)
    async def file_form(
        request: Request, service: Annotated[str, Query(max_length=64)] = ""
    ) -> Response:
        form = forms.FilingForm(service=service)
        errors = {}
        if service and catalogue().by_service_code(service) is None:
            errors["service"] = portal.texts.error("service_unknown")
        return await filing_page(request, form, errors)

    async def attached(raw: FormData, room: int = MAX_PHOTOS) -> tuple[tuple[str, ...], str | None]:
        """The photos kept from an earlier try of this form and those uploaded now, each
        handed to intake once; a photo refused is named in the error, the others kept.
        ``room``: how many more the complaint may have (a correction counts those it has)."""
        kept = [p for p in raw.getlist("photo") if isinstance(p, str) and PHOTO_ID.match(p)]
        uploads = [
            f for f in raw.getlist("photos") if isinstance(f, StarletteUpload) and f.filename
        ]
        problem = None
        if len(kept) > room:
            kept, problem = kept[:room], portal.texts.error("photo_too_many", count=MAX_PHOTOS)
        for upload in uploads:
            if len(kept) >= room:
                problem = portal.texts.error("photo_too_many", count=MAX_PHOTOS)
                break
            data = await upload.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                problem = portal.texts.error("photo_too_big")
                continue
            answer = await portal.intake.upload_photo(
                data, upload.filename or "photo", upload.content_type or "application/octet-stream"
            )
            if isinstance(answer, Refused):
                why = "photo_too_big" if answer.status == 413 else "photo_type"
                problem = portal.texts.error(why)
            else:
                kept.append(answer.photo_id)
        return tuple(dict.fromkeys(kept))[:room], problem

    @router.post("/file", response_class=HTMLResponse)
    async def file_complaint(request: Request) -> Response:
        async with request.form(max_files=MAX_PHOTOS * 2) as raw:  # closes the uploads
            fields = {k: v for k, v in raw.items() if isinstance(v, str)}
            try:
                photos, photo_problem = await attached(raw)
            except ServiceUnavailable:
                form = forms.FilingForm.from_form(fields, ())
                general = [portal.texts.error("unavailable")]
                return await filing_page(request, form, {}, general, status=503)
        form = forms.FilingForm.from_form(fields, photos)
        errors = forms.check(form, portal.texts, portal.dongs)
        if photo_problem:
            errors["photos"] = photo_problem
        if errors:
            return await filing_page(request, form, errors, status=422)
        choice = fields.get("join", "")
        if not choice:
            offers = await similar_offers(form)
            if offers:
                return await page(
                    request,
                    "similar.html",
                    {
                        "title": "이미 접수된 민원이 있어요",
                        "offers": offers,
                        "carried": {k: v for k, v in fields.items() if k != "join"},
                        "photos": form.photos,
                    },
                )
        joins = choice if _is_uuid(choice) else None
        resident = resident_of(request)

        def body(resident_token: str | None) -> dict[str, Any]:
            return forms.filing_body(form, resident_token=resident_token, joins=joins)

        try:
            result = await portal.intake.file(body(resident))
            if resident and isinstance(result, Refused) and _about_resident_token(result):
                # a cookie intake never issued (another installation): file as a newcomer
                result = await portal.intake.file(body(None))
        except ServiceUnavailable:
            general = [portal.texts.error("unavailable")]
            return await filing_page(request, form, {}, general, status=503)
        if isinstance(result, Refused):
            errors, general = forms.intake_errors(result.fields, portal.texts)
            if result.status == 429:  # intake's abuse limits: said in Korean, not its English
                general = [portal.texts.error("too_many_filings")]
            if not errors and not general:
                general = [portal.texts.error("refused", message=result.message)]
            return await filing_page(request, form, errors, general, status=422)
        await filed(result, form)
        code = "&code=1" if result.contact_pending else ""
        response = RedirectResponse(
            f"/complaints/{result.complaint_id}?filed=1{code}", status_code=303
        )
        remember(response, request, result.resident_token)
        return response

    async def similar_offers(form: forms.FilingForm) -> list[Similar]:
        """Open complaints like this one at its 행정동, in the department its service (or,
        failing that, routing's confident classification) names; none without a 행정동."""
        if not form.dong:
            return []
        text = f"{form.title} {form.body}".strip()
        service = catalogue().by_service_code(form.service) if form.service else None
        department = service.code if service else None
        if department is None and portal.classify is not None:
            try:
                guess = await portal.classify(text)
            except ClassifierUnavailable:
                guess = None
            department = guess.department if guess is not None and guess.auto else None
        if department is None:
            return []
        return await portal.tracker.similar(dong=form.dong, text=text, department=department)

    async def filed(result: Filed, form: forms.FilingForm) -> None:
        await portal.store.follow(
            result.resident_token,
            result.complaint_id,
            result.tracking_token,
            result.receipt_number,
        )
        department = catalogue().by_service_code(form.service) if form.service else None
        await record(
            result.resident_token,
            Behaviour(
                "complaint",
                department=department.code if department else None,
                service_code=form.service or None,
                text=f"{form.title} {form.body}",
            ),
        )

    # -- the timeline ---------------------------------------------------------------------

    async def complaint_of(
        request: Request, complaint_id: str
    ) -> tuple[str | None, Complaint | None, str | None]:
        """(resident, the complaint as tracker has it, its receipt number if the portal
        filed it and tracker has not stored it yet)."""
        resident = resident_of(request)
        if resident is None or not _is_uuid(complaint_id):
            return resident, None, None
        complaint = await portal.tracker.complaint(complaint_id, resident_token=resident)
        if complaint is not None:
            return resident, complaint, complaint.receipt_number
        pending = next(
            (f for f in await portal.store.followed(resident) if f.complaint_id == complaint_id),
            None,
        )
        return resident, None, pending.receipt_number if pending else None

    def timeline_context(
        complaint_id: str, complaint: Complaint | None, receipt: str
    ) -> dict[str, Any]:
        return {
            "complaint_id": complaint_id,
            "receipt_number": receipt,
            "complaint": complaint,
            "view": build(complaint, portal.texts) if complaint else None,
            "dongs": portal.dongs,
            "max_photos": MAX_PHOTOS,
            "kept_photos": (),
        }

    async def timeline_page(
        request: Request,
        complaint_id: str,
        *,
        errors: dict[str, str] | None = None,
        notes: dict[str, str] | None = None,
        kept_photos: tuple[str, ...] = (),
        status: int = 200,
    ) -> Response:
        try:
            resident, complaint, receipt = await complaint_of(request, complaint_id)
        except ServiceUnavailable as exc:
            return await unavailable(request, exc)
        if receipt is None:
            return await page(
                request,
                "not_yours.html",
                {"title": "민원을 찾을 수 없어요", "known": resident is not None},
                status=404,
            )
        return await page(
            request,
            "timeline.html",
            {
                "title": f"접수번호 {receipt}",
                "filed": request.query_params.get("filed") == "1",
                "done": request.query_params.get("done", ""),
                "errors": errors or {},
                "notes": notes or {},
                "code_form": request.query_params.get("code") == "1" or "code" in (errors or {}),
                **timeline_context(complaint_id, complaint, receipt),
                "kept_photos": kept_photos,
            },
            status=status,
        )

    @router.get("/complaints/{complaint_id}", response_class=HTMLResponse)
    async def timeline(request: Request, complaint_id: str) -> Response:
        return await timeline_page(request, complaint_id)

    @router.get("/complaints/{complaint_id}/live")
    async def live(
        request: Request, complaint_id: str, seen: Annotated[int, Query(ge=0)] = 0
    ) -> Response:
        """The timeline section, re-rendered each time tracker stores a new entry:
        Server-Sent Events the page's htmx SSE extension swaps in place. Until tracker
        has the complaint (it was filed a moment ago) the stream waits for it."""
        try:
            resident, complaint, receipt = await complaint_of(request, complaint_id)
        except ServiceUnavailable:
            return HTMLResponse("", status_code=503)  # htmx-ext-sse reconnects, backing off
        if resident is None or receipt is None:
            return HTMLResponse("", status_code=404)
        parts = {
            "timeline": templates.get_template("_progress.html"),
            "actions": templates.get_template("_actions.html"),
        }

        def render(current: Complaint | None) -> dict[str, str]:
            context = timeline_context(complaint_id, current, receipt or "") | {
                "texts": portal.texts,
                "errors": {},
                "notes": {},
            }
            return {event: part.render(context) for event, part in parts.items()}

        async def events() -> AsyncIterator[str]:
            yield "retry: 3000\n\n"
            # What the page shows: the timeline up to entry ``seen``. If tracker has more
            # by now, the first comparison sends it.
            current_sequence = complaint.timeline[-1].sequence if complaint else 0
            shown = render(complaint) if current_sequence == seen else {e: "" for e in parts}

            def changed(current: Complaint | None) -> list[str]:
                if current is None:
                    return []
                fresh = render(current)
                out = [sse_message(e, html) for e, html in fresh.items() if html != shown[e]]
                shown.update(fresh)
                return out

            while not await request.is_disconnected():
                try:
                    async for _ in portal.tracker.changes(complaint_id, resident_token=resident):
                        current = await portal.tracker.complaint(
                            complaint_id, resident_token=resident
                        )
                        for message in changed(current):
                            yield message
                        if await request.is_disconnected():
                            return
                except ServiceUnavailable:
                    pass
                current = await _quietly(
                    portal.tracker.complaint(complaint_id, resident_token=resident)
                )
                for message in changed(current):
                    yield message
                yield ": waiting\n\n"
                await asyncio.sleep(portal.live_retry_seconds)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def act(
        request: Request, complaint_id: str, action: str, note: str, *, required: bool, field: str
    ) -> Response:
        problem = forms.check_note(note, portal.texts, required=required)
        if problem:
            return await timeline_page(
                request, complaint_id, errors={field: problem}, notes={field: note}, status=422
            )
        return await send(request, complaint_id, action, field, {field: note}, note=note)

    async def own_token(request: Request, complaint_id: str) -> str | None:
        """The tracking token of a complaint this browser's resident filed here, or None."""
        resident = resident_of(request)
        if not resident or not _is_uuid(complaint_id):
            return None
        token = await portal.store.tracking_token(resident, complaint_id)
        if token is not None:
            return token
        # one filed elsewhere and found here (다른 기기에서 내 민원 찾기): the tracker lists it
        # for this resident, and intake accepts the resident token bound to it
        mine = await _quietly(portal.tracker.complaint(complaint_id, resident_token=resident))
        return resident if mine is not None else None

    async def not_yours(request: Request) -> Response:
        return await page(request, "not_yours.html", {"title": "민원을 찾을 수 없어요"}, status=404)

    async def send(
        request: Request,
        complaint_id: str,
        action: str,
        field: str,
        typed: dict[str, str],
        *,
        note: str = "",
        fields: Mapping[str, object] | None = None,
        photo_field: str | None = None,
    ) -> Response:
        """Act as the resident through intake with the complaint's tracking token; a
        refusal or an outage is shown next to ``field`` (a refusal of the photos next to
        ``photo_field``), with what was typed (``typed``)."""
        token = await own_token(request, complaint_id)
        if token is None:
            return await not_yours(request)
        try:
            refused = await portal.intake.resident_action(
                complaint_id, action=action, token=token, note=note.strip() or None, fields=fields
            )
        except ServiceUnavailable:
            return await timeline_page(
                request,
                complaint_id,
                errors={field: portal.texts.error("unavailable")},
                notes=typed,
                status=503,
            )
        if refused is not None:
            message = portal.texts.error("refused", message=refused.message)
            if refused.status == 429:  # intake's abuse limits: said in Korean, not its English
                message = portal.texts.error("too_many_actions")
            elif photo_field and refused.message.startswith("photos"):
                field = photo_field
                message = portal.texts.error("photo_refused", count=MAX_PHOTOS)
            return await timeline_page(
                request, complaint_id, errors={field: message}, notes=typed, status=422
            )
        return RedirectResponse(f"/complaints/{complaint_id}?done={action}", status_code=303)

    async def own_photo(
        request: Request, complaint_id: str, photo_id: str, *, thumbnail: bool
    ) -> Response:
        """A photo of the resident's own complaint, fetched from intake with its tracking
        token (intake serves a photo only to its own complaint's token); not kept here."""
        token = await own_token(request, complaint_id)
        if token is None or not PHOTO_ID.match(photo_id):
            return Response(status_code=404)
        try:
            kept = await portal.intake.photo(photo_id, token=token, thumbnail=thumbnail)
        except ServiceUnavailable:
            return Response(status_code=503)
        if kept is None:
            return Response(status_code=404)
        data, media_type = kept
        return Response(data, media_type=media_type, headers={"Cache-Control": "private, no-store"})

    @router.get("/complaints/{complaint_id}/photos/{photo_id}")
    async def complaint_photo(request: Request, complaint_id: str, photo_id: str) -> Response:
        return await own_photo(request, complaint_id, photo_id, thumbnail=False)

    @router.get("/complaints/{complaint_id}/photos/{photo_id}/thumbnail")
    async def complaint_thumbnail(request: Request, complaint_id: str, photo_id: str) -> Response:
        return await own_photo(request, complaint_id, photo_id, thumbnail=True)

    @router.post("/complaints/{complaint_id}/correct")
    async def correct(request: Request, complaint_id: str) -> Response:
        """정정: the address, the 행정동 or the title, or photos added, before the site check
        starts (routing decides; a refusal comes back on the timeline with what to do
        instead). Photos go to intake as at filing (multipart, each uploaded once), up to
        the per-complaint limit with those attached already."""
        if await own_token(request, complaint_id) is None:
            return await not_yours(request)
        try:
            _, complaint, _ = await complaint_of(request, complaint_id)
        except ServiceUnavailable as exc:
            return await unavailable(request, exc)
        attached_now = len(complaint.photos) if complaint else 0
        async with request.form(max_files=MAX_PHOTOS * 2) as raw:  # closes the uploads
            text = {k: v for k, v in raw.items() if isinstance(v, str)}
            try:
                photos, photo_problem = await attached(raw, max(MAX_PHOTOS - attached_now, 0))
            except ServiceUnavailable:
                photos, photo_problem = (), portal.texts.error("unavailable")
        form = forms.CorrectionForm(
            text.get("address", "").strip(),
            text.get("dong", "").strip(),
            text.get("title", "").strip(),
            photos,
        )
        typed = {"correct-address": form.address, "correct-dong": form.dong}
        typed["correct-title"] = form.title
        current_dong = complaint.dong if complaint else None
        changed = form.fields(current_dong, complaint.title if complaint else None)
        errors = forms.check_correction(form, portal.texts, portal.dongs, changed)
        if photo_problem:
            errors.pop("correct", None)  # the photo's own error says what is wrong
            errors["correct-photos"] = photo_problem
        if errors:
            return await timeline_page(
                request, complaint_id, errors=errors, notes=typed, kept_photos=photos, status=422
            )
        return await send(
            request,
            complaint_id,
            "correct",
            "correct",
            typed,
            fields=changed,
            photo_field="correct-photos",
        )

    @router.post("/complaints/{complaint_id}/rate")
    async def rate(
        request: Request,
        complaint_id: str,
        rating: Annotated[str, Form()] = "",
        comment: Annotated[str, Form()] = "",
    ) -> Response:
        """만족도: 1–5 and an optional comment, after resolution, once per resolution."""
        typed = {"rating": rating, "rating-comment": comment}
        errors = forms.check_rating(rating, comment, portal.texts)
        if errors:
            return await timeline_page(
                request, complaint_id, errors=errors, notes=typed, status=422
            )
        fields: dict[str, object] = {"rating": int(rating)}
        if comment.strip():
            fields["comment"] = comment.strip()
        return await send(request, complaint_id, "rate", "rating", typed, fields=fields)

    @router.post("/complaints/{complaint_id}/withdraw")
    async def withdraw(
        request: Request, complaint_id: str, note: Annotated[str, Form()] = ""
    ) -> Response:
        return await act(request, complaint_id, "withdraw", note, required=False, field="withdraw")

    @router.post("/complaints/{complaint_id}/reopen")
    async def reopen(
        request: Request, complaint_id: str, note: Annotated[str, Form()] = ""
    ) -> Response:
        return await act(request, complaint_id, "reopen", note, required=True, field="reopen")

    @router.post("/complaints/{complaint_id}/answer")
    async def answer(
        request: Request, complaint_id: str, note: Annotated[str, Form()] = ""
    ) -> Response:
        return await act(request, complaint_id, "provide_info", note, required=True, field="answer")

    # -- confirming the phone a web filing gave (인증번호) ----------------------------------

    async def contact(request: Request, complaint_id: str, code: str | None) -> Response:
        """Enter the code (``code``), or ask for a new one (None), through intake."""
        token = await own_token(request, complaint_id)
        if token is None:
            return await not_yours(request)
        if code is not None and not re.fullmatch(r"[0-9]{6}", code):
            problem = portal.texts.error("code_invalid")
            return await timeline_page(request, complaint_id, errors={"code": problem}, status=422)
        try:
            refused = (
                await portal.intake.confirm_contact(complaint_id, token=token, code=code)
                if code is not None
                else await portal.intake.resend_code(complaint_id, token=token)
            )
        except ServiceUnavailable:
            problem = portal.texts.error("unavailable")
            return await timeline_page(request, complaint_id, errors={"code": problem}, status=503)
        if refused is not None and refused.code != "already_confirmed":
            key = CODE_ERRORS.get(refused.code or "", "refused")
            problem = portal.texts.error(key, message=refused.message)
            return await timeline_page(request, complaint_id, errors={"code": problem}, status=422)
        done = "code_sent&code=1" if code is None else "confirmed"
        return RedirectResponse(f"/complaints/{complaint_id}?done={done}", status_code=303)

    @router.post("/complaints/{complaint_id}/contact")
    async def confirm_contact(
        request: Request, complaint_id: str, code: Annotated[str, Form()] = ""
    ) -> Response:
        return await contact(request, complaint_id, code.strip())

    @router.post("/complaints/{complaint_id}/contact/code")
    async def resend_code(request: Request, complaint_id: str) -> Response:
        return await contact(request, complaint_id, None)

    # -- 내 민원 and the device ---------------------------------------------------------

    @router.get("/my", response_class=HTMLResponse)
    async def my_complaints(request: Request) -> Response:
        resident = resident_of(request)
        items: list[Summary] = []
        pending: list[Any] = []
        if resident:
            try:
                items = await portal.tracker.my_complaints(resident)
            except ServiceUnavailable as exc:
                return await unavailable(request, exc)
            listed = {s.complaint_id for s in items}
            pending = [
                f for f in await portal.store.followed(resident) if f.complaint_id not in listed
            ]
        return await page(
            request, "my.html", {"title": "내 민원", "items": items, "pending": pending}
        )

    @router.post("/forget")
    async def forget(request: Request) -> Response:
        """Log this device out: the cookie goes; the complaints stay filed."""
        response = RedirectResponse("/my?forgotten=1", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
        return response

    @router.post("/text-size")
    async def text_size(request: Request, back: Annotated[str, Form()] = "/") -> Response:
        large = request.cookies.get(TEXT_SIZE_COOKIE) != "large"
        response = RedirectResponse(_local_path(back), status_code=303)
        response.set_cookie(
            TEXT_SIZE_COOKIE,
            "large" if large else "normal",
            max_age=portal.cookie_max_age,
            samesite="lax",
            path="/",
        )
        return response

    # -- favourites -----------------------------------------------------------------------

    @router.get("/favourites", response_class=HTMLResponse)
    async def favourites(request: Request) -> Response:
        resident = resident_of(request)
        items = await portal.store.favourites(resident) if resident else []
        return await page(request, "favourites.html", {"title": "즐겨찾기", "items": items})

    @router.post("/favourites")
    async def toggle_favourite(
        request: Request,
        path: Annotated[str, Form(max_length=300)],
        label: Annotated[str, Form(max_length=60)],
        back: Annotated[str, Form()] = "/",
    ) -> Response:
        resident = resident_of(request)
        target = _local_path(path, default="")
        if resident and target and label.strip():
            current = {f.path for f in await portal.store.favourites(resident)}
            if target in current:
                await portal.store.remove_favourite(resident, target)
            else:
                await portal.store.add_favourite(resident, Favourite(target, label.strip()))
        return RedirectResponse(_local_path(back), status_code=303)

    # -- the chat page --------------------------------------------------------------------

    def turns_of(history: str) -> list[Turn]:
        try:
            raw = json.loads(history) if history else []
        except ValueError:
            return []
        turns = []
        for item in raw if isinstance(raw, list) else []:
            if isinstance(item, dict) and item.get("role") in ("resident", "bot"):
                turns.append(Turn(item["role"], str(item.get("text", ""))[:2000]))
        return turns[-chat.MAX_TURNS :]

    async def chat_page(
        request: Request,
        turns: list[Turn],
        *,
        last: chat.ReplyLike | None = None,
        handoff: str | None = None,
        error: str | None = None,
        status: int = 200,
        contact: tuple[str, bool] = ("", False),
    ) -> HTMLResponse:
        history = json.dumps(chat.transcript(turns), ensure_ascii=False)
        return await page(
            request,
            "chat.html",
            {
                "title": "24시간 상담",
                "turns": turns,
                "history": history[-MAX_HISTORY_CHARS:],
                "last": last,
                "handoff": handoff,
                "submission_id": str(uuid.uuid4()),
                "available": portal.chatbot is not None,
                "error": error,
                "phone": contact[0],
                "consent": contact[1],
            },
            status=status,
        )

    async def ask(request: Request, turns: list[Turn], question: str) -> HTMLResponse:
        if portal.chatbot is None:
            turns.append(Turn("resident", question))
            return await chat_page(request, turns, handoff=question)
        reply = await portal.chatbot.reply(question)
        turns += [Turn("resident", question), Turn("bot", reply.text)]
        resident = resident_of(request)
        if resident:
            await record(
                resident, Behaviour("question", department=reply.department, text=question)
            )
        handoff = chat.handoff_text(turns) if chat.offers_handoff(reply, question) else None
        return await chat_page(request, turns, last=reply, handoff=handoff)

    @router.get("/chat", response_class=HTMLResponse)
    async def chat_get(request: Request, q: Annotated[str, Query(max_length=500)] = "") -> Response:
        if q.strip():
            return await ask(request, [], q.strip())
        return await chat_page(request, [])

    @router.post("/chat", response_class=HTMLResponse)
    async def chat_post(
        request: Request,
        message: Annotated[str, Form(max_length=500)] = "",
        history: Annotated[str, Form(max_length=MAX_HISTORY_CHARS * 2)] = "",
    ) -> Response:
        turns = turns_of(history)
        if not message.strip():
            return await chat_page(
                request, turns, error=portal.texts.error("note_required"), status=422
            )
        return await ask(request, turns, message.strip())

    @router.post("/chat/handoff", response_class=HTMLResponse)
    async def chat_handoff(
        request: Request,
        body: Annotated[str, Form(max_length=4000)] = "",
        history: Annotated[str, Form(max_length=MAX_HISTORY_CHARS * 2)] = "",
        submission_id: Annotated[str, Form(max_length=64)] = "",
        phone: Annotated[str, Form(max_length=40)] = "",
        consent: Annotated[str, Form(max_length=10)] = "",
    ) -> Response:
        turns = turns_of(history)
        text = body.strip()
        contact = (phone.strip(), consent in ("on", "true", "1", "yes"))
        if not text:
            return await chat_page(
                request,
                turns,
                handoff="",
                error=portal.texts.error("body_required"),
                status=422,
                contact=contact,
            )
        if problems := forms.check_contact(*contact, portal.texts):
            return await chat_page(
                request,
                turns,
                handoff=text,
                error=next(iter(problems.values())),
                status=422,
                contact=contact,
            )
        ref = submission_id if _is_uuid(submission_id) else str(uuid.uuid4())
        resident = resident_of(request)
        try:
            result = await portal.intake.file(
                chat.handoff_filing(
                    text=text,
                    turns=turns,
                    channel_ref=f"portal-chat-{ref}",
                    resident_token=resident,
                    transcript_accepted=portal.transcript_accepted,
                    phone=contact[0],
                )
            )
        except ServiceUnavailable:
            return await chat_page(
                request,
                turns,
                handoff=text,
                error=portal.texts.error("unavailable"),
                status=503,
                contact=contact,
            )
        if isinstance(result, Refused):
            message = portal.texts.error("refused", message=result.message)
            if result.status == 429:
                message = portal.texts.error("too_many_filings")
            elif any(name == "resident.phone" for name, _ in result.fields):
                message = portal.texts.error("phone_invalid")
            return await chat_page(
                request, turns, handoff=text, error=message, status=422, contact=contact
            )
        await portal.store.follow(
            result.resident_token,
            result.complaint_id,
            result.tracking_token,
            result.receipt_number,
        )
        code = "&code=1" if result.contact_pending else ""  # the receipt asks for the 인증번호
        response = RedirectResponse(
            f"/complaints/{result.complaint_id}?filed=1{code}", status_code=303
        )
        remember(response, request, result.resident_token)
        return response

    add_recovery_routes(
        router,
        intake=portal.intake,
        tracker=portal.tracker,
        texts=portal.texts,
        page=page,
        remember=remember,
        resident_of=resident_of,
    )

    @router.get("/{path:path}", response_class=HTMLResponse, include_in_schema=False)
    async def not_found(request: Request, path: str) -> Response:
        """Any other address: a page in Korean, not an API error."""
        return await page(
            request, "not_found.html", {"title": "페이지를 찾을 수 없어요"}, status=404
        )

    return router


async def _quietly(call: Awaitable[Complaint | None]) -> Complaint | None:
    try:
        return await call
    except ServiceUnavailable:
        return None


def _about_resident_token(refused: Refused) -> bool:
    return "resident_token" in refused.message or any(
        name == "resident_token" for name, _ in refused.fields
    )
