"""Throw every read model away and build them again from the event store.

For after a change to the projection, to prove the read side holds nothing the log
does not, and once after upgrading from a tracker that made read models for complaint
ids nobody filed (it deletes them; their events stay in the log). The complaint read
models are the only stored read models (the queue, search and statistics are queries
over them), so rebuilding them rebuilds everything.

Each read model is replaced in place by the one projected from its whole history, with
the same conditional replace the ingest uses (``TrackerStore.replace_read_models``), so
readers never see a half-empty read side and a rebuild may run while the tracker
ingests: of two writers the one that read more events wins, and of two that read as many
the later one, which is what makes a rebuild after a projection change take effect.

    python -m tracker.rebuild        # reads SOTONG_MONGO_* like the tracker service
"""

import asyncio
import logging

from pymongo import AsyncMongoClient

from services.mongo import Document
from tracker.projection import ReadModel, read_model_of
from tracker.store import MongoTrackerStore, TrackerStore

log = logging.getLogger("sotong.tracker")

CHUNK = 1000


async def rebuild(store: TrackerStore) -> int:
    """Rebuild every read model from the event store; the number of complaints.

    Read models with no filing behind them are deleted: those of complaints the log does
    not hold, and the phantoms an older tracker made from a command or a rejection for a
    complaint id intake never issued. Their events stay in the log. No collection is
    dropped or renamed, so a rebuild while the tracker ingests loses nothing (a rename
    under concurrent writes is not atomic on every server).
    """
    await store.ensure_indexes()
    known: set[str] = set()
    pending: list[ReadModel] = []
    async for events in store.all_histories():
        if (model := read_model_of(events)) is not None:
            pending.append(model)
        if len(pending) >= CHUNK:
            await _replace(store, pending, known)
            pending = []
    await _replace(store, pending, known)

    unseen = [cid for cid in await store.read_model_ids() if cid not in known]
    strays: list[str] = []
    for i in range(0, len(unseen), CHUNK):
        chunk = unseen[i : i + CHUNK]
        # Complaints whose filing arrived during the scan are not strays.
        filed = await store.filed(chunk)
        strays += [cid for cid in chunk if cid not in filed]
    for i in range(0, len(strays), CHUNK):
        await store.delete_read_models(strays[i : i + CHUNK])
    log.info("read models rebuilt", extra={"complaints": len(known), "strays_deleted": len(strays)})
    return len(known)


async def _replace(store: TrackerStore, models: list[ReadModel], known: set[str]) -> None:
    if models:
        known.update(model.complaint_id for model in models)
        await store.replace_read_models(models)


async def main() -> int:
    from services import logs
    from services.mongo import database, make_client
    from tracker.settings import TrackerSettings

    settings = TrackerSettings()
    logs.configure("tracker", settings.log_level)
    client: AsyncMongoClient[Document] = make_client(settings.mongo, app_name="tracker-rebuild")
    try:
        return await rebuild(MongoTrackerStore(database(client, settings.mongo)))
    finally:
        await client.close()


if __name__ == "__main__":
    print(f"rebuilt {asyncio.run(main())} complaint read models")
