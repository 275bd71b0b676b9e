"""intake's HTTP API on the real MongoDB-wire server: an Idempotency-Key retry answers the
first answer from the stored (sealed) copy, and a phone photo goes through GridFS and comes
back to the resident without its location. Kafka is replaced by a recording publish: what
crosses to other services is checked in the e2e tier."""

import asyncio
import io
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from PIL import Image
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from intake.app import create_app
from intake.idempotency import COLLECTION, MongoIdempotencyStore
from intake.photo_store import MongoPhotoStore
from intake.settings import IntakeSettings
from intake.store import MongoSubmissionStore
from schemas import ComplaintFiled, topics
from services.mongo import Document
from tests.conftest import Backends
from tests.fakes.intake import RecordingPublish

GPS_IFD = 0x8825
FILING = {"channel": "web", "body": "석남동 골목 가로등이 사흘째 꺼져 있어요"}


@pytest.fixture
async def intake(
    backends: Backends, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingPublish]]:
    store = MongoSubmissionStore(mongo_db)
    keys = MongoIdempotencyStore(mongo_db, timedelta(hours=24))
    photos = MongoPhotoStore(mongo_db)
    for each in (store, keys, photos):
        await each.ensure_indexes()
    publish = RecordingPublish()
    app = create_app(
        IntakeSettings(mongo=backends.mongo(mongo_db.name)),
        store=store,
        publish=publish,
        idempotency_store=keys,
        photo_store=photos,
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        yield http, publish


async def test_a_retry_is_answered_from_the_database_once(
    intake: tuple[httpx.AsyncClient, RecordingPublish],
) -> None:
    http, publish = intake
    headers = {"Idempotency-Key": "retry-me-1"}

    first = await http.post("/v1/complaints", json=FILING, headers=headers)
    again = await http.post("/v1/complaints", json=FILING, headers=headers)
    other = await http.post("/v1/complaints", json=FILING | {"body": "다른 글"}, headers=headers)

    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(publish.on(topics.FILED)) == 1


async def test_a_phone_photo_comes_back_from_gridfs_without_its_location(
    intake: tuple[httpx.AsyncClient, RecordingPublish],
) -> None:
    http, publish = intake
    exif = Image.Exif()
    exif[GPS_IFD] = {1: "N", 2: (37.0, 33.0, 58.0), 3: "E", 4: (126.0, 58.0, 41.0)}
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 200, 90)).save(out, format="JPEG", exif=exif)
    assert Image.open(io.BytesIO(out.getvalue())).getexif().get_ifd(GPS_IFD)

    uploaded = await http.post("/v1/photos", files={"file": ("a.jpg", out.getvalue())})
    assert uploaded.status_code == 201, uploaded.text
    photo_id = uploaded.json()["photo_id"]
    filed = await http.post("/v1/complaints", json=FILING | {"photos": [photo_id]})
    assert filed.status_code == 201, filed.text
    served = await http.get(
        f"/v1/photos/{photo_id}", headers={"X-Tracking-Token": filed.json()["tracking_token"]}
    )

    assert served.status_code == 200
    image = Image.open(io.BytesIO(served.content))
    assert image.size == (800, 600)
    assert not image.getexif()
    assert "exif" not in image.info
    [event] = publish.on(topics.FILED)
    assert isinstance(event, ComplaintFiled)
    assert [p.photo_id for p in event.photos] == [photo_id]


class ByCollection(monitoring.CommandListener):
    """Commands sent to the server, by (command, collection)."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.seen[(event.command_name, str(target))] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


async def test_keyed_filings_arriving_together_share_their_key_writes(
    backends: Backends, mongo_db: AsyncDatabase[Document]
) -> None:
    """Claims and answers of concurrent requests are group-committed like the filings:
    a handful of writes for 40 keyed filings, not two per filing."""
    listener = ByCollection()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        backends.mongo_uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        db = client[mongo_db.name]
        store, keys = MongoSubmissionStore(db), MongoIdempotencyStore(db, timedelta(hours=1))
        await store.ensure_indexes()
        await keys.ensure_indexes()
        publish = RecordingPublish()
        app = create_app(
            # 40 at once from one test client: not what the per-client limits are for
            IntakeSettings(
                mongo=backends.mongo(mongo_db.name), filings_per_minute=40, filings_per_hour=40
            ),
            store=store,
            publish=publish,
            idempotency_store=keys,
            photo_store=MongoPhotoStore(db),
        )
        listener.seen.clear()
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            answers = await asyncio.gather(
                *(
                    http.post("/v1/complaints", json=FILING, headers={"Idempotency-Key": f"k{i}"})
                    for i in range(40)
                )
            )
        assert [a.status_code for a in answers] == [201] * 40
        assert len(publish.on(topics.FILED)) == 40
        claims = listener.seen[("insert", COLLECTION)]
        kept = listener.seen[("update", COLLECTION)]
        assert 1 <= claims <= 10, listener.seen
        assert 1 <= kept <= 10, listener.seen
    finally:
        await client.close()
