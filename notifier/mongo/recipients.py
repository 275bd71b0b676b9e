"""``notifier_recipients``: each complaint's resident, keyed by complaint id."""

import contextlib
from collections.abc import Collection, Mapping, Sequence

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from notifier.mongo.common import only_duplicates, optional_str
from notifier.recipients import Recipient
from schemas import ComplaintFiled
from services.mongo import Document, find_in

RECIPIENTS = "notifier_recipients"


class MongoRecipients:
    """The residents in MongoDB; reads and writes by ``_id`` only."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.recipients: AsyncCollection[Document] = db[RECIPIENTS]

    async def remember(self, filed: ComplaintFiled) -> None:
        """Keep the resident's contact. The first ComplaintFiled wins; redeliveries change
        nothing, and a concurrent one that upserted first is the same document."""
        with contextlib.suppress(DuplicateKeyError):
            await self.recipients.update_one(
                {"_id": filed.complaint_id}, {"$setOnInsert": _recipient_doc(filed)}, upsert=True
            )

    async def recipient(self, complaint_id: str) -> Recipient | None:
        doc = await self.recipients.find_one({"_id": complaint_id})
        return None if doc is None else _recipient(doc)

    async def recipients_of(self, complaint_ids: Collection[str]) -> dict[str, Recipient]:
        if not complaint_ids:
            return {}
        found = await find_in(self.recipients, "_id", complaint_ids)
        return {str(doc["_id"]): _recipient(doc) for doc in found}

    async def remember_many(self, filings: Sequence[ComplaintFiled]) -> None:
        if not filings:
            return
        try:
            await self.recipients.bulk_write(
                [
                    UpdateOne(
                        {"_id": f.complaint_id}, {"$setOnInsert": _recipient_doc(f)}, upsert=True
                    )
                    for f in filings
                ],
                ordered=False,
            )
        except BulkWriteError as exc:
            only_duplicates(exc)

    async def add_photos(self, added: Mapping[str, Sequence[str]]) -> None:
        requests = [
            UpdateOne({"_id": cid}, {"$addToSet": {"photos": {"$each": list(ids)}}})
            for cid, ids in added.items()
            if ids
        ]
        if requests:
            await self.recipients.bulk_write(requests, ordered=False)


def _recipient_doc(filed: ComplaintFiled) -> Document:
    resident = filed.resident
    return {
        "receipt_number": filed.receipt_number,
        "name": resident.name,
        "phone": resident.phone,
        "email": resident.email,
        "notification_consent": resident.notification_consent,
        "channel_client": filed.channel_client,
        "photos": [p.photo_id for p in filed.photos],
        "filed_at": filed.occurred_at,
        "contact_unconfirmed": filed.contact_unconfirmed,
    }


def _recipient(doc: Document) -> Recipient:
    return Recipient(
        complaint_id=str(doc["_id"]),
        receipt_number=str(doc["receipt_number"]),
        notification_consent=bool(doc["notification_consent"]),
        name=optional_str(doc.get("name")),
        phone=optional_str(doc.get("phone")),
        email=optional_str(doc.get("email")),
        channel_client=optional_str(doc.get("channel_client")),
        photos=tuple(str(p) for p in doc.get("photos") or ()),
        contact_unconfirmed=bool(doc.get("contact_unconfirmed", False)),
    )
