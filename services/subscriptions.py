"""Which consumer group reads which topics, recorded in MongoDB when a service starts.

The broker cannot say it (Tansu's DescribeGroups answers without member metadata), and a
group that has not committed yet leaves no trace on a topic; a clean stop needs both to
know that a consumer which has not read anything yet still has a backlog to drain.
"""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.mongo import Document

COLLECTION = "sotong_subscriptions"


def of(broker: Any) -> dict[str, list[str]]:
    """Group id → topic names (as on the broker, prefix included) of a FastStream broker."""
    found: dict[str, set[str]] = {}
    for subscriber in list(broker.subscribers):
        group = getattr(subscriber, "group_id", None)
        if group:
            found.setdefault(str(group), set()).update(str(t) for t in subscriber.topic_names)
    return {group: sorted(names) for group, names in found.items()}


async def record(db: AsyncDatabase[Document], service: str, broker: Any, at: datetime) -> None:
    for group, names in of(broker).items():
        await db[COLLECTION].update_one(
            {"_id": group}, {"$set": {"service": service, "topics": names, "at": at}}, upsert=True
        )


async def recorded(db: AsyncDatabase[Document], since: datetime) -> dict[str, list[str]]:
    """Groups recorded by services started since ``since`` (older records may name groups
    no longer in the code)."""
    return {
        str(doc["_id"]): [str(t) for t in doc.get("topics", [])]
        async for doc in db[COLLECTION].find({"at": {"$gte": since}})
    }
