"""MongoDB through PyMongo's async API. Clients are made by a service's app, never at import."""

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from services.settings import MongoSettings

Document = dict[str, Any]


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
