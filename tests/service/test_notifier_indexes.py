"""Every query notifier's store makes on the hot path is served by an index, so its cost
does not grow with the number of stored complaints.

SecantusDB's explain of an update says nothing useful (COLLSCAN, empty parsedQuery), so a
write's filter is checked by explaining the equivalent find.
"""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from notifier.store import (
    DEFERRED,
    DELIVERIES,
    PENDING,
    RECIPIENT_DAYS,
    RECIPIENTS,
    MongoNotifierStore,
)
from services.mongo import Document

NOW = datetime(2025, 11, 25, 9, 30, tzinfo=UTC)
IDS = {"$in": ["a", "b", "c"]}

QUERIES: list[tuple[str, str, dict[str, Any], list[tuple[str, int]] | None]] = [
    ("recipients of a batch", RECIPIENTS, {"_id": IDS}, None),
    ("ledger records of a batch", DELIVERIES, {"_id": IDS}, None),
    ("a claim resumed, a delivery finished", DELIVERIES, {"_id": "a", "status": "sending"}, None),
    ("a delivery marked", DELIVERIES, {"_id": "a"}, None),
    (
        "parked events of a batch",
        PENDING,
        {"complaint_id": IDS},
        [("complaint_id", 1), ("sequence", 1)],
    ),
    ("parked events taken out", PENDING, {"_id": IDS}, None),
    ("held messages of a batch", DEFERRED, {"complaint_id": IDS}, None),
    ("held messages taken out", DEFERRED, {"_id": IDS}, None),
    ("held messages due", DEFERRED, {"release_at": {"$lte": NOW}}, [("release_at", 1)]),
    ("a batch's daily counts per recipient", RECIPIENT_DAYS, {"_id": IDS}, None),
    (
        "claims left sending past their lease (the sweep)",
        DELIVERIES,
        {"status": "sending", "claimed_at": {"$lt": NOW}},
        [("status", 1), ("claimed_at", 1)],
    ),
    (
        "deliveries retrying past their lease (the sweep)",
        DELIVERIES,
        {"status": "retrying", "retry_at": {"$lt": NOW}},
        [("status", 1), ("retry_at", 1)],
    ),
    (
        "a swept claim re-queued",
        DELIVERIES,
        {"_id": "a", "status": "sending", "claimed_at": NOW},
        None,
    ),
    (
        "a swept retry re-queued",
        DELIVERIES,
        {"_id": "a", "status": "retrying", "claimed_at": NOW, "retry_at": NOW},
        None,
    ),
]


@pytest.mark.parametrize(
    ("what", "collection", "query", "sort"), QUERIES, ids=[q[0] for q in QUERIES]
)
async def test_a_hot_path_query_is_served_by_an_index(
    mongo_db: AsyncDatabase[Document],
    what: str,
    collection: str,
    query: dict[str, Any],
    sort: list[tuple[str, int]] | None,
) -> None:
    await MongoNotifierStore(mongo_db).ensure_indexes()
    cursor = mongo_db[collection].find(query)
    if sort:
        cursor = cursor.sort(sort)
    plan = json.dumps(await cursor.explain(), default=str)

    assert "COLLSCAN" not in plan, f"{what}: {plan}"
    assert "IXSCAN" in plan or "IDHACK" in plan, f"{what}: {plan}"
