"""What intake's per-phone limit costs the database: commands and server time per filing.

Not a test (no timing assertions in tests): run it by hand on an otherwise quiet machine::

    .venv/bin/python -m tests.measure_intake_limits

It starts an embedded MongoDB-wire server (SecantusDB) in a temporary directory, then files
400 complaints, each with its own phone number and resident, through intake's HTTP API
(ASGI, no sockets to intake; Kafka replaced by a recording publish) with 1 and with 32 in
flight, and prints, for ``intake_phone_days``, the commands sent per filing and the
server's time per filing (the driver's command durations), beside the same figures for
all of intake's collections.
"""

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from pydantic import SecretStr
from pymongo import AsyncMongoClient, monitoring

from intake.app import create_app
from intake.settings import IntakeSettings
from intake.store import PHONE_DAYS, MongoSubmissionStore
from services.mongo import Document
from services.settings import MongoSettings
from sotong import localstack
from tests.fakes.intake import InMemoryIdempotencyStore, RecordingPublish

FILINGS = 400
PORTAL = "measure-portal-credential"


class Durations(monitoring.CommandListener):
    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.micros: Counter[str] = Counter()
        self.names: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names[event.request_id] = str(event.command.get(event.command_name))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        target = self.names.pop(event.request_id, "?")
        self.count[target] += 1
        self.micros[target] += event.duration_micros

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.names.pop(event.request_id, None)


async def run(uri: str, concurrency: int) -> tuple[Durations, float]:
    listener = Durations()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        uri, tz_aware=True, event_listeners=[listener]
    )
    db = client[f"measure_{concurrency}_{time.monotonic_ns()}"]
    store = MongoSubmissionStore(db)
    await store.ensure_indexes()
    app = create_app(
        IntakeSettings(
            mongo=MongoSettings(uri=SecretStr(uri), database=db.name),
            channel_keys={"web": SecretStr(PORTAL)},
            phone_hash_key=SecretStr("measure-phone-key"),
        ),
        store=store,
        publish=RecordingPublish(),
        idempotency_store=InMemoryIdempotencyStore(),
    )
    listener.count.clear()
    listener.micros.clear()
    gate = asyncio.Semaphore(concurrency)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:

        async def file(i: int) -> None:
            body = {
                "channel": "web",
                "channel_ref": f"m-{i}",
                "body": "청라동 공원 가로등이 꺼져 있어요",
                "resident": {"phone": f"010-{i // 10000 + 2000:04d}-{i % 10000:04d}"},
            }
            headers = {"X-Api-Key": PORTAL, "X-End-User": f"resident-{i}"}
            async with gate:
                answer = await http.post("/v1/complaints", json=body, headers=headers)
            answer.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(file(i) for i in range(FILINGS)))
        seconds = time.perf_counter() - start
    await client.drop_database(db.name)
    await client.close()
    return listener, seconds


async def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        port = localstack.free_port()
        mongo = localstack.embedded_mongo(port, Path(root) / "mongo", Path(root) / "logs")
        mongo.start()
        mongo.wait_until(lambda: localstack.port_open(port), 60)
        try:
            uri = localstack.embedded_mongo_uri(port)
            for concurrency in (1, 32):
                seen, seconds = await run(uri, concurrency)
                phone_n, phone_us = seen.count[PHONE_DAYS], seen.micros[PHONE_DAYS]
                all_n, all_us = sum(seen.count.values()), sum(seen.micros.values())
                print(
                    f"{concurrency:>2} in flight: {FILINGS} filings in {seconds:.1f} s; "
                    f"{PHONE_DAYS}: {phone_n / FILINGS:.2f} commands and "
                    f"{phone_us / FILINGS / 1000:.2f} ms per filing; all of intake: "
                    f"{all_n / FILINGS:.2f} commands and {all_us / FILINGS / 1000:.2f} ms"
                )
        finally:
            mongo.stop()


if __name__ == "__main__":
    asyncio.run(main())
