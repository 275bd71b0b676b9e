"""How fast tracker stores events: a backlog on Kafka, drained into the event store.

    python -m sotong.tracker_bench [--events 40000] [--max-records 500]

Starts its own embedded Kafka and MongoDB (in a temporary directory, on free ports),
publishes a backlog of complaint histories (a filing, four transitions, three
notification outcomes each) across the five topics tracker consumes, then starts the
tracker service on it and reports events stored per second: counted from the store's own
``stored_at`` stamps, so the consumer group's start-up is not in the figure. A second
phase calls the batch handler directly, without Kafka, for the database's share.
``--max-records 1`` shows the rate of consuming one message at a time.
"""

import argparse
import asyncio
import logging
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter
from pymongo import AsyncMongoClient

from schemas import (
    Channel,
    ComplaintFiled,
    ComplaintState,
    ComplaintStatusChanged,
    Location,
    NotificationOutcome,
    Resident,
    topics,
)
from schemas.events import HandlerRef, Outcome, utcnow
from services.mongo import Document
from services.runtime import Runtime
from services.settings import KafkaSettings, MongoSettings
from sotong import localstack
from tracker.app import create_app
from tracker.handlers import Ingest, IngestMetrics
from tracker.projection import TrackedEvent
from tracker.settings import TrackerSettings
from tracker.store import MongoTrackerStore

EVENTS_PER_COMPLAINT = 8
BODIES = (
    "집 앞에 일주일째 쓰레기봉투가 쌓여 있어요",
    "가로등이 꺼져서 밤길이 너무 어두워요",
    "이불 버릴라면 어케해요? 스티커는 어디서 사요",
    "공원 벤치가 부서져 있습니다",
)


def history(n: int) -> list[TrackedEvent]:
    complaint_id = str(uuid.uuid4())
    at = utcnow()
    common = {"complaint_id": complaint_id, "receipt_number": f"250303-{n % 1_000_000:06d}"}
    handler = HandlerRef(handler_id="h-1", name="김담당", office_phone="032-560-1234")
    steps = [
        (None, ComplaintState.RECEIVED, "file", {}),
        (ComplaintState.RECEIVED, ComplaintState.ASSIGNED, "assign", {"auto_routed": True}),
        (ComplaintState.ASSIGNED, ComplaintState.HANDLER_ASSIGNED, "assign_handler", {}),
        (ComplaintState.HANDLER_ASSIGNED, ComplaintState.SITE_CHECK, "start_site_check", {}),
    ]
    events: list[TrackedEvent] = [
        ComplaintFiled(
            **common,
            tracking_token_hash="0" * 64,
            resident_token_hash="1" * 64,
            channel=Channel.WEB,
            resident=Resident(name="홍길동", phone="010-1234-5678"),
            body=f"{BODIES[n % len(BODIES)]} ({n})",
            location=Location(dong="청라1동"),
            submitted_at=at,
            occurred_at=at,
        )
    ]
    for sequence, (source, dest, trigger, extra) in enumerate(steps, start=1):
        events.append(
            ComplaintStatusChanged(
                **common,
                sequence=sequence,
                from_state=source,
                to_state=dest,
                trigger=trigger,
                department="resource-circulation" if sequence > 1 else None,
                handler=handler if sequence > 2 else None,
                actor="routing",
                due_at=at + timedelta(days=7),
                occurred_at=at + timedelta(seconds=sequence),
                **extra,
            )
        )
    events += [
        NotificationOutcome(
            complaint_id=complaint_id,
            source_event_id=events[k].event_id,
            recipient="010-1234-5678",
            channel="outbox",
            outcome=Outcome.SENT,
            template=f"state.{k}",
        )
        for k in (1, 2, 3)
    ]
    return events


async def through_kafka(
    backends: dict[str, Any], events: list[TrackedEvent], max_records: int
) -> dict[str, float]:
    prefix, database = f"bench{uuid.uuid4().hex[:6]}.", f"bench_{uuid.uuid4().hex[:6]}"
    kafka = KafkaSettings(
        bootstrap_servers=backends["kafka"], idempotent_producer=False, topic_prefix=prefix
    )
    mongo = MongoSettings.model_validate({"uri": backends["mongo"], "database": database})
    settings = TrackerSettings(kafka=kafka, mongo=mongo, http_port=0, batch_max_records=max_records)
    runtime = Runtime.build("tracker", settings)
    store = MongoTrackerStore(runtime.db)
    app = create_app(settings, runtime=runtime, store=store)
    producer = AIOKafkaProducer(bootstrap_servers=backends["kafka"], acks="all", linger_ms=20)
    async with app.router.lifespan_context(app):
        # The service created the topics; stop its consumer while the backlog is written.
        await runtime.broker.stop()
        await producer.start()
        try:
            sends = [
                await producer.send(
                    prefix + topics.OF_EVENT[e.event_type],
                    e.model_dump_json().encode(),
                    key=e.complaint_id.encode(),
                )
                for e in events
            ]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()
        await runtime.broker.start()
        started = time.perf_counter()
        while await store.events.count_documents({}) < len(events):
            if time.perf_counter() - started > 600:
                raise TimeoutError("the backlog was not stored within 10 minutes")
            await asyncio.sleep(0.5)
        wall = time.perf_counter() - started
        stamps = await store.events.aggregate(
            [
                {
                    "$group": {
                        "_id": None,
                        "first": {"$min": "$stored_at"},
                        "last": {"$max": "$stored_at"},
                    }
                }
            ]
        )
        (span,) = await stamps.to_list()
        first_batch = await store.events.count_documents({"stored_at": span["first"]})
        seconds = (span["last"] - span["first"]).total_seconds()
        await runtime.mongo.drop_database(database)
    batches = runtime.registry.get_sample_value("sotong_tracker_batch_records_count") or 1.0
    refreshed = runtime.registry.get_sample_value("sotong_tracker_read_models_refreshed_total")
    return {
        "rate": (len(events) - first_batch) / seconds,
        "seconds": seconds,
        "wall": wall,
        "batch": len(events) / batches,
        "refreshes": (refreshed or 0.0) / len(events),
    }


async def store_only(mongo_uri: str, events: list[TrackedEvent], batch: int) -> dict[str, float]:
    """The batch handler alone, records already in memory: the database's share."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    database = f"bench_{uuid.uuid4().hex[:6]}"
    store = MongoTrackerStore(client[database])
    await store.ensure_indexes()
    registry = CollectorRegistry()

    async def refuse(*_: Any) -> None:
        raise AssertionError("the benchmark's events are all valid")

    ingest = Ingest(
        service="bench",
        store=store,
        dead_letter=refuse,
        duplicates=Counter("dup", "duplicates", ["consumer", "topic"], registry=registry),
        metrics=IngestMetrics(registry),
    )
    records = [
        _Record(
            topics.OF_EVENT[e.event_type], e.model_dump_json().encode(), e.complaint_id.encode()
        )
        for e in events
    ]
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        await ingest.handle(records[i : i + batch])
    seconds = time.perf_counter() - started
    await client.drop_database(database)
    await client.close()
    return {"rate": len(events) / seconds, "seconds": seconds}


class _Record:
    def __init__(self, topic: str, value: bytes, key: bytes) -> None:
        self.topic, self.value, self.key = topic, value, key
        self.partition, self.offset, self.timestamp = 0, 0, 0
        self.headers: list[tuple[str, bytes]] = []


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.WARNING)
    complaints = max(1, args.events // EVENTS_PER_COMPLAINT)
    events = [event for n in range(complaints) for event in history(n)]
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as tmp:
        kafka_port, mongo_port = localstack.free_port(), localstack.free_port()
        children = localstack.start_backends(
            kafka_port=kafka_port,
            mongo_port=mongo_port,
            data_dir=Path(tmp) / "mongo",
            log_dir=Path(tmp) / "logs",
        )
        try:
            mongo_uri = f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true"
            backends = {"kafka": f"127.0.0.1:{kafka_port}", "mongo": mongo_uri}
            print(f"{len(events)} events of {complaints} complaints, batches of {args.max_records}")
            kafka = await through_kafka(backends, events, args.max_records)
            print(
                f"through Kafka: {kafka['rate']:,.0f} events/s stored "
                f"({kafka['seconds']:.1f} s from first to last batch, {kafka['wall']:.1f} s "
                f"including the consumer group's start; {kafka['batch']:.0f} records a batch, "
                f"{kafka['refreshes']:.2f} read-model rebuilds per event)"
            )
            direct = await store_only(mongo_uri, events, args.max_records)
            print(f"store only:    {direct['rate']:,.0f} events/s ({direct['seconds']:.1f} s)")
        finally:
            for child in reversed(children):
                child.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m sotong.tracker_bench", description=__doc__)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--max-records", type=int, default=500, help="records per batch")
    asyncio.run(main(parser.parse_args()))
