"""Photos over HTTP: upload (``POST /v1/photos``), attach at filing (``photos`` in the
filing's body) or by a correction (정정, ``photos`` in the resident's ``correct``), and
serve (``GET /v1/photos/{id}`` and ``/thumbnail``).

Who may attach an upload: whoever holds its id. An upload is anonymous (a resident has
no account), and the id is the capability: 128 random bits from ``secrets``, answered
only to the request that uploaded it and never listed anywhere before it is attached,
so nobody attaches another's upload by guessing: 2¹²⁸ possible ids, of which the few
uploaded in the last day are live, tried at the filing and correction rate limits. Once
attached to a complaint, a photo is that complaint's: another filing or correction
naming it is refused.

Served only to the resident (the complaint's tracking token in ``X-Tracking-Token``, or in
``X-Resident-Token`` the filer's resident token or one bound to it by recovery) and
the department responsible now (its ``X-Api-Key``). Which department that is, the tracker
says over HTTP (``intake/tracker_client.py``): it follows every assignment and transfer,
whereas the filing names no department and intake consumes no lifecycle events; one
look-up per department request is cheaper than a second read model kept in step.
With ``open311_media_urls`` on, ``/public`` serves an attached photo to anyone (Open311's
``media_url``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, Security
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from intake.photo_store import SWEPT, PhotoStore, StoredPhoto
from intake.photos import PHOTO_ID, Limits, PhotoRefused, new_photo_id, process
from intake.store import SubmissionStore
from intake.tracker_client import TrackerClient, TrackerUnavailable
from schemas.events import PhotoRef
from services.http import ApiError
from services.keys import API_KEY, ApiKeys
from services.openapi import refusals
from services.runtime import Clock

PhotoIdPath = Annotated[str, Path(pattern=PHOTO_ID, description="The id the upload answered.")]


class UploadedPhoto(BaseModel):
    photo_id: str
    content_type: str
    size: int
    width: int
    height: int


@dataclass
class Photos:
    """Attaching uploaded photos to a complaint's submission: at filing, or later by the
    resident's correction."""

    photos: PhotoStore
    store: SubmissionStore
    per_complaint: int
    clock: Clock

    async def attach(self, photo_ids: Sequence[str], submission_id: str) -> list[PhotoRef]:
        """The photos' references, each now attached to ``submission_id``; refused (422,
        naming ``photos``) when one was never uploaded or belongs to another complaint."""
        wanted = list(dict.fromkeys(photo_ids))
        if len(wanted) > self.per_complaint:
            raise ApiError(422, "invalid_request", f"photos: at most {self.per_complaint}")
        if not wanted:
            return []
        found = await self.photos.find(wanted)
        for photo_id in wanted:
            await self._claim(photo_id, found.get(photo_id), submission_id)
        return [found[i].ref for i in wanted]

    async def add(self, photo_ids: Sequence[str], complaint_id: str) -> list[PhotoRef]:
        """Attach more photos to a filed complaint (정정: 사진 추가); their references.

        Refused (422 naming ``photos``) when one was never uploaded or is another
        complaint's, or when the complaint would hold more than ``per_complaint`` with
        those attached already. A photo attached to this complaint already is taken
        again (a retried correction), and counted once. The count is taken again after
        attaching: a correction racing another past the limit detaches its own photos and
        is refused (two racing may both be), so the limit holds."""
        wanted = list(dict.fromkeys(photo_ids))
        if not wanted:
            return []
        submission_id = await self.store.submission_of(complaint_id)
        if submission_id is None:
            raise ApiError(422, "invalid_request", "photos: this complaint cannot take photos")
        attached = set(await self.photos.attached_to(submission_id))
        self._within_limit(attached | set(wanted), attached)
        found = await self.photos.find(wanted)
        claimed: list[str] = []
        try:
            for photo_id in wanted:
                if await self._claim(photo_id, found.get(photo_id), submission_id):
                    claimed.append(photo_id)
            if claimed:
                self._within_limit(set(await self.photos.attached_to(submission_id)), attached)
        except ApiError:
            for photo_id in claimed:
                await self.photos.detach(photo_id, submission_id, self.clock())
            raise
        return [found[i].ref for i in wanted]

    def _within_limit(self, total: set[str], attached: set[str]) -> None:
        if len(total) > self.per_complaint:
            raise ApiError(
                422,
                "invalid_request",
                f"photos: at most {self.per_complaint} per complaint "
                f"({len(attached)} attached already)",
            )

    async def _claim(self, photo_id: str, stored: StoredPhoto | None, submission_id: str) -> bool:
        """Attach one photo to ``submission_id``; whether this call attached it (False:
        it was attached to it already)."""
        if stored is None:
            raise ApiError(422, "invalid_request", f"photos: no photo {photo_id} was uploaded")
        owner = stored.submission_id
        if owner == submission_id:
            return False
        if owner == SWEPT:  # being deleted: as good as never uploaded
            raise ApiError(422, "invalid_request", f"photos: no photo {photo_id} was uploaded")
        if owner is not None and await self.store.find_by_submissions({owner}):
            raise ApiError(
                422, "invalid_request", f"photos: {photo_id} belongs to another complaint"
            )
        if not await self.photos.attach(photo_id, submission_id, replacing=owner):
            raise ApiError(
                409, "conflict", f"photos: {photo_id} was just attached to another complaint"
            )
        return True


def photo_routes(
    *,
    photos: PhotoStore,
    store: SubmissionStore,
    keys: ApiKeys,
    tracker: TrackerClient,
    limits: Limits,
    public: bool,
    clock: Clock,
) -> APIRouter:
    router = APIRouter(tags=["photos"])

    @router.post(
        "/v1/photos",
        status_code=201,
        response_model=UploadedPhoto,
        responses=refusals(413, 422, 429),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def upload(request: Request) -> UploadedPhoto:
        """Upload one photo (JPEG or PNG, judged by its content) as the form field ``file``;
        pass the answered ``photo_id`` in the filing's ``photos``. All metadata (EXIF with
        its GPS position included) is removed before the photo is kept."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(422, "invalid_request", "file: send the photo as multipart/form-data")
        try:
            form = await request.form(max_files=1, max_fields=0, max_part_size=limits.max_bytes)
        except Exception as exc:  # python-multipart's refusals: malformed or too many parts
            raise ApiError(422, "invalid_request", f"file: {exc}") from exc
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "invalid_request", "file: a file field named 'file' is needed")
            data = await upload.read(limits.max_bytes + 1)
        finally:
            await form.close()
        try:
            processed = process(data, limits)
        except PhotoRefused as exc:
            code = "payload_too_large" if exc.status == 413 else "invalid_request"
            raise ApiError(exc.status, code, f"file: {exc.reason}") from exc
        photo_id = new_photo_id()
        ref = await photos.save(photo_id, processed, clock())
        return UploadedPhoto(
            photo_id=photo_id,
            content_type=ref.content_type,
            size=ref.size,
            width=processed.width,
            height=processed.height,
        )

    async def serve(
        photo_id: str, *, thumbnail: bool, token: str | None, api_key: str | None
    ) -> Response:
        if not token and not api_key:
            raise ApiError(
                401, "unauthorized", "X-Tracking-Token, X-Resident-Token or X-Api-Key is required"
            )
        stored = (await photos.find([photo_id])).get(photo_id)
        if stored is None or stored.submission_id is None:
            raise ApiError(404, "not_found", "no such photo")
        filed = (await store.find_by_submissions({stored.submission_id})).get(stored.submission_id)
        if filed is None:
            raise ApiError(404, "not_found", "no such photo")
        if token:  # the tracking token, the filer's resident token or one bound since
            if not await store.token_matches(filed.filed.complaint_id, token):
                raise ApiError(404, "not_found", "no such photo")
        else:
            department = keys.department(api_key)
            if department is None:
                raise ApiError(401, "unauthorized", "a valid X-Api-Key header is required")
            try:
                tracked = await tracker.complaint(filed.filed.complaint_id)
            except TrackerUnavailable as exc:
                raise ApiError(
                    503, "unavailable", "who is responsible cannot be checked now"
                ) from exc
            if tracked is None or tracked.department is None:
                raise ApiError(404, "not_found", "no such photo")
            if tracked.department.code != department:
                raise ApiError(403, "forbidden", "the photo is the responsible department's")
        return await _bytes(photo_id, thumbnail=thumbnail)

    async def _bytes(photo_id: str, *, thumbnail: bool) -> Response:
        kept = await photos.read(photo_id, thumbnail=thumbnail)
        if kept is None:
            raise ApiError(404, "not_found", "no such photo")
        data, media_type = kept
        return Response(data, media_type=media_type)

    token_header = Header(
        alias="X-Tracking-Token", description="The complaint's tracking token (the resident)."
    )
    resident_header = Header(
        alias="X-Resident-Token",
        description="Or the resident token of who filed it (or of a device bound by recovery).",
    )
    served = {
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The photo."},
        **refusals(401, 403, 404),
    }

    @router.get("/v1/photos/{photo_id}", response_class=Response, responses=served)
    async def photo(
        photo_id: PhotoIdPath,
        token: Annotated[str | None, token_header] = None,
        api_key: Annotated[str | None, Security(API_KEY)] = None,
        resident: Annotated[str | None, resident_header] = None,
    ) -> Response:
        """The photo, to the resident or the department responsible now."""
        return await serve(photo_id, thumbnail=False, token=token or resident, api_key=api_key)

    @router.get("/v1/photos/{photo_id}/thumbnail", response_class=Response, responses=served)
    async def thumb(
        photo_id: PhotoIdPath,
        token: Annotated[str | None, token_header] = None,
        api_key: Annotated[str | None, Security(API_KEY)] = None,
        resident: Annotated[str | None, resident_header] = None,
    ) -> Response:
        """Its thumbnail (JPEG), to the same."""
        return await serve(photo_id, thumbnail=True, token=token or resident, api_key=api_key)

    if public:

        @router.get(
            "/v1/photos/{photo_id}/public",
            response_class=Response,
            responses={200: served[200], **refusals(404)},
        )
        async def public_photo(photo_id: PhotoIdPath) -> Response:
            """An attached photo for Open311's ``media_url`` (the district allows it)."""
            stored = (await photos.find([photo_id])).get(photo_id)
            if stored is None or stored.submission_id is None:
                raise ApiError(404, "not_found", "no such photo")
            if not await store.find_by_submissions({stored.submission_id}):
                raise ApiError(404, "not_found", "no such photo")
            return await _bytes(photo_id, thumbnail=False)

    return router
