"""What arrives, and what it calls: Kafka batches in, each record parsed on its own.

Four batch subscribers (:func:`subscribe`) hand their records to :class:`Delivery`:
``complaint.filed`` (the resident's contact, remembered), ``complaint.lifecycle`` (state
changes to tell), ``complaint.sla`` (deadline alerts) and ``notification.retry`` (the
notifier's own retries, :mod:`notifier.retrying`), each topic in its own consumer group.
Each record is parsed here, so one invalid record, or one that cannot be made into a
message at all, is dead-lettered alone while the rest of its batch goes on. Anything
else (the database or the broker away) fails the batch, and the kit's middleware retries
it; what a redelivery finds done, it does not do again.

What a batch then does is :mod:`notifier.delivery`'s to say.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaMessage as KafkaStreamMessage
from faststream.kafka.parser import AioKafkaParser
from faststream.message import StreamMessage
from pydantic import BaseModel, TypeAdapter, ValidationError

from notifier.chain import Sleep
from notifier.delivery import Arrival, DeadLetterSink, Delivery, Rejected
from schemas import (
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    NotificationRetryScheduled,
    topics,
)
from schemas.events import ContactCodeIssued, ContactConfirmed, ContactEvent
from services.broker import raw_values, records_of
from services.errors import PermanentError, describe
from services.logs import bound

__all__ = [
    "Arrival",
    "BatchSettings",
    "DeadLetterSink",
    "Delivery",
    "PublishDeadLetter",
    "Sleep",
    "subscribe",
]

PublishDeadLetter = Callable[[StreamMessage[Any], BaseException, int], Awaitable[None]]
"""Publishes one record's dead letter: ``DeadLetters.dead_letter`` from the kit, or a fake."""
Handler = Callable[..., Awaitable[None]]
M = TypeVar("M", bound=BaseModel)
CONTACT_EVENT: TypeAdapter[ContactCodeIssued | ContactConfirmed] = TypeAdapter(ContactEvent)


class Subscribe(Protocol):
    """``Runtime.subscriber``: an at-least-once subscriber to topics, in its own group."""

    def __call__(
        self, *topic_names: str, group: str | None = None, **kwargs: object
    ) -> Callable[[Handler], object]: ...


class InvalidRecord(PermanentError):
    """A record that is not the event its topic carries; the reason names each bad field
    (parsed here, not as a handler parameter, so no location is the parameter's)."""


def correlation_of(record: Any) -> str | None:
    for key, value in getattr(record, "headers", None) or ():
        if key == "correlation_id" and isinstance(value, bytes):
            return value.decode("utf-8", "replace")
    return None


@dataclass(frozen=True)
class BatchSettings:
    max_records: int = 200
    timeout_ms: int = 50
    max_poll_interval_ms: int = 300_000
    """The consumer's poll limit; every batch's budget stays well under it."""


def subscribe(
    subscriber: Subscribe,
    delivery: "Delivery",
    *,
    reject: PublishDeadLetter,
    batch: BatchSettings | None = None,
) -> None:
    """Each topic a batch subscriber in its own consumer group, so a slow lifecycle does
    not hold back the contacts that free parked events."""
    batch = batch or BatchSettings()
    records = Records(delivery, reject)
    options: dict[str, object] = {
        "batch": True,
        "max_records": batch.max_records,
        "batch_timeout_ms": batch.timeout_ms,
        "decoder": raw_values,
        "max_poll_interval_ms": batch.max_poll_interval_ms,
    }
    # Registered by call rather than as decorators: Runtime.subscriber is typed Any, and
    # mypy --strict refuses an untyped decorator.
    subscriber(topics.FILED, group="recipients", **options)(records.on_filed)
    subscriber(topics.LIFECYCLE, group="lifecycle", **options)(records.on_lifecycle)
    subscriber(topics.SLA, group="deadlines", **options)(records.on_deadlines)
    subscriber(topics.RETRY, group="retries", **options)(records.on_retries)
    subscriber(topics.CONTACT_CODES, group="contacts", **options)(records.on_contacts)


@dataclass
class Records:
    """The subscribers' work: parse each record, hand the batch over, dead-letter what
    cannot be handled one record at a time."""

    delivery: "Delivery"
    reject: PublishDeadLetter
    _parser: AioKafkaParser = field(
        init=False,
        repr=False,
        default_factory=lambda: AioKafkaParser(msg_class=KafkaStreamMessage, regex=None),
    )

    async def on_filed(self, message: KafkaMessage) -> None:
        filings = await self._parse(records_of(message), ComplaintFiled)
        await self.delivery.remember_all([event for event, _ in filings])

    async def on_lifecycle(self, message: KafkaMessage) -> None:
        parsed = await self._parse(records_of(message), ComplaintStatusChanged)
        arrivals = [Arrival(event, correlation_of(record)) for event, record in parsed]
        await self._rejected(parsed, await self.delivery.notify_all(arrivals))

    async def on_deadlines(self, message: KafkaMessage) -> None:
        parsed = await self._parse(records_of(message), ComplaintDeadlineAlert)
        arrivals = [Arrival(event, correlation_of(record)) for event, record in parsed]
        await self._rejected(parsed, await self.delivery.alert_all(arrivals))

    async def on_retries(self, message: KafkaMessage) -> None:
        parsed = await self._parse(records_of(message), NotificationRetryScheduled)
        await self.delivery.retry_all([(event, correlation_of(record)) for event, record in parsed])

    async def on_contacts(self, message: KafkaMessage) -> None:
        """Codes to send and confirmations, in the order intake published them."""
        parsed: list[tuple[ContactCodeIssued | ContactConfirmed, Any]] = []
        for record in records_of(message):
            try:
                parsed.append((CONTACT_EVENT.validate_json(record.value or b""), record))
            except ValidationError as exc:
                await self._reject(record, InvalidRecord(describe(exc)))
        codes = [e for e, _ in parsed if isinstance(e, ContactCodeIssued)]
        if codes:
            await self.delivery.send_codes(codes)
        await self.delivery.confirm_all([e for e, _ in parsed if isinstance(e, ContactConfirmed)])

    async def _parse(self, records: Sequence[Any], model: type[M]) -> list[tuple[M, Any]]:
        parsed: list[tuple[M, Any]] = []
        for record in records:
            try:
                parsed.append((model.model_validate_json(record.value or b""), record))
            except ValidationError as exc:
                await self._reject(record, InvalidRecord(describe(exc)))
        return parsed

    async def _rejected(
        self, parsed: Sequence[tuple[BaseModel, Any]], rejected: Sequence[Rejected]
    ) -> None:
        by_event = {id(event): record for event, record in parsed}
        for item in rejected:
            record = by_event.get(id(item.arrival.source))
            assert record is not None, "a rejected arrival is one of the batch's"
            await self._reject(record, item.error)

    async def _reject(self, record: Any, exc: BaseException) -> None:
        """Dead-letter one record, with the reason and its original bytes and headers."""
        key = record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else None
        with bound(complaint_id=key):
            await self.reject(await self._parser.parse_message(record), exc, 1)
