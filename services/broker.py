"""The broker factory: at-least-once by construction.

- Producers wait for every in-sync replica (``acks="all"``); the idempotent producer is
  on unless settings turn it off (the embedded broker rejects it).
- Subscribers made with :func:`subscriber` name their group, commit only after the
  handler returned, and start from the earliest offset when the group is new.
- Every publish is keyed by complaint id and carries CloudEvents headers.
- One middleware decides ack, retry or dead-letter for every failing message.
"""

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from faststream.middlewares import BaseMiddleware
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from schemas import pii, topics
from schemas.envelope import cloudevent_headers
from schemas.events import DeadLetter
from services import errors, telemetry
from services.logs import bound
from services.metrics import KitMetrics
from services.settings import KafkaSettings, RetrySettings

log = logging.getLogger(__name__)


class KeyedEvent(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def event_type(self) -> str: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def complaint_id(self) -> str: ...

    def model_dump_json(self) -> str: ...


def topic_name(settings: KafkaSettings, topic: str) -> str:
    return settings.topic_prefix + topic


EXCERPT_BYTES = 64 * 1024
"""How much of a failed record's value a dead letter carries: with headers and reason a
letter stays far below the producer's 1 MB limit however large the record was."""

Archive = Callable[[DeadLetter, bytes], Awaitable[None]]
"""Keeps the whole original value of a letter that carries only an excerpt."""


class DeadLetters:
    """Retry policy plus dead-letter publishing, shared by every subscriber of a service."""

    def __init__(
        self, *, service: str, kafka: KafkaSettings, retry: RetrySettings, metrics: KitMetrics
    ) -> None:
        self.service = service
        self.kafka = kafka
        self.retry = retry
        self.metrics = metrics
        self.broker: KafkaBroker | None = None
        self.archive: Archive | None = None
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter."""
        ceiling = min(
            self.retry.max_backoff_seconds,
            self.retry.initial_backoff_seconds * 2 ** (attempt - 1),
        )
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security

    def middleware(self, msg: Any, /, *, context: Any) -> "DeadLetterMiddleware":
        return DeadLetterMiddleware(msg, context=context, policy=self)

    async def dead_letter(self, msg: StreamMessage[Any], exc: BaseException, attempts: int) -> None:
        """One dead letter per record: a batch that failed as a whole yields one per record."""
        raw = msg.raw_message
        if isinstance(raw, tuple | list):
            await self._side_by_side(
                self._dead_letter_record(record, record.value, exc, attempts, msg.correlation_id)
                for record in raw
            )
        else:
            await self._dead_letter_record(raw, msg.body, exc, attempts, msg.correlation_id)

    async def dead_letter_records(
        self, failed: Sequence[tuple[Any, BaseException]], attempts: int = 1
    ) -> None:
        """Dead letters for records of a batch, each with its own reason, published side
        by side (the producer sends them in one round of requests instead of waiting for
        each acknowledgement in turn). Every letter is tried; the first failure is raised
        after, so the batch is not committed and is handled again."""
        await self._side_by_side(
            self._dead_letter_record(record, record.value, exc, attempts, _correlation(record))
            for record, exc in failed
        )

    @staticmethod
    async def _side_by_side(letters: Iterable[Awaitable[None]]) -> None:
        results = await asyncio.gather(*letters, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def publish(
        self, letter: DeadLetter, correlation_id: str | None = None, key: bytes | None = None
    ) -> None:
        """Put a dead letter on the dead-letter topic, keyed by its complaint, with the
        CloudEvents headers every event carries. Also for letters a service writes itself
        (the notifier's undeliverable messages)."""
        assert self.broker is not None, "DeadLetters.broker is set by make_broker"
        subject = letter.complaint_id or ""
        with telemetry.within(letter.complaint_id):
            await self.broker.publish(
                letter.model_dump_json().encode(),
                topic=topic_name(self.kafka, topics.DEAD_LETTER),
                key=key if key is not None else (subject.encode() or None),
                headers=cloudevent_headers(
                    event_id=letter.event_id,
                    event_type=letter.event_type,
                    source=f"/sotong/{self.service}",
                    time=letter.occurred_at,
                    subject=subject,
                    schema_version=letter.schema_version,
                    correlation_id=correlation_id,
                ),
            )

    async def _dead_letter_record(
        self,
        raw: Any,
        value: bytes | None,
        exc: BaseException,
        attempts: int,
        correlation_id: str | None,
    ) -> None:
        assert self.broker is not None, "DeadLetters.broker is set by make_broker"
        topic = getattr(raw, "topic", "") or ""
        key_bytes = getattr(raw, "key", None)
        key = key_bytes.decode("utf-8", "replace") if isinstance(key_bytes, bytes) else None
        headers = {
            str(k): (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
            for k, v in (getattr(raw, "headers", None) or ())
        }
        value = value or b""
        truncated = len(value) > EXCERPT_BYTES
        carried = pii.mask_bytes(value)  # the dead-letter topic is read by operators
        letter = DeadLetter(
            complaint_id=key,
            original_topic=topic,
            original_partition=getattr(raw, "partition", None),
            original_offset=getattr(raw, "offset", None),
            original_key=key,
            original_headers=headers,
            original_value_b64=base64.b64encode(carried[:EXCERPT_BYTES]).decode("ascii"),
            original_size=len(value),
            original_sha256=hashlib.sha256(value).hexdigest(),
            original_truncated=truncated,
            original_masked=carried != value,
            consumer=self.service,
            reason=pii.mask_text(errors.describe(exc, strip_root=True)),
            errors=errors.field_errors(exc, strip_root=True)
            if isinstance(exc, ValidationError)
            else list(exc.fields)
            if isinstance(exc, errors.InvalidMessage)
            else [],
            retryable=errors.is_retryable(exc),
            attempts=attempts,
        )
        if truncated or letter.original_masked:
            if self.archive is None:
                raise RuntimeError(
                    "a record too large or too personal for a dead letter, and no archive"
                )
            await self.archive(letter, value)  # first: the letter points at it
        await self.publish(
            letter,
            correlation_id=correlation_id,
            key=key_bytes if isinstance(key_bytes, bytes) else None,
        )
        invalid = isinstance(exc, ValidationError | errors.InvalidMessage)
        cause = "invalid" if invalid else type(exc).__name__
        self.metrics.dead_lettered.labels(self.service, topic, cause).inc()
        log.warning(
            "dead-lettered message",
            extra={"topic": topic, "offset": letter.original_offset, "reason": letter.reason},
        )


class DeadLetterMiddleware(BaseMiddleware):
    """Errors decide ack, retry or dead-letter here, and only here.

    A permanent failure goes to the dead-letter topic at once and is committed. A
    retryable one (the database or the broker unreachable) is never dead-lettered: it is
    retried in place with capped backoff, and after ``max_attempts`` the exception
    escapes, so the offset is not committed and the consumer rewinds to the message and
    tries again on its next poll (staying within the poll interval, so the group does not
    rebalance). The consumer's lag grows meanwhile and the lag alert fires; when the
    dependency is back, processing resumes where it stopped and nothing was set aside.
    Only if a dead letter itself cannot be published does a permanent failure escape too.
    """

    def __init__(self, msg: Any, /, *, context: Any, policy: DeadLetters) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(self, call_next: Callable[..., Awaitable[Any]], msg: Any) -> Any:
        raw = msg.raw_message
        batch = isinstance(raw, tuple | list)
        if batch:  # label by the first record's topic; a batch has no one complaint
            raw = raw[0] if raw else None
        key = None if batch else getattr(raw, "key", None)
        topic = getattr(raw, "topic", "")
        complaint_id = key.decode("utf-8", "replace") if isinstance(key, bytes) else None
        with bound(complaint_id=complaint_id, correlation_id=msg.correlation_id):
            attempt = 0
            while True:
                attempt += 1
                try:
                    return await call_next(msg)
                except Exception as exc:
                    if errors.is_retryable(exc):
                        self.policy.metrics.retries.labels(self.policy.service, topic).inc()
                        if attempt < self.policy.retry.max_attempts:
                            log.info(
                                "retrying message",
                                extra={"attempt": attempt, "reason": errors.describe(exc)},
                            )
                            await self.policy.sleep(self.policy.backoff(attempt))
                            continue
                        log.warning(
                            "dependency still unavailable; the offset stays and the message "
                            "is consumed again",
                            extra={"attempt": attempt, "reason": errors.describe(exc)},
                        )
                        await self.policy.sleep(self.policy.retry.max_backoff_seconds)
                        raise
                    try:
                        await self.policy.dead_letter(msg, exc, attempt)
                    except Exception:
                        log.exception("could not dead-letter; the offset stays uncommitted")
                        await self.policy.sleep(self.policy.retry.max_backoff_seconds)
                        raise
                    return None


def make_broker(
    *,
    service: str,
    kafka: KafkaSettings,
    retry: RetrySettings,
    registry: CollectorRegistry,
    metrics: KitMetrics,
    tracer_provider: TracerProvider | None = None,
) -> tuple[KafkaBroker, DeadLetters]:
    """The service's broker. With a tracer provider, tracing middlewares come first, so
    a consumed message's span encloses its metrics, retries and dead letter."""
    dead_letters = DeadLetters(service=service, kafka=kafka, retry=retry, metrics=metrics)
    security_kwargs: dict[str, Any] = {}
    if kafka.sasl_mechanism:
        from faststream.security import SASLPlaintext, SASLScram256, SASLScram512

        if not (kafka.sasl_username and kafka.sasl_password):
            raise ValueError("SOTONG_KAFKA_SASL_USERNAME and _PASSWORD are required with SASL")
        cls = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }[kafka.sasl_mechanism.upper()]
        security_kwargs["security"] = cls(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            use_ssl=kafka.security_protocol.upper().startswith("SASL_SSL"),
        )
    broker = KafkaBroker(
        kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=kafka.idempotent_producer,
        client_id=f"sotong-{service}",
        middlewares=[
            *telemetry.kafka_middlewares(tracer_provider),
            KafkaPrometheusMiddleware(registry=registry, app_name=service),
            dead_letters.middleware,
        ],
        logger=logging.getLogger(f"faststream.{service}"),
        **security_kwargs,
    )
    dead_letters.broker = broker
    return broker, dead_letters


def _correlation(record: Any) -> str | None:
    """The correlation id a record's headers carry, if any."""
    for key, value in getattr(record, "headers", None) or ():
        if key == "correlation_id" and isinstance(value, bytes):
            return value.decode("utf-8", "replace")
    return None


def _readable(record: Any) -> Any:
    """The record with every header value valid UTF-8: a null value becomes empty, bytes
    that are not UTF-8 are decoded with replacement characters. FastStream decodes headers
    strictly in its parser, before any middleware, so one bad header would otherwise fail
    the record (and a batch subscriber's whole batch) where no dead letter can catch it.
    No handler reads headers for meaning, so the record is processed on its payload."""
    headers = getattr(record, "headers", None) or ()
    if all(isinstance(v, bytes) and _is_utf8(v) for _, v in headers):
        return record
    fixed = tuple(
        (str(k), v.decode("utf-8", "replace").encode() if isinstance(v, bytes) else b"")
        for k, v in headers
    )
    log.warning(
        "unreadable Kafka header replaced",
        extra={"topic": getattr(record, "topic", ""), "offset": getattr(record, "offset", None)},
    )
    return dataclasses.replace(record, headers=fixed)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def tolerant_parser(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's own parser, on records whose headers it can always decode."""
    if isinstance(msg, tuple | list):
        return await original(tuple(_readable(record) for record in msg))
    return await original(_readable(msg))


def raw_values(message: StreamMessage[Any]) -> list[bytes]:
    """A batch subscriber's decoder: the bytes untouched, so one record that is not a valid
    message cannot fail its whole batch before the handler sees (and dead-letters) it."""
    return [record.value or b"" for record in records_of(message)]


def records_of(message: StreamMessage[Any]) -> Sequence[Any]:
    """The Kafka records of a message: a batch's, or the one."""
    raw = message.raw_message
    return raw if isinstance(raw, tuple | list) else (raw,)


def subscriber(
    broker: KafkaBroker,
    kafka: KafkaSettings,
    *topic_names: str,
    group_id: str,
    **kwargs: Any,
) -> Any:
    """A subscriber that is at-least-once: named group, commit after processing, earliest."""
    return broker.subscriber(
        *(topic_name(kafka, t) for t in topic_names),
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        **({"parser": tolerant_parser} | kwargs),
    )


async def publish_event(
    broker: KafkaBroker,
    kafka: KafkaSettings,
    topic: str,
    event: KeyedEvent,
    *,
    source: str,
    correlation_id: str | None = None,
) -> None:
    """Publish keyed by complaint id, with CloudEvents headers, waiting for the broker's ack.
    Traced, the publish belongs to the complaint's trace (``telemetry.within``) and carries
    its ``traceparent``."""
    occurred_at = event.occurred_at
    with telemetry.within(event.complaint_id):
        await broker.publish(
            event.model_dump_json().encode(),
            topic=topic_name(kafka, topic),
            key=event.complaint_id.encode(),
            headers=cloudevent_headers(
                event_id=event.event_id,
                event_type=event.event_type,
                source=source,
                time=occurred_at,
                subject=event.complaint_id,
                schema_version=event.schema_version,
                correlation_id=correlation_id,
            ),
            correlation_id=correlation_id,
        )


async def ensure_topics(kafka: KafkaSettings) -> None:
    """Create every topic with the configured partitions; existing topics are left alone."""
    if not kafka.create_topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, client_id="sotong-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(topic_name(kafka, t), kafka.partitions, kafka.replication_factor)
            for t in topics.ALL
            if topic_name(kafka, t) not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()
