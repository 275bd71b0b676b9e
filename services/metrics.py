"""One Prometheus registry per service: FastStream's Kafka metrics plus domain metrics.

Label values are bounded: topic, consumer, department code, state, channel, outcome.
Never a complaint id, a name or a phone number.
"""

import asyncio
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo import monitoring

log = logging.getLogger(__name__)

# Command names are a closed set in the MongoDB protocol; anything else is "other".
MONGO_COMMANDS = frozenset(
    {
        "insert", "find", "update", "delete", "aggregate", "count", "findAndModify",
        "getMore", "createIndexes", "ping", "hello", "isMaster", "endSessions", "drop",
        "dropDatabase", "listIndexes", "killCursors", "commitTransaction", "abortTransaction",
    }
)  # fmt: skip


class KitMetrics:
    """Metrics every service has, on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.dead_lettered = Counter(
            "sotong_dead_lettered_total",
            "Messages sent to the dead-letter topic, by source topic and cause.",
            ["consumer", "topic", "cause"],
            registry=registry,
        )
        self.retries = Counter(
            "sotong_consume_retries_total",
            "Retries of a failing message before success or dead-lettering.",
            ["consumer", "topic"],
            registry=registry,
        )
        self.duplicates = Counter(
            "sotong_duplicate_messages_total",
            "Redelivered messages recognised as already processed (no effect).",
            ["consumer", "topic"],
            registry=registry,
        )


# Collections a service writes are named in its code; past this many distinct names (a
# test's or a tool's), further ones are counted as "other" so the label stays bounded.
MAX_COLLECTION_LABELS = 64
WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


def documents_written(command_name: str, reply: Any) -> int:
    """Documents a write command changed, from the server's reply: what the database
    maintains indexes (and an oplog entry) for, whatever the number of commands."""
    if not isinstance(reply, dict):
        return 0
    if command_name in ("insert", "delete"):
        return int(reply.get("n", 0) or 0)
    if command_name == "update":
        upserted = reply.get("upserted") or []
        return int(reply.get("nModified", 0) or 0) + len(upserted)
    if command_name == "findAndModify":
        last = reply.get("lastErrorObject") or {}
        return int(last.get("n", 0) or 0)
    return 0


class MongoCommandMetrics(monitoring.CommandListener):
    """MongoDB operation latency and failures, by command name (a bounded label), and
    the documents each collection's writes changed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter(
            "sotong_mongodb_documents_written_total",
            "Documents changed by inserts, updates, deletes and findAndModify, by collection "
            "and command.",
            ["collection", "command"],
            registry=registry,
        )
        self._collections: dict[int, str] = {}
        self._names: set[str] = set()
        self.latency = Histogram(
            "sotong_mongodb_command_duration_seconds",
            "MongoDB command latency, by command.",
            ["command"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.failures = Counter(
            "sotong_mongodb_command_failures_total",
            "MongoDB commands that failed, by command.",
            ["command"],
            registry=registry,
        )

    @staticmethod
    def _name(event: Any) -> str:
        name = str(event.command_name)
        return name if name in MONGO_COMMANDS else "other"

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = str(event.command_name)
        if name in WRITE_COMMANDS:
            collection = str(event.command.get(name, "other"))
            if collection not in self._names:
                if len(self._names) >= MAX_COLLECTION_LABELS:
                    collection = "other"
                else:
                    self._names.add(collection)
            self._collections[event.request_id] = collection

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.latency.labels(self._name(event)).observe(event.duration_micros / 1e6)
        collection = self._collections.pop(event.request_id, None)
        if collection is not None:
            written = documents_written(str(event.command_name), event.reply)
            if written:
                self.written.labels(collection, str(event.command_name)).inc(written)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.latency.labels(self._name(event)).observe(event.duration_micros / 1e6)
        self.failures.labels(self._name(event)).inc()
        # (a bulk write whose documents clash with a unique index succeeds, with
        # writeErrors in its reply and the rest counted in ``n``; a failed command wrote
        # nothing the server acknowledged)
        self._collections.pop(event.request_id, None)


class ConsumerLag:
    """Consumer lag per partition (high water mark minus position), sampled periodically."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "sotong_consumer_lag_messages",
            "Messages not yet consumed, per consumer group, topic and partition.",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.sampled = Gauge(
            "sotong_consumer_lag_sampled_timestamp_seconds",
            "When consumer lag was last sampled.",
            registry=registry,
        )

    async def sample(self, broker: Any) -> None:
        for subscriber in list(broker.subscribers):
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            group = str(getattr(consumer, "_group_id", None) or "none")
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                if high is None:
                    continue
                position = await consumer.position(tp)
                self.lag.labels(group, tp.topic, str(tp.partition)).set(max(0, high - position))
        self.sampled.set(time.time())

    async def forever(self, broker: Any, interval: float = 5.0) -> None:
        while True:
            try:
                await self.sample(broker)
            except Exception:
                log.warning("could not sample consumer lag", exc_info=True)
            await asyncio.sleep(interval)
