"""Throw every read model away and build them again from the event store.

For after a change to the projection, or to prove the read side holds nothing the log
does not. The complaint read models are the only stored read models (the queue, search
and statistics are queries over them), so rebuilding them rebuilds everything.

The new documents are written to a side collection that then replaces the live one in
one rename, so readers never see a half-empty read side. Events stored while the
rebuild ran may have refreshed the old collection only: their complaints are refreshed
again once the new one is in place.

    python -m tracker.rebuild        # reads SOTONG_MONGO_* like the tracker service
"""

import asyncio
import logging
from datetime import timedelta

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from schemas.events import utcnow
from services.mongo import Document
from tracker.projection import TRACKED_EVENT, ReadModel, TrackedEvent, project
from tracker.store import COMPLAINTS, TrackerStore, complaint_indexes

log = logging.getLogger("sotong.tracker")

REBUILDING = f"{COMPLAINTS}_rebuilding"
CHUNK = 1000
CLOCK_SKEW = timedelta(minutes=1)
"""Between this process's clock and the trackers' that stamp ``stored_at``."""


async def rebuild(db: AsyncDatabase[Document]) -> int:
    """Drop and rebuild every read model from the event store; the number of complaints."""
    store = TrackerStore(db)
    await store.ensure_indexes()
    started = utcnow()
    side = db[REBUILDING]
    await side.drop()
    await side.create_indexes(complaint_indexes())

    count = 0
    pending: list[ReadModel] = []
    current: str | None = None
    events: list[TrackedEvent] = []
    cursor = store.events.find(
        {}, projection={"complaint_id": True, "payload": True}, sort=[("complaint_id", 1)]
    )
    async for doc in cursor:
        if doc["complaint_id"] != current and events:
            pending.append(project(events))
            events = []
        current = doc["complaint_id"]
        events.append(TRACKED_EVENT.validate_python(doc["payload"]))
        if len(pending) >= CHUNK:
            await side.insert_many(pending)
            count, pending = count + len(pending), []
    if events:
        pending.append(project(events))
    if pending:
        await side.insert_many(pending)
        count += len(pending)

    await side.rename(COMPLAINTS, dropTarget=True)
    # A scan without an index: once per rebuild, against an index on every insert.
    late = await store.events.distinct(
        "complaint_id", {"stored_at": {"$gte": started - CLOCK_SKEW}}
    )
    await store.refresh_many(late)
    log.info("read models rebuilt", extra={"complaints": count, "refreshed_after": len(late)})
    return count


async def main() -> int:
    from services import logs
    from services.mongo import database, make_client
    from tracker.app import TrackerSettings

    settings = TrackerSettings()
    logs.configure("tracker", settings.log_level)
    client: AsyncMongoClient[Document] = make_client(settings.mongo, app_name="tracker-rebuild")
    try:
        return await rebuild(database(client, settings.mongo))
    finally:
        await client.close()


if __name__ == "__main__":
    print(f"rebuilt {asyncio.run(main())} complaint read models")
