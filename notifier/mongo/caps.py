"""``notifier_recipient_days``: per contact (a keyed hash) and day, the deliveries sent."""

from collections.abc import Mapping, Sequence
from datetime import datetime

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.mongo import Document, find_in

RECIPIENT_DAYS = "notifier_recipient_days"


class MongoCaps:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.days: AsyncCollection[Document] = db[RECIPIENT_DAYS]

    async def ensure_cap_indexes(self) -> None:
        await self.days.create_indexes(
            [IndexModel([("expires_at", ASCENDING)], name="expire", expireAfterSeconds=0)]
        )

    async def counted(self, keys: Sequence[str]) -> dict[str, frozenset[str]]:
        if not keys:
            return {}
        found = await find_in(self.days, "_id", keys)
        return {str(doc["_id"]): frozenset(doc.get("deliveries", [])) for doc in found}

    async def count_many(
        self, added: Mapping[str, Sequence[str]], expires: Mapping[str, datetime]
    ) -> None:
        requests = [
            UpdateOne(
                {"_id": key},
                {
                    "$addToSet": {"deliveries": {"$each": list(ids)}},
                    "$setOnInsert": {"expires_at": expires[key]},
                },
                upsert=True,
            )
            for key, ids in added.items()
            if ids
        ]
        if requests:
            await self.days.bulk_write(requests, ordered=False)
