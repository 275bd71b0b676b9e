"""What a batch costs on the real MongoDB-wire server: the same few commands for 5
complaints as for 25 (counted with PyMongo command monitoring), and every query an index
serves (checked with ``explain`` on the equivalent find)."""

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from routing.app import case_detection
from routing.catalogue import Catalogue
from routing.classifier import Classifier
from routing.deadlines import calendar
from routing.handlers import Routing, RoutingMetrics
from routing.lifecycle import Lifecycle
from routing.settings import RoutingSettings
from routing.store import COLLECTION, LOADS, MongoRoutingStore
from routing.texts import shipped
from schemas import ComplaintFiled
from schemas.commands import StartSiteCheck
from services.mongo import Document
from tests.conftest import Backends
from tests.fakes.routing import RecordingPublish, SettableClock
from tests.mongo_commands import Commands
from tests.service.test_routing_service import DEPT, filed


@pytest.fixture
async def counted(
    backends: Backends, trained_classifier: Classifier
) -> AsyncIterator[tuple[Routing, Commands, AsyncDatabase[Document]]]:
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        backends.mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    db = client[f"test_{uuid.uuid4().hex[:12]}"]
    store = MongoRoutingStore(db)
    await store.ensure_indexes()
    service = Routing(
        store=store,
        catalogue=Catalogue.load(),
        lifecycle=Lifecycle(),
        texts=shipped(),
        publish=RecordingPublish(),
        metrics=RoutingMetrics(CollectorRegistry()),
        calendar=calendar(),
        classifier=trained_classifier,
        on_duplicate=lambda _: None,
        clock=SettableClock(),
    )
    service.cases = await case_detection(RoutingSettings(), trained_classifier)
    try:
        yield service, commands, db
    finally:
        await client.drop_database(db.name)
        await client.close()


def resident(complaint: ComplaintFiled) -> ComplaintFiled:
    """A filing with its resident's token hash, so both case lookups run."""
    return complaint.model_copy(update={"resident_token_hash": complaint.complaint_id * 8})


async def cost(commands: Commands, work: Any) -> Counter[str]:
    commands.seen.clear()
    await work
    return Counter(commands.seen)


async def test_a_batch_costs_the_same_commands_for_5_complaints_as_for_25(
    counted: tuple[Routing, Commands, AsyncDatabase[Document]],
) -> None:
    service, commands, _ = counted
    small = [resident(filed(f"s{n}")) for n in range(5)]
    large = [resident(filed(f"l{n}", dong="연희동")) for n in range(25)]
    filing_small = await cost(commands, service.handle(small))
    filing_large = await cost(commands, service.handle(large))
    assert filing_small == filing_large
    # loads, the case lookups (반복민원 by resident, 중복민원 by place); insert; counters, clear
    assert filing_large == {"find": 3, "insert": 1, "update": 2}
    moving_small = await cost(
        commands,
        service.handle([StartSiteCheck(actor=DEPT, complaint_id=c.complaint_id) for c in small]),
    )
    moving_large = await cost(
        commands,
        service.handle([StartSiteCheck(actor=DEPT, complaint_id=c.complaint_id) for c in large]),
    )
    assert moving_small == moving_large
    # the complaints, the cases' linked complaints (중복민원); write and clear
    assert moving_large == {"find": 2, "update": 2}
    loads = await service.store.loads([h.handler_id for h in service.catalogue.rosters[DEPT]])
    assert sum(load.open for load in loads.values()) == 30


async def test_every_query_routing_makes_is_served_by_an_index(
    counted: tuple[Routing, Commands, AsyncDatabase[Document]],
) -> None:
    service, _, db = counted
    await service.handle([filed(f"x{n}") for n in range(3)])
    now = SettableClock().now
    queries: list[tuple[str, Document]] = [
        (COLLECTION, {"_id": {"$in": ["x0", "x1"]}}),  # get_many, the guarded writes
        (COLLECTION, {"_id": "x0", "sequence": 3}),  # write_many, clear_outboxes
        (COLLECTION, {"outbox_pending": True}),  # the relay
        (COLLECTION, {"loads_pending": True}),  # settling loads after a crash
        (COLLECTION, {"outbox_pending": True, "updated_at": {"$lte": now}}),  # relay, grace
        (COLLECTION, {"loads_pending": True, "updated_at": {"$lte": now}}),  # loads, grace
        (COLLECTION, {"next_alert_at": {"$lte": now}}),  # the deadline watcher
        (LOADS, {"_id": {"$in": ["roads-1", "roads-2"]}}),  # handler loads
        # the case lookups at filing (반복민원, 중복민원) and a case's linked complaints
        (COLLECTION, {"repeat_key": {"$in": ["p:a|roads", "t:b|roads"]}}),
        (COLLECTION, {"case_key": {"$in": ["roads|연희동"]}}),
        (COLLECTION, {"linked_case": {"$in": ["x0"]}}),
    ]
    for collection, query in queries:
        plan = (await db[collection].find(query).explain())["queryPlanner"]["winningPlan"]
        assert "IXSCAN" in str(plan), (collection, query, plan)
