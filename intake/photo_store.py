"""Photos in MongoDB GridFS (bucket ``intake_photos``): the cleaned photo under its id,
its thumbnail under ``{id}.thumb``. A photo is uploaded before the filing that names it;
the filing attaches it to its submission (``metadata.submission_id``), and only an
attached photo is ever served.

Every filter names ``_id`` alone or ``_id`` and ``metadata.submission_id``, which one
index covers entirely (SecantusDB plans an index only then).
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from intake.photos import Processed
from schemas.events import PhotoRef
from services.mongo import Document

BUCKET = "intake_photos"
THUMB = ".thumb"


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

    async def read(self, photo_id: str, *, thumbnail: bool) -> tuple[bytes, str] | None:
        """The bytes and media type, or None."""
        ...


class MongoPhotoStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)
        self.files: AsyncCollection[Document] = db[f"{BUCKET}.files"]

    async def ensure_indexes(self) -> None:
        await self.files.create_indexes(
            [IndexModel([("_id", ASCENDING), ("metadata.submission_id", ASCENDING)], name="attach")]
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
            {"$set": {"metadata.submission_id": submission_id}},
        )
        return result.matched_count == 1

    async def read(self, photo_id: str, *, thumbnail: bool) -> tuple[bytes, str] | None:
        file_id = photo_id + THUMB if thumbnail else photo_id
        try:
            stream = await self.bucket.open_download_stream(file_id)
        except NoFile:
            return None
        meta = stream.metadata or {}
        return await stream.read(), str(meta.get("content_type", "application/octet-stream"))
