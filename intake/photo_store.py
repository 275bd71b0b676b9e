"""Photos in MongoDB GridFS (bucket ``intake_photos``): the cleaned photo under its id,
its thumbnail under ``{id}.thumb``. A photo is uploaded before the filing that names it;
the filing attaches it to its submission (``metadata.submission_id``), and only an
attached photo is ever served.

A correction (정정) attaches more photos to the filed complaint's submission later, within
the per-complaint limit counted over what is attached already (:meth:`attached_to`).

Every filter names ``_id`` alone or ``_id`` and ``metadata.submission_id``, which one
index covers entirely (SecantusDB plans an index only then), ``metadata.submission_id``
alone (a complaint's photos, its own index), or — the sweep — only
``metadata.unattached_since``, which a photo carries from upload until it is attached
(thumbnails never do), and its own index covers.

A photo nobody attached (the resident gave up, or a script uploads and never files) is
deleted by :meth:`MongoPhotoStore.sweep` once it is old enough, with its thumbnail: the
store does not grow with uploads that were never filings.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from prometheus_client import Counter
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from intake.photos import Processed
from schemas.events import PhotoRef
from services.mongo import Document

log = logging.getLogger("sotong.intake.photos")

BUCKET = "intake_photos"
THUMB = ".thumb"
SWEPT = "(swept)"
"""What a photo being deleted is attached to: no filing can attach it any more."""


@dataclass(frozen=True)
class StoredPhoto:
    ref: PhotoRef
    submission_id: str | None


class PhotoStore(Protocol):
    async def ensure_indexes(self) -> None: ...

    async def save(self, photo_id: str, photo: Processed, at: datetime) -> PhotoRef:
        """Keep a cleaned photo and its thumbnail, attached to nothing yet."""
        ...

    async def find(self, photo_ids: Collection[str]) -> dict[str, StoredPhoto]: ...

    async def attach(self, photo_id: str, submission_id: str, *, replacing: str | None) -> bool:
        """Attach the photo to a submission if it is still attached to ``replacing``."""
        ...

    async def attached_to(self, submission_id: str) -> list[str]:
        """The ids of the photos attached to a submission (its complaint's photos)."""
        ...

    async def detach(self, photo_id: str, submission_id: str, at: datetime) -> bool:
        """Undo an attach that a refusal made moot: unattached since ``at`` again (the
        sweep takes it in time), if still attached to ``submission_id``."""
        ...

    async def read(self, photo_id: str, *, thumbnail: bool) -> tuple[bytes, str] | None:
        """The bytes and media type, or None."""
        ...

    async def sweep(self, uploaded_before: datetime, *, at_most: int) -> int:
        """Delete up to ``at_most`` photos uploaded before then and never attached, with
        their thumbnails; how many. A photo a filing attaches meanwhile is kept."""
        ...


class MongoPhotoStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)
        self.files: AsyncCollection[Document] = db[f"{BUCKET}.files"]

    async def ensure_indexes(self) -> None:
        await self.files.create_indexes(
            [
                IndexModel(
                    [("_id", ASCENDING), ("metadata.submission_id", ASCENDING)], name="attach"
                ),
                IndexModel([("metadata.unattached_since", ASCENDING)], name="unattached"),
                IndexModel([("metadata.submission_id", ASCENDING)], name="submission"),
            ]
        )

    async def save(self, photo_id: str, photo: Processed, at: datetime) -> PhotoRef:
        ref = PhotoRef(photo_id=photo_id, content_type=photo.media_type, size=len(photo.data))
        common = {"uploaded_at": at, "submission_id": None}
        await self.bucket.upload_from_stream_with_id(
            photo_id + THUMB,
            photo_id + THUMB,
            photo.thumbnail,
            metadata=common | {"content_type": "image/jpeg", "thumbnail_of": photo_id},
        )
        await self.bucket.upload_from_stream_with_id(
            photo_id,
            photo_id,
            photo.data,
            metadata=common
            | {
                "unattached_since": at,
                "content_type": ref.content_type,
                "size": ref.size,
                "width": photo.width,
                "height": photo.height,
            },
        )
        return ref

    async def find(self, photo_ids: Collection[str]) -> dict[str, StoredPhoto]:
        if not photo_ids:
            return {}
        found: dict[str, StoredPhoto] = {}
        async for doc in self.files.find({"_id": {"$in": list(photo_ids)}}):
            meta = doc.get("metadata") or {}
            ref = PhotoRef(
                photo_id=str(doc["_id"]),
                content_type=str(meta["content_type"]),
                size=int(doc["length"]),
            )
            found[ref.photo_id] = StoredPhoto(ref, meta.get("submission_id"))
        return found

    async def attach(self, photo_id: str, submission_id: str, *, replacing: str | None) -> bool:
        result = await self.files.update_one(
            {"_id": photo_id, "metadata.submission_id": replacing},
            {
                "$set": {"metadata.submission_id": submission_id},
                "$unset": {"metadata.unattached_since": ""},
            },
        )
        return result.matched_count == 1

    async def attached_to(self, submission_id: str) -> list[str]:
        found = self.files.find({"metadata.submission_id": submission_id}, {"_id": 1})
        return [str(doc["_id"]) async for doc in found]

    async def detach(self, photo_id: str, submission_id: str, at: datetime) -> bool:
        result = await self.files.update_one(
            {"_id": photo_id, "metadata.submission_id": submission_id},
            {"$set": {"metadata.submission_id": None, "metadata.unattached_since": at}},
        )
        return result.matched_count == 1

    async def sweep(self, uploaded_before: datetime, *, at_most: int) -> int:
        old = {"metadata.unattached_since": {"$lt": uploaded_before}}
        ids = [str(d["_id"]) async for d in self.files.find(old, {"_id": 1}).limit(at_most)]
        swept = 0
        for photo_id in ids:
            # claimed first, as attach does: a filing attaching it now wins or loses whole
            claimed = await self.files.update_one(
                {"_id": photo_id, "metadata.submission_id": None},
                {
                    "$set": {"metadata.submission_id": SWEPT},
                    "$unset": {"metadata.unattached_since": ""},
                },
            )
            if claimed.modified_count != 1:
                continue
            for file_id in (photo_id + THUMB, photo_id):
                with contextlib.suppress(NoFile):
                    await self.bucket.delete(file_id)
            swept += 1
        return swept

    async def read(self, photo_id: str, *, thumbnail: bool) -> tuple[bytes, str] | None:
        file_id = photo_id + THUMB if thumbnail else photo_id
        try:
            stream = await self.bucket.open_download_stream(file_id)
        except NoFile:
            return None
        meta = stream.metadata or {}
        return await stream.read(), str(meta.get("content_type", "application/octet-stream"))


async def sweep_forever(
    photos: PhotoStore,
    *,
    clock: Callable[[], datetime],
    keep: timedelta,
    interval: float,
    swept: Counter,
    at_most: int = 500,
) -> None:
    """Every ``interval`` seconds, delete the photos left unattached longer than ``keep``."""
    while True:
        try:
            while (n := await photos.sweep(clock() - keep, at_most=at_most)) > 0:
                swept.inc(n)
                log.info("unattached photos deleted", extra={"count": n})
                if n < at_most:
                    break
        except Exception:
            log.exception("photo sweep failed; will try again")
        await asyncio.sleep(interval)
