"""The whole original of a dead letter too large to carry it: kept in MongoDB, found by
the letter's event id (the letter itself carries an excerpt, the size and the SHA-256)."""

from datetime import UTC, datetime

from bson import Binary
from pymongo.asynchronous.database import AsyncDatabase

from schemas.events import DeadLetter
from services.mongo import Document

COLLECTION = "dead_letter_originals"


class DeadLetterArchive:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.col = db[COLLECTION]

    async def keep(self, letter: DeadLetter, value: bytes) -> None:
        """Store (or, for the same letter again, overwrite) the original value."""
        await self.col.replace_one(
            {"_id": letter.event_id},
            {
                "_id": letter.event_id,
                "value": Binary(value),
                "sha256": letter.original_sha256,
                "topic": letter.original_topic,
                "partition": letter.original_partition,
                "offset": letter.original_offset,
                "consumer": letter.consumer,
                "stored_at": datetime.now(UTC),
            },
            upsert=True,
        )

    async def original(self, letter_id: str) -> bytes | None:
        doc = await self.col.find_one({"_id": letter_id})
        return None if doc is None else bytes(doc["value"])
