"""Throw every read model away and build them again from the event store.

For after a change to the projection, or to prove the read side holds nothing the log
does not. The complaint read models are the only stored read models (the queue, search
and statistics are queries over them), so rebuilding them rebuilds everything.

Each read model is replaced in place by the one projected from its whole history, so
readers never see a half-empty read side and a rebuild may run while the tracker
ingests: of two writers the one that read more events wins.

    python -m tracker.rebuild        # reads SOTONG_MONGO_* like the tracker service
"""

import asyncio
import logging

from pymongo import AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.mongo import Document
from tracker.projection import TRACKED_EVENT, ReadModel, TrackedEvent, project
from tracker.store import DUPLICATE_KEY, TrackerStore

log = logging.getLogger("sotong.tracker")

CHUNK = 1000


async def rebuild(db: AsyncDatabase[Document]) -> int:
    """Rebuild every read model from the event store; the number of complaints.

    Written in place: each read model is replaced by the one projected from its whole
    history unless a concurrent ingest already stored one built from more events (events
    are only ever added, so more is newer). Read models with no events behind them are
    deleted. No collection is dropped or renamed, so a rebuild while the tracker ingests
    loses nothing (a rename under concurrent writes is not atomic on every server).
    """
    store = TrackerStore(db)
    await store.ensure_indexes()
    count = 0
    known: set[str] = set()
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
            count += await _replace(store, pending, known)
            pending = []
    if events:
        pending.append(project(events))
    count += await _replace(store, pending, known)

    unseen = [
        str(doc["_id"])
        async for doc in store.complaints.find({}, projection={"_id": True})
        if str(doc["_id"]) not in known
    ]
    strays: list[str] = []
    for i in range(0, len(unseen), CHUNK):
        chunk = unseen[i : i + CHUNK]
        # Complaints whose first events arrived during the scan are not strays.
        logged = set(await store.events.distinct("complaint_id", {"complaint_id": {"$in": chunk}}))
        strays += [cid for cid in chunk if cid not in logged]
    for i in range(0, len(strays), CHUNK):
        await store.complaints.delete_many({"_id": {"$in": strays[i : i + CHUNK]}})
    log.info("read models rebuilt", extra={"complaints": count, "strays_deleted": len(strays)})
    return count


async def _replace(store: TrackerStore, models: list[ReadModel], known: set[str]) -> int:
    if not models:
        return 0
    known.update(str(model["_id"]) for model in models)
    writes = [
        ReplaceOne(
            {"_id": model["_id"], "event_count": {"$lte": model["event_count"]}},
            model,
            upsert=True,
        )
        for model in models
    ]
    try:
        await store.complaints.bulk_write(writes, ordered=False)
    except BulkWriteError as exc:  # a newer read model won: a duplicate _id on upsert
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise
    return len(models)


async def main() -> int:
    from services import logs
    from services.mongo import database, make_client
    from tracker.settings import TrackerSettings

    settings = TrackerSettings()
    logs.configure("tracker", settings.log_level)
    client: AsyncMongoClient[Document] = make_client(settings.mongo, app_name="tracker-rebuild")
    try:
        return await rebuild(database(client, settings.mongo))
    finally:
        await client.close()


if __name__ == "__main__":
    print(f"rebuilt {asyncio.run(main())} complaint read models")
