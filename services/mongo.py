"""MongoDB through PyMongo's async API. Clients are made by a service's app, never at import."""

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.settings import MongoSettings

Document = dict[str, Any]
T = TypeVar("T")


def make_client(
    settings: MongoSettings, *, app_name: str, listeners: Sequence[monitoring.CommandListener] = ()
) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.uri.get_secret_value(),
        tz_aware=True,
        appname=f"sotong-{app_name}",
        serverSelectionTimeoutMS=10_000,
        event_listeners=list(listeners),
    )


def database(
    client: AsyncMongoClient[Document], settings: MongoSettings
) -> AsyncDatabase[Document]:
    return client[settings.database]


async def ping(client: AsyncMongoClient[Document]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


# -- lookups of many values ----------------------------------------------------------

IN_CHUNK = 25
"""Values per ``$in``. The embedded server's cost per value grows with the length of the
list (each candidate is checked against the list): per id, 0.045 ms of its CPU at 10 or
25, 0.075 ms at 100 and 0.295 ms at 500 for ``_id``, 0.13 / 0.30 / 1.15 ms for a
secondary index, 0.22 / 0.29 / 0.73 ms per document for an ``update_many`` — so a
batch's lookup of 500 complaints in one query cost it 6–9× what 20 queries of 25 do.
The pieces go one after the other: that server answers on one interpreter, so pieces
side by side only make its threads contend (and its answers to the driver's heartbeat
late), and on MongoDB a piece of 25 is one quick round trip. Measured with
``python -m tests.measure_in_lists``."""


def in_chunks(values: Iterable[T], size: int = IN_CHUNK) -> list[list[T]]:
    """The distinct values, in order of first appearance, in lists of at most ``size``."""
    distinct = list(dict.fromkeys(values))
    return [distinct[i : i + size] for i in range(0, len(distinct), size)]


async def find_in(
    collection: AsyncCollection[Document],
    field: str,
    values: Iterable[Any],
    *,
    where: Document | None = None,
    projection: Document | None = None,
    sort: Sequence[tuple[str, int]] | None = None,
) -> list[Document]:
    """Every document whose ``field`` is one of ``values`` (and matches ``where``): one
    ``$in`` query per :data:`IN_CHUNK` values. A ``sort`` orders each piece, so the
    documents of one value (all in one piece) come in that order."""
    where = where or {}
    found: list[Document] = []
    for chunk in in_chunks(values):
        query = {**where, field: {"$in": chunk}}
        found += await collection.find(query, projection, sort=sort).to_list()
    return found


async def update_in(
    collection: AsyncCollection[Document],
    field: str,
    values: Iterable[Any],
    update: Document,
    *,
    where: Document | None = None,
) -> int:
    """``update_many`` of the documents whose ``field`` is one of ``values``, in pieces of
    :data:`IN_CHUNK`; the number modified."""
    where = where or {}
    modified = 0
    for chunk in in_chunks(values):
        result = await collection.update_many({**where, field: {"$in": chunk}}, update)
        modified += result.modified_count
    return modified


async def delete_in(
    collection: AsyncCollection[Document], field: str, values: Iterable[Any]
) -> int:
    """``delete_many`` of the documents whose ``field`` is one of ``values``, in pieces."""
    deleted = 0
    for chunk in in_chunks(values):
        deleted += (await collection.delete_many({field: {"$in": chunk}})).deleted_count
    return deleted
