"""The AsyncAPI document: generated from the code, committed, valid AsyncAPI 3.0.0."""

import ast
import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from faststream.kafka import KafkaMessage, TestKafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from schemas.commands import ResolveComplaint
from schemas.envelope import cloudevent_headers, cloudevent_type
from schemas.events import DeadLetter
from services.broker import make_broker, publish_event
from services.metrics import KitMetrics
from services.settings import KafkaSettings, RetrySettings
from sotong import asyncapi

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SPEC = ROOT / "tests" / "data" / "asyncapi" / "3.0.0.json"


@pytest.fixture(scope="module")
def platform() -> asyncapi.Platform:
    return asyncapi.read_platform()


@pytest.fixture(scope="module")
def document(platform: asyncapi.Platform) -> dict[str, Any]:
    return asyncapi.build(platform)


@pytest.fixture(scope="module")
def validator() -> jsonschema_rs.Draft7Validator:
    return jsonschema_rs.Draft7Validator(json.loads(SPEC.read_text(encoding="utf-8")))


def errors(validator: jsonschema_rs.Draft7Validator, instance: Any) -> list[str]:
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(instance)]


def test_the_committed_documents_are_what_the_code_says(document: dict[str, Any]) -> None:
    for suffix, text in asyncapi.render(document).items():
        committed = (DOCS / f"asyncapi.{suffix}").read_text(encoding="utf-8")
        assert committed == text, f"run `make docs` and commit docs/asyncapi.{suffix}"


def test_yaml_and_json_hold_the_same_document() -> None:
    as_yaml = yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert as_yaml == json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))


def test_the_committed_document_is_valid_asyncapi_3(
    validator: jsonschema_rs.Draft7Validator,
) -> None:
    committed = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))
    assert committed["asyncapi"] == "3.0.0"
    assert errors(validator, committed) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("operations", "routingSendComplaintLifecycle", "action"), "publish"),  # 2.x word
        (("components", "schemas", "DeadLetter", "discriminator"), {"propertyName": "x"}),
        (("channels", "complaintFiled", "bindings", "kafka", "bindingVersion"), "9.9.9"),
    ],
)
def test_the_schema_check_refuses_a_broken_document(
    document: dict[str, Any],
    validator: jsonschema_rs.Draft7Validator,
    path: tuple[str, ...],
    value: Any,
) -> None:
    broken = copy.deepcopy(document)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert errors(validator, broken) != []


def test_every_topic_is_a_channel_and_every_event_a_message_on_its_topic(
    document: dict[str, Any],
) -> None:
    by_address = {c["address"]: c for c in document["channels"].values()}
    assert list(by_address) == list(topics.ALL)
    messages = document["components"]["messages"]
    for event_type, topic in topics.OF_EVENT.items():
        on_topic = [
            messages[ref["$ref"].rsplit("/", 1)[1]]
            for ref in by_address[topic]["messages"].values()
        ]
        carried = [m["headers"]["properties"]["ce_type"]["examples"] for m in on_topic]
        assert [cloudevent_type(event_type, 1)] in carried, (
            f"{event_type} has no message on {topic}"
        )
        # one message per event type its topic carries (contact.codes carries two)
        assert len(carried) == sum(t == topic for t in topics.OF_EVENT.values())
        for message in on_topic:
            assert message["bindings"]["kafka"]["key"]["type"] == "string"
            assert message["correlationId"] == {"location": "$message.header#/ce_correlationid"}


def _schema_validator(document: dict[str, Any], name: str) -> jsonschema_rs.Draft7Validator:
    """A validator for one named payload schema, its references resolved in the document."""
    return jsonschema_rs.Draft7Validator(
        {"allOf": [{"$ref": f"#/components/schemas/{name}"}], "components": document["components"]}
    )


def test_payload_schemas_accept_what_is_published_and_refuse_what_is_not(
    document: dict[str, Any],
) -> None:
    command = json.loads(
        ResolveComplaint(complaint_id="c-1", actor="road", note="고쳤습니다").model_dump_json()
    )
    commands = _schema_validator(document, "ComplaintCommand")
    assert errors(commands, command) == []
    assert errors(commands, command | {"action": "explode"}) != []
    letter = json.loads(
        DeadLetter(
            original_topic=topics.FILED,
            original_value_b64="",
            consumer="routing",
            reason="body: Field required",
            retryable=False,
            attempts=1,
        ).model_dump_json()
    )
    letters = _schema_validator(document, "DeadLetter")
    assert errors(letters, letter) == []
    assert errors(letters, {k: v for k, v in letter.items() if k != "reason"}) != []


def test_the_headers_the_kit_writes_match_each_message(
    document: dict[str, Any], platform: asyncapi.Platform
) -> None:
    for name, payload in asyncapi.PAYLOADS:
        message = document["components"]["messages"][name]
        event_type = asyncapi._event_type(payload)
        topic = topics.OF_EVENT[event_type]
        publishers = [p for p in topics.PUBLISHERS[topic] if p in platform.sources]
        source = platform.sources[publishers[0]] if publishers else "/channel/kakao"
        headers = cloudevent_headers(
            event_id="e-1",
            event_type=event_type,
            source=source,
            time=datetime(2026, 12, 2, tzinfo=UTC),
            subject="c-1",
            schema_version=1,
            correlation_id="e-0",
        ) | {"correlation_id": "e-0"}  # FastStream's own (the next test publishes for real)
        schema = jsonschema_rs.Draft7Validator(message["headers"])
        assert set(headers) <= set(message["headers"]["properties"]), name
        assert errors(schema, headers) == [], name
        wrong = headers | {"ce_type": headers["ce_type"].replace(".v1", ".1")}
        assert errors(schema, wrong) != [], name
    lifecycle = document["components"]["messages"]["ComplaintStatusChanged"]["headers"]
    assert lifecycle["properties"]["ce_type"]["examples"] == [
        "kr.go.sotong.complaint.status_changed.v1"
    ]
    assert set(lifecycle["required"]) >= {"ce_id", "ce_type", "ce_subject", "content-type"}


def test_subscriptions_come_from_the_services_brokers(
    document: dict[str, Any], platform: asyncapi.Platform
) -> None:
    receives = {
        (
            op["tags"][0]["name"],
            op["channel"]["$ref"],
            op["bindings"]["kafka"]["groupId"]["enum"][0],
        )
        for op in document["operations"].values()
        if op["action"] == "receive"
    }
    expected = {
        (s.service, f"#/channels/{asyncapi._channel_id(s.topic)}", s.group_id)
        for s in platform.subscriptions
    }
    assert receives == expected
    for service, _, group in receives:
        assert group == f"sotong-{service}" or group.startswith(f"sotong-{service}-")
    assert ("routing", "#/channels/complaintCommands", "sotong-routing-commands") in receives
    assert {t for s, t, _ in receives if s == "tracker"} == {
        f"#/channels/{asyncapi._channel_id(t)}" for t in topics.TRACKED
    }


def test_faststreams_own_generator_sees_the_same_subscribed_topics(
    platform: asyncapi.Platform,
) -> None:
    """FastStream's AsyncAPI (which cannot show raw batch payloads or groups) agrees on
    which topics the brokers consume."""
    for service, broker in platform.brokers.items():
        spec = AsyncAPI(broker, schema_version="3.0.0").to_specification()
        addresses = {c["address"] for c in json.loads(spec.to_json())["channels"].values()}
        assert addresses == {s.topic for s in platform.subscriptions if s.service == service}


# -- the publishers table, held to the services' code ---------------------------------------


def published_topics(service: str) -> dict[str, list[str]]:
    """Every topic a service's code passes to a call named ``publish``: topic → where."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / service).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name != "publish":
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            first = node.args[0] if node.args else None
            message = f"{where}: publish's topic is not a schemas.topics constant"
            assert isinstance(first, ast.Attribute), message
            assert isinstance(first.value, ast.Name), message
            assert first.value.id == "topics", message
            found.setdefault(getattr(topics, first.attr), []).append(where)
    return found


def test_the_publishers_table_is_what_the_services_publish(platform: asyncapi.Platform) -> None:
    in_code = {s: set(published_topics(s)) for s in asyncapi.SERVICES}
    declared = {
        s: {t for t, publishers in topics.PUBLISHERS.items() if s in publishers}
        - {topics.DEAD_LETTER}
        for s in asyncapi.SERVICES
    }
    assert in_code == declared
    subscribing = {s.service for s in platform.subscriptions}
    assert set(topics.PUBLISHERS[topics.DEAD_LETTER]) == subscribing, (
        "every service that subscribes dead-letters through the kit's middleware"
    )
    assert set(topics.PUBLISHERS) == set(topics.ALL)


def test_the_publishers_scan_sees_a_publish() -> None:
    """The scan is not vacuous: intake's own publish of ComplaintFiled is found."""
    assert any(
        where.startswith("intake/handlers.py:")
        for where in published_topics("intake")[topics.FILED]
    )


def test_send_operations_follow_the_table(document: dict[str, Any]) -> None:
    sends = {
        (op["tags"][0]["name"], op["channel"]["$ref"])
        for op in document["operations"].values()
        if op["action"] == "send"
    }
    assert sends == {
        (p, f"#/channels/{asyncapi._channel_id(t)}")
        for t, publishers in topics.PUBLISHERS.items()
        for p in publishers
        if p in asyncapi.SERVICES
    }


def test_check_mode_fails_on_a_stale_document(tmp_path: Path) -> None:
    for suffix in ("yaml", "json"):
        (tmp_path / f"asyncapi.{suffix}").write_text(
            (DOCS / f"asyncapi.{suffix}").read_text(encoding="utf-8"), encoding="utf-8"
        )
    assert asyncapi.main(["--check", str(tmp_path)]) == 0
    stale = tmp_path / "asyncapi.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("complaint.sla", "x"), "utf-8")
    assert asyncapi.main(["--check", str(tmp_path)]) == 1


def test_a_nullable_scalar_keeps_its_values_and_its_constraints() -> None:
    pydantic_form = {
        "anyOf": [{"type": "string", "maxLength": 2}, {"type": "null"}],
        "default": None,
    }
    merged = asyncapi._nullable(pydantic_form)
    assert merged == {"type": ["string", "null"], "maxLength": 2, "default": None}
    for schema in (pydantic_form, merged):
        check = jsonschema_rs.Draft7Validator(schema)
        assert [check.is_valid(v) for v in (None, "ab", "abc", 3)] == [True, True, False, False]
    an_enum = {"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}]}
    assert asyncapi._nullable(an_enum) == an_enum  # null would fail the enum: not merged


def test_fields_carry_no_title_a_generator_would_name_a_type_after(
    document: dict[str, Any],
) -> None:
    """pydantic titles every `action` constant "Action"; a model generator then makes one
    enum of twelve and keeps one value (seen with the AsyncAPI CLI's Java models)."""
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            assert "title" not in prop, f"{name}.{field}"


@dataclass(frozen=True)
class Published:
    """What the kit's publish reads from an event (services.broker.KeyedEvent)."""

    event_type: str
    complaint_id: str
    event_id: str = "e-1"
    schema_version: int = 1
    occurred_at: datetime = datetime(2026, 12, 2, tzinfo=UTC)

    def model_dump_json(self) -> str:
        return json.dumps({"event_type": self.event_type})


async def test_records_the_kit_publishes_carry_the_documented_headers(
    document: dict[str, Any], platform: asyncapi.Platform
) -> None:
    """Through the kit's broker (its middlewares included) and FastStream's producer path,
    in memory: the headers on each record, the framework's too, are what its message's
    header schema allows and requires."""
    kafka = KafkaSettings()
    registry = CollectorRegistry()
    broker, dead_letters = make_broker(
        service="routing",
        kafka=kafka,
        retry=RetrySettings(),
        registry=registry,
        metrics=KitMetrics(registry),
    )
    seen: list[tuple[str, dict[str, str]]] = []

    @broker.subscriber(*topics.ALL, group_id="asyncapi-test")
    async def capture(body: dict[str, Any], message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        seen.append((record.topic, dict(message.headers)))

    letter: dict[str, Any] = {
        "original_topic": topics.FILED,
        "original_value_b64": "",
        "consumer": "routing",
    }
    async with TestKafkaBroker(broker):
        for _, payload in asyncapi.PAYLOADS:
            event_type = asyncapi._event_type(payload)
            topic = topics.OF_EVENT[event_type]
            if topic == topics.DEAD_LETTER:  # letters go out through the kit's DeadLetters
                for complaint_id in ("c-1", None):
                    await dead_letters.publish(
                        DeadLetter(
                            complaint_id=complaint_id,
                            reason="body: Field required",
                            retryable=False,
                            attempts=1,
                            **letter,
                        ),
                        correlation_id="e-0",
                    )
                continue
            publisher = topics.PUBLISHERS[topic][0]
            await publish_event(
                broker,
                kafka,
                topic,
                Published(event_type=event_type, complaint_id="c-1"),
                source=platform.sources.get(publisher, f"/{publisher}/kakao"),
                correlation_id="e-0",
            )
    assert {topic for topic, _ in seen} == set(topics.ALL)
    assert len(seen) == len(asyncapi.PAYLOADS) + 1  # two dead letters
    messages = {cloudevent_type(asyncapi._event_type(p), 1): n for n, p in asyncapi.PAYLOADS}
    for topic, headers in seen:
        schema = document["components"]["messages"][messages[headers["ce_type"]]]["headers"]
        assert set(headers) <= set(schema["properties"]), topic
        assert set(schema["required"]) <= set(headers), topic
        assert errors(jsonschema_rs.Draft7Validator(schema), headers) == [], topic
