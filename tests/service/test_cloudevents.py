"""Every event type, as the services publish it on the real broker, is read by the
official CloudEvents SDK's Kafka binding with the attributes a consumer relies on."""

import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as ce_kafka
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from schemas import topics
from schemas.commands import COMMAND_ADAPTER
from schemas.events import (
    CommandRejected,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    DeadLetter,
    NotificationOutcome,
)
from services.broker import KeyedEvent, ensure_topics, make_broker, publish_event, topic_name
from services.metrics import KitMetrics
from services.settings import KafkaSettings, RetrySettings
from tests.conftest import Backends

AT = datetime(2026, 12, 2, 1, 30, tzinfo=UTC)
CID = str(uuid.uuid4())


def one_of_each() -> list[KeyedEvent]:
    common = {"complaint_id": CID, "occurred_at": AT}
    return [
        ComplaintFiled.model_validate(
            common
            | {
                "receipt_number": "261202-000001",
                "tracking_token_hash": "0" * 64,
                "channel": "web",
                "resident": {},
                "body": "가로등이 꺼져 있어요",
                "location": {"dong": "석남1동"},
                "submitted_at": AT,
            }
        ),
        COMMAND_ADAPTER.validate_python(common | {"action": "start_site_check", "actor": "roads"}),
        ComplaintStatusChanged.model_validate(
            common
            | {
                "receipt_number": "261202-000001",
                "sequence": 1,
                "from_state": None,
                "to_state": "received",
                "trigger": "file",
                "actor": "intake",
            }
        ),
        ComplaintDeadlineAlert.model_validate(
            common
            | {
                "receipt_number": "261202-000001",
                "kind": "deadline_warning",
                "state": "assigned",
                "received_at": AT,
                "due_at": AT,
            }
        ),
        CommandRejected.model_validate(
            common
            | {
                "command_id": "cmd-1",
                "action": "resolve",
                "code": "illegal_transition",
                "reason": "not in review",
                "reason_ko": "심사 중이 아닙니다",
            }
        ),
        NotificationOutcome.model_validate(
            common
            | {
                "source_event_id": "e-1",
                "recipient": "resident",
                "channel": "sms",
                "outcome": "sent",
                "template": "received",
            }
        ),
    ]


async def test_every_event_type_is_a_cloudevent_to_the_official_sdk(backends: Backends) -> None:
    prefix = f"ce{uuid.uuid4().hex[:6]}."
    kafka = KafkaSettings(
        bootstrap_servers=backends.kafka_bootstrap,
        idempotent_producer=backends.idempotent_producer,
        topic_prefix=prefix,
        partitions=1,
    )
    await ensure_topics(kafka)
    broker, dead_letters = make_broker(
        service="cetest",
        kafka=kafka,
        retry=RetrySettings(),
        registry=CollectorRegistry(),
        metrics=KitMetrics(CollectorRegistry()),
    )
    assert isinstance(broker, KafkaBroker)
    events = one_of_each()
    letter = DeadLetter(
        original_topic=topics.FILED,
        original_value_b64="e30=",
        consumer="cetest",
        reason="invalid JSON",
        retryable=False,
        attempts=1,
        occurred_at=AT,
    )
    await broker.start()
    try:
        for event in events:
            await publish_event(
                broker,
                kafka,
                topics.OF_EVENT[event.event_type],
                event,
                source="/sotong/cetest",
                correlation_id="corr-1",
            )
        await dead_letters.publish(letter)
    finally:
        await broker.stop()

    consumer = AIOKafkaConsumer(
        *(topic_name(kafka, t) for t in topics.ALL),
        bootstrap_servers=backends.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"{prefix}reader",
    )
    await consumer.start()
    read: dict[str, BaseCloudEvent] = {}
    try:
        while len(read) < len(events) + 1:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    message = ce_kafka.KafkaMessage(
                        headers=dict(record.headers), key=record.key, value=record.value
                    )
                    cloudevent = ce_kafka.from_binary_event(message)
                    read[str(cloudevent.get_id())] = cloudevent
    finally:
        await consumer.stop()

    for event in events:
        cloudevent = read[event.event_id]
        assert cloudevent.get_specversion() == "1.0"
        assert cloudevent.get_type() == f"kr.go.sotong.{event.event_type}.v1"
        assert cloudevent.get_source() == "/sotong/cetest"
        assert cloudevent.get_time() == AT
        assert cloudevent.get_subject() == CID
        assert cloudevent.get_datacontenttype() == "application/json"
        assert cloudevent.get_extension("correlationid") == "corr-1"
        data = cloudevent.get_data()
        assert isinstance(data, dict)
        assert data["event_type"] == event.event_type
    dead = read[letter.event_id]
    assert dead.get_type() == "kr.go.sotong.dead_lettered.v1"
    assert dead.get_source() == "/sotong/cetest"
    assert dead.get_subject() is None  # a letter about no complaint has no subject
