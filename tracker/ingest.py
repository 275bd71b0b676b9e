"""Kafka records in, events stored: a batch at a time, so tracker keeps up with the broker.

One bulk insert stores the batch and one query rebuilds the read models it touched,
instead of two round trips per event. Each record is parsed here, not by FastStream, so
one invalid record is dead-lettered alone while the rest of its batch is stored; so is an
event that claims a sequence another event holds. Anything else (the database or the
broker unreachable) fails the batch, and the shared middleware retries it in place:
redelivered events are duplicates, and duplicates change nothing.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from faststream.kafka.message import KafkaMessage
from faststream.kafka.parser import AioKafkaParser
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError

from schemas.events import utcnow
from services.logs import bound
from tracker.projection import TRACKED_EVENT, TrackedEvent
from tracker.store import Appended, TrackerStore, conflict

log = logging.getLogger("sotong.tracker")

DeadLetter = Callable[[StreamMessage[Any], BaseException, int], Awaitable[None]]
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


def raw_values(message: StreamMessage[Any]) -> list[bytes]:
    """The subscriber's decoder: hand the bytes over untouched, so a record that is not
    JSON cannot fail the whole batch before the handler sees it."""
    return [record.value or b"" for record in records_of(message)]


def records_of(message: StreamMessage[Any]) -> Sequence[Any]:
    raw = message.raw_message
    return raw if isinstance(raw, tuple | list) else (raw,)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stored = Counter(
            "sotong_tracker_events_stored_total",
            "Events stored for the first time, by event type.",
            ["event_type"],
            registry=registry,
        )
        self.refreshed = Counter(
            "sotong_tracker_read_models_refreshed_total",
            "Complaint read models rebuilt from their history (one per complaint per batch).",
            registry=registry,
        )
        self.batch_records = Histogram(
            "sotong_tracker_batch_records",
            "Records per consumed batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )


class Ingest:
    def __init__(
        self,
        *,
        service: str,
        store: TrackerStore,
        dead_letter: DeadLetter,
        duplicates: Counter,
        metrics: IngestMetrics,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.service = service
        self.store = store
        self.dead_letter = dead_letter
        self.duplicates = duplicates
        self.metrics = metrics
        self.clock = clock
        self._parser = AioKafkaParser(msg_class=KafkaMessage, regex=None)

    async def handle(self, records: Sequence[Any]) -> None:
        """Store a batch of records and refresh the read models of the complaints it names.

        A duplicate still refreshes its complaint: the earlier delivery may have stored
        the event and then died before the read model was written.
        """
        self.metrics.batch_records.observe(len(records))
        parsed: list[tuple[TrackedEvent, Any]] = []
        for record in records:
            try:
                parsed.append((TRACKED_EVENT.validate_json(record.value or b""), record))
            except ValidationError as exc:
                await self._reject(record, exc)
        outcomes = await self.store.append_many(
            [event for event, _ in parsed], stored_at=self.clock()
        )
        touched: set[str] = set()
        for (event, record), outcome in zip(parsed, outcomes, strict=True):
            if outcome is Appended.CONFLICT:
                await self._reject(record, conflict(event))
                continue
            touched.add(event.complaint_id)
            if outcome is Appended.STORED:
                self.metrics.stored.labels(event.event_type).inc()
            else:
                self.duplicates.labels(self.service, record.topic).inc()
                with bound(complaint_id=event.complaint_id):
                    log.info("duplicate event", extra={"event_id": event.event_id})
        await self.store.refresh_many(touched)
        self.metrics.refreshed.inc(len(touched))

    async def _reject(self, record: Any, exc: BaseException) -> None:
        """Dead-letter one record, with the reason and its original bytes and headers."""
        key = record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else None
        with bound(complaint_id=key):
            await self.dead_letter(await self._parser.parse_message(record), exc, 1)
