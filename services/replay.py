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

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Counter
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

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
