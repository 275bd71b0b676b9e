"""What a clean stop waits for: every consumer group's lag at zero and the outboxes empty.

Lag is read from the broker (each group's committed offset against each partition's end),
the way an operator's tool would, so it counts what was consumed *and committed*, not what
a consumer has merely fetched. A group counts for a topic once it committed an offset on
it or the group's service recorded it subscribes to it (``services.subscriptions``: the
broker does not say which topics a group reads). The outboxes are read from MongoDB: a
complaint filed but not yet published is work not yet on the broker.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase

from intake.store import COLLECTION as INTAKE_COMPLAINTS
from routing.store import COLLECTION as ROUTING_COMPLAINTS
from schemas import topics
from services import subscriptions
from services.mongo import Document

GROUP_PREFIX = "sotong-"


@dataclass(frozen=True)
class Backlog:
    """Messages not yet consumed, per (consumer group, topic), and unpublished outboxes."""

    lag: Mapping[tuple[str, str], int] = field(default_factory=dict)
    outboxes: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.lag.values()) + sum(self.outboxes.values())

    def describe(self) -> str:
        parts = [f"{group} {topic}: {n}" for (group, topic), n in sorted(self.lag.items()) if n]
        parts += [f"{name}: {n}" for name, n in sorted(self.outboxes.items()) if n]
        return ", ".join(parts) if parts else "nothing"


def group_lag(
    committed: Mapping[TopicPartition, int | None],
    beginning: Mapping[TopicPartition, int],
    end: Mapping[TopicPartition, int],
    subscribed: Iterable[str] = (),
) -> dict[str, int]:
    """Lag per topic for one group: on the topics it subscribes to and those it committed
    on; a partition never committed on counts from its beginning."""
    consumed = {tp.topic for tp, offset in committed.items() if offset is not None}
    consumed |= set(subscribed)
    lag: dict[str, int] = {}
    for tp, last in end.items():
        if tp.topic not in consumed:
            continue
        position = committed.get(tp)
        start = beginning.get(tp, 0) if position is None else position
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, last - start)
    return lag


class BacklogProbe:
    """Reads the backlog; one broker client per consumer group, kept for the whole drain."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str,
        db: AsyncDatabase[Document],
        started_at: datetime,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.db = db
        self.started_at = started_at
        self.admin: AIOKafkaAdminClient | None = None
        self.groups: dict[str, AIOKafkaConsumer] = {}

    async def __aenter__(self) -> "BacklogProbe":
        self.admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, client_id="sotong-drain"
        )
        await self.admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        for consumer in self.groups.values():
            await consumer.stop()
        if self.admin is not None:
            await self.admin.close()

    async def _consumer(self, group: str) -> AIOKafkaConsumer:
        if group not in self.groups:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                group_id=group,
                enable_auto_commit=False,
                client_id="sotong-drain",
            )
            await consumer.start()  # never subscribes: it only reads the group's offsets
            self.groups[group] = consumer
        return self.groups[group]

    def _partitions(self, consumer: AIOKafkaConsumer, names: Iterable[str]) -> list[TopicPartition]:
        found: list[TopicPartition] = []
        for name in names:
            for partition in consumer.partitions_for_topic(name) or ():
                found.append(TopicPartition(name, partition))
        return found

    async def lag(self) -> dict[tuple[str, str], int]:
        assert self.admin is not None, "use BacklogProbe as an async context manager"
        listed = await self.admin.list_consumer_groups()
        subscribed = await subscriptions.recorded(self.db, self.started_at)
        groups = sorted(
            {str(g[0]) for g in listed if str(g[0]).startswith(GROUP_PREFIX)} | set(subscribed)
        )
        names = [self.topic_prefix + t for t in topics.ALL]
        lag: dict[tuple[str, str], int] = {}
        for group in groups:
            consumer = await self._consumer(group)
            await consumer._client.force_metadata_update()  # topics created since start
            partitions = self._partitions(consumer, names)
            if not partitions:
                continue
            committed = {tp: await consumer.committed(tp) for tp in partitions}
            end = await consumer.end_offsets(partitions)
            beginning = await consumer.beginning_offsets(partitions)
            reads = subscribed.get(group, ())
            for topic, n in group_lag(committed, beginning, end, reads).items():
                lag[(group, topic.removeprefix(self.topic_prefix))] = n
        return lag

    async def outboxes(self) -> dict[str, int]:
        return {
            "intake complaints not yet published": await self.db[INTAKE_COMPLAINTS].count_documents(
                {"published": False}
            ),
            "routing outboxes not yet published": await self.db[ROUTING_COMPLAINTS].count_documents(
                {"outbox_pending": True}
            ),
        }

    async def backlog(self) -> Backlog:
        return Backlog(lag=await self.lag(), outboxes=await self.outboxes())
