"""Publish again what a memory-only broker lost.

The embedded broker (Tansu) keeps messages in memory: when it restarts, every event not
yet consumed and every consumer group's offsets are gone. Producers therefore keep what
they published for a window (``KafkaSettings.replay_window_seconds``) and, when they meet
a broker that is not the one they last published to, publish the window's events again
in order. Consumers are idempotent, so what was delivered before changes nothing and what
was lost is delivered now.

A broker is told apart by its cluster id, recorded per service in MongoDB; the local
stack starts the broker with a fresh id every time. Off by default: Apache Kafka's log is
durable, and replaying a day into it would only cost.
"""

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta

from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Counter
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.broker import KeyedEvent, ensure_topics
from services.mongo import Document
from services.runtime import Publish
from services.settings import KafkaSettings

log = logging.getLogger("sotong.replay")

EPOCHS = "sotong_broker_epochs"
"""One document per producing service: the cluster id it last published to."""

ReplaySource = Callable[[datetime], AsyncIterator[tuple[str, KeyedEvent, str | None]]]
"""The events a service published since a moment, oldest first: topic, event, correlation id."""


class Replayer:
    """Checked before each outbox relay pass: cheap when the broker is the same one."""

    def __init__(
        self,
        *,
        service: str,
        kafka: KafkaSettings,
        db: AsyncDatabase[Document],
        source: ReplaySource,
        publish: Publish,
        clock: Callable[[], datetime],
        registry: CollectorRegistry,
    ) -> None:
        self.service = service
        self.kafka = kafka
        self.epochs: AsyncCollection[Document] = db[EPOCHS]
        self.source = source
        self.publish = publish
        self.clock = clock
        self.known: str | None = None
        self.admin: AIOKafkaAdminClient | None = None
        self.replayed = Counter(
            "sotong_replayed_events_total",
            "Events published again to a broker that lost its data, per topic.",
            ["topic"],
            registry=registry,
        )

    @property
    def enabled(self) -> bool:
        return self.kafka.replay_after_broker_loss

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.kafka.replay_window_seconds)

    async def cluster_id(self) -> str:
        if self.admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.kafka.bootstrap_servers,
                client_id=f"sotong-{self.service}-replay",
                security_protocol=self.kafka.security_protocol,
            )
            await admin.start()
            self.admin = admin
        try:
            cluster = await self.admin.describe_cluster()
        except Exception:
            await self.close()
            raise
        return str(cluster["cluster_id"])

    async def close(self) -> None:
        if self.admin is not None:
            admin, self.admin = self.admin, None
            await admin.close()

    async def check(self) -> int:
        """Replay if the broker is not the one last published to; how many events."""
        if not self.enabled:
            return 0
        cluster = await self.cluster_id()
        if cluster == self.known:
            return 0
        doc = await self.epochs.find_one({"_id": self.service})
        recorded = None if doc is None else str(doc["cluster_id"])
        replayed = 0
        if recorded is not None and recorded != cluster:
            replayed = await self.replay(cluster, recorded)
        await self.epochs.update_one(
            {"_id": self.service},
            {"$set": {"cluster_id": cluster, "since": self.clock()}},
            upsert=True,
        )
        self.known = cluster
        return replayed

    async def replay(self, cluster: str, recorded: str) -> int:
        since = self.clock() - self.window
        log.warning(
            "the broker lost its data (cluster %s, last published to %s): publishing again "
            "what was published since %s",
            cluster,
            recorded,
            since.isoformat(),
        )
        await ensure_topics(self.kafka)
        count = 0
        async for topic, event, correlation_id in self.source(since):
            await self.publish(topic, event, correlation_id)
            self.replayed.labels(topic).inc()
            count += 1
        log.warning("replayed %d events to the new broker", count)
        return count


class PublishedLog:
    """Events a service publishes outside an outbox (intake's commands, routing's alerts
    and rejections), kept for the replay window under a TTL index, so a replay can
    publish them again. ``retaining`` wraps a ``Publish``: it publishes, then keeps."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        collection: str,
        window: timedelta,
        parsers: Mapping[str, Callable[[str], KeyedEvent]],
    ) -> None:
        self.col: AsyncCollection[Document] = db[collection]
        self.window = window
        self.parsers = parsers
        self.indexed = False

    async def ensure_indexes(self) -> None:
        seconds = int(self.window.total_seconds())
        indexes = await self.col.index_information()
        if "published_ttl" in indexes and indexes["published_ttl"].get("expireAfterSeconds") != (
            seconds
        ):
            await self.col.drop_index("published_ttl")
        await self.col.create_index(
            [("published_at", ASCENDING)], name="published_ttl", expireAfterSeconds=seconds
        )
        self.indexed = True

    def retaining(self, publish: Publish) -> Publish:
        log_ = self

        class Retaining:
            async def __call__(
                self, topic: str, event: KeyedEvent, correlation_id: str | None = None
            ) -> None:
                await publish(topic, event, correlation_id)
                if topic in log_.parsers:
                    await log_.keep(topic, event, correlation_id)

        return Retaining()

    async def keep(self, topic: str, event: KeyedEvent, correlation_id: str | None) -> None:
        if not self.indexed:
            await self.ensure_indexes()
        with contextlib.suppress(DuplicateKeyError):
            await self.col.insert_one(
                {
                    "_id": event.event_id,
                    "topic": topic,
                    "event": event.model_dump_json(),
                    "correlation_id": correlation_id,
                    "published_at": datetime.now(UTC),
                    "published_ns": time.time_ns(),  # order within a millisecond
                }
            )

    async def since(self, since: datetime) -> AsyncIterator[tuple[str, KeyedEvent, str | None]]:
        cursor = self.col.find(
            {"published_at": {"$gte": since}}, sort=[("published_ns", ASCENDING)]
        )
        async for doc in cursor:
            topic = str(doc["topic"])
            parse = self.parsers.get(topic)
            if parse is None:  # a topic no longer kept: its events are not ours to replay
                continue
            yield topic, parse(str(doc["event"])), doc.get("correlation_id")


def chained(*sources: ReplaySource) -> ReplaySource:
    """One source after the other (intake's filings before the commands about them)."""

    async def source(since: datetime) -> AsyncIterator[tuple[str, KeyedEvent, str | None]]:
        for each in sources:
            async for item in each(since):
                yield item

    return source
