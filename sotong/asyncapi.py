"""The platform's AsyncAPI 3.0 document, generated from the code.

Subscriptions (topics, consumer groups, client ids) are read from each service's
FastStream broker as ``create_app`` wires it; nothing connects, so no Kafka, MongoDB or
fitted classifier is needed. Payloads come from the pydantic models in ``schemas/``
(FastStream shows a raw batch subscriber's payload as empty), publishers from
``schemas.topics.PUBLISHERS``, the CloudEvents headers from ``schemas.envelope``.

``python -m sotong.asyncapi docs`` writes ``docs/asyncapi.yaml`` and ``.json``;
``--check`` fails when the committed files differ from what the code says.
"""

import argparse
import ast
import inspect
import itertools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, get_args

import yaml
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber, LogicSubscriber
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import core_schema

from schemas import topics
from schemas.commands import AnyCommand, ComplaintCommand
from schemas.envelope import CE_SPECVERSION, cloudevent_type
from schemas.events import (
    CommandRejected,
    ComplaintDeadlineAlert,
    ComplaintFiled,
    ComplaintStatusChanged,
    ComplaintSubmitted,
    ContactCodeIssued,
    ContactConfirmed,
    DeadLetter,
    NotificationOutcome,
    NotificationRetryScheduled,
    ResidentBound,
)
from services.runtime import Runtime
from services.settings import KafkaSettings

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMA_REF = "#/components/schemas/{model}"

PAYLOADS: tuple[tuple[str, Any], ...] = (
    ("ComplaintSubmitted", ComplaintSubmitted),
    ("ComplaintFiled", ComplaintFiled),
    ("ComplaintCommand", ComplaintCommand),
    ("ComplaintStatusChanged", ComplaintStatusChanged),
    ("ComplaintDeadlineAlert", ComplaintDeadlineAlert),
    ("CommandRejected", CommandRejected),
    ("NotificationOutcome", NotificationOutcome),
    ("NotificationRetryScheduled", NotificationRetryScheduled),
    ("ContactCodeIssued", ContactCodeIssued),
    ("ContactConfirmed", ContactConfirmed),
    ("ResidentBound", ResidentBound),
    ("DeadLetter", DeadLetter),
)
"""Every message type on the wire, by the name the document gives it."""


SERVICES = ("intake", "routing", "tracker", "notifier")


def _services() -> dict[str, Callable[[], FastAPI]]:
    """The four services' composition roots, imported when the document is built."""
    from intake.app import create_app as intake
    from notifier.app import create_app as notifier
    from routing.app import create_app as routing
    from tracker.app import create_app as tracker

    return {"intake": intake, "routing": routing, "tracker": tracker, "notifier": notifier}


@dataclass(frozen=True)
class Subscription:
    service: str
    topic: str
    group_id: str
    client_id: str
    batch: bool


@dataclass(frozen=True)
class Platform:
    """What the document is made of, read from the running code's objects."""

    subscriptions: tuple[Subscription, ...]
    sources: Mapping[str, str]  # service → its CloudEvents source
    brokers: Mapping[str, KafkaBroker]

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self.sources)


def read_platform() -> Platform:
    """Build each service as ``make up`` would (without starting it) and read its broker."""
    subscriptions: list[Subscription] = []
    sources: dict[str, str] = {}
    brokers: dict[str, KafkaBroker] = {}
    for service, create_app in _services().items():
        runtime = create_app().state.runtime
        assert isinstance(runtime, Runtime)
        sources[service] = runtime.source
        brokers[service] = runtime.broker
        subscriptions += _subscriptions(service, runtime)
    return Platform(tuple(subscriptions), sources, brokers)


def _subscriptions(service: str, runtime: Runtime) -> Iterator[Subscription]:
    prefix = runtime.settings.kafka.topic_prefix
    client_id = str(runtime.broker.config.client_id)
    for subscriber in runtime.broker.subscribers:
        if not isinstance(subscriber, LogicSubscriber):
            raise TypeError(f"{service}: {type(subscriber).__name__} is not a Kafka subscriber")
        group_id = subscriber.group_id
        names = [t.name for t in subscriber.topics]
        if not names or group_id is None:
            raise ValueError(f"{service}: a subscriber without topics or a consumer group")
        for name in names:
            topic = name.removeprefix(prefix)
            if topic not in topics.ALL:
                raise ValueError(f"{service} subscribes to {name!r}, not a topic in schemas")
            yield Subscription(
                service=service,
                topic=topic,
                group_id=str(group_id),
                client_id=client_id,
                batch=isinstance(subscriber, BatchSubscriber),
            )


# -- the contract's own facts -------------------------------------------------------------


def _event_type(payload: Any) -> str:
    models: tuple[type[BaseModel], ...] = (
        get_args(AnyCommand) if payload is ComplaintCommand else (payload,)
    )
    types = {str(m.model_fields["event_type"].default) for m in models}
    if len(types) != 1:
        raise ValueError(f"{payload!r} carries several event types: {sorted(types)}")
    return types.pop()


def _first_model(payload: Any) -> type[BaseModel]:
    model: type[BaseModel] = get_args(AnyCommand)[0] if payload is ComplaintCommand else payload
    return model


def _docstring(payload: Any) -> str:
    if payload is ComplaintCommand:
        text = inspect.getdoc(sys.modules[_first_model(payload).__module__]) or ""
    else:
        text = inspect.getdoc(payload) or ""
    return text.replace("``", "`")  # reStructuredText literals as Markdown


def topic_docs() -> dict[str, str]:
    """The docstring under each topic constant in ``schemas/topics.py``."""
    tree = ast.parse(inspect.getsource(topics))
    docs: dict[str, str] = {}
    body = tree.body
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign | ast.Assign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name):
                value = getattr(topics, target.id)
                if isinstance(value, str) and value in topics.ALL:
                    docs[value] = inspect.cleandoc(following.value.value).replace("``", "`")
    return docs


def _external(topic: str) -> bool:
    """Whether a party outside Sotong publishes on the topic."""
    return any(p not in SERVICES for p in topics.PUBLISHERS[topic])


def _camel(*words: str) -> str:
    parts = [p for w in words for p in re.split(r"[._\-]", w) if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _channel_id(topic: str) -> str:
    return _camel(topic)


# -- schemas --------------------------------------------------------------------------------


def _asyncapi_schema(node: Any) -> Any:
    """pydantic's JSON Schema as an AsyncAPI Schema Object: the discriminator is a property
    name there, not OpenAPI's object."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                out[key] = value.replace("``", "`")  # reStructuredText literals as Markdown
            elif key == "discriminator" and isinstance(value, dict):
                out[key] = value["propertyName"]
            elif key == "properties" and isinstance(value, dict):
                # pydantic titles each field after its name ("Action"); generators name a
                # type after it, and twelve commands' `action` constants would collide
                out[key] = {
                    name: _asyncapi_schema({k: v for k, v in prop.items() if k != "title"})
                    for name, prop in value.items()
                }
            else:
                out[key] = _asyncapi_schema(value)
        return _nullable(out)
    if isinstance(node, list):
        return [_asyncapi_schema(v) for v in node]
    return node


class WireSchema(GenerateJsonSchema):
    """As pydantic, but what Sotong publishes has every field: its publishers serialise
    with ``model_dump_json()`` and exclude nothing, so a reader may rely on each field
    being present (``null`` where the model allows it)."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization" and field.get("serialization_exclude_if") is None:
            return True
        return super().field_is_required(field, total)


_MERGEABLE = frozenset({"string", "integer", "number", "boolean", "array"})
_EXCLUDES_NULL = frozenset({"enum", "const", "not", "allOf", "anyOf", "oneOf", "$ref"})


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [{type: string, ...}, {type: null}]`` as ``type: [string, "null"]``: the
    same values (a string keyword ignores null), and code generators make a nullable
    string of it instead of an anonymous union."""
    options = schema.get("anyOf")
    if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
        return schema
    other: dict[str, Any] = options[0] if options[1] == {"type": "null"} else options[1]
    if other.get("type") not in _MERGEABLE or _EXCLUDES_NULL & set(other):
        return schema
    merged = {k: v for k, v in schema.items() if k != "anyOf"}
    return merged | other | {"type": [other["type"], "null"]}


def payload_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """(message name → payload schema or reference, every named schema). Sotong's own
    events as they are serialised; what arrives from outside as Sotong validates it."""
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = []
    for name, payload in PAYLOADS:
        topic = topics.OF_EVENT[_event_type(payload)]
        mode: JsonSchemaMode = "validation" if _external(topic) else "serialization"
        inputs.append((name, mode, TypeAdapter(payload)))
    keyed, top = TypeAdapter.json_schemas(
        inputs, ref_template=SCHEMA_REF, schema_generator=WireSchema
    )
    refs = {name: _asyncapi_schema(schema) for (name, _), schema in keyed.items()}
    if "ComplaintCommand" in refs and "$ref" not in refs["ComplaintCommand"]:
        top.setdefault("$defs", {})["ComplaintCommand"] = refs["ComplaintCommand"]
        refs["ComplaintCommand"] = {"$ref": SCHEMA_REF.format(model="ComplaintCommand")}
    defs = {k: _asyncapi_schema(v) for k, v in sorted(top.get("$defs", {}).items())}
    return refs, defs


def headers_schema(payload: Any, topic: str, sources: Sequence[str]) -> dict[str, Any]:
    """The CloudEvents attributes as Kafka headers (binary content mode), for one message."""
    event_type = _event_type(payload)
    version = _first_model(payload).model_fields["schema_version"].default
    example = cloudevent_type(event_type, version)
    stem = example.removesuffix(f".v{version}")
    if stem == example:
        raise ValueError(f"{example!r} does not end in the schema version")
    fields = _first_model(payload).model_fields
    subject_required = "complaint_id" in fields and fields["complaint_id"].is_required()
    if "complaint_id" not in fields:
        subject = "What the publisher names as the subject: no complaint id exists yet."
    elif subject_required:
        subject = "The complaint id (the message key)."
    else:
        subject = "The complaint id (the message key); absent on a message about no complaint."
    external = _external(topic)
    source: dict[str, Any] = {"type": "string", "description": "The publisher, a URI reference."}
    if not external:
        source["enum"] = list(sources)
    properties: dict[str, Any] = {
        "ce_specversion": {
            "type": "string",
            "const": CE_SPECVERSION,
            "description": "CloudEvents spec version.",
        },
        "ce_id": {
            "type": "string",
            "description": "The payload's `event_id`: readers deduplicate on it.",
        },
        "ce_type": {
            "type": "string",
            "pattern": f"^{re.escape(stem)}\\.v[1-9][0-9]*$",
            "examples": [example],
            "description": "Reverse-DNS prefix, event name, schema version.",
        },
        "ce_source": source,
        "ce_time": {
            "type": "string",
            "format": "date-time",
            "description": "The payload's `occurred_at` (RFC 3339).",
        },
        "ce_subject": {"type": "string", "description": subject},
        "ce_dataschemaversion": {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "examples": [str(version)],
            "description": "The payload's `schema_version`.",
        },
        "ce_correlationid": {
            "type": "string",
            "description": "The `event_id` of the message that caused this one, when any.",
        },
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {
            "type": "string",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C Trace Context of the publish, when tracing is on "
            "(OpenTelemetry): a consumer that continues it joins the complaint's trace.",
        },
        "tracestate": {
            "type": "string",
            "description": "W3C Trace Context vendor state, alongside `traceparent`.",
        },
        "correlation_id": {
            "type": "string",
            "description": "FastStream's own correlation id, on every message Sotong "
            "publishes; not part of the contract: read `ce_correlationid`.",
        },
    }
    required = (
        []
        if external
        else [
            "ce_specversion",
            "ce_id",
            "ce_type",
            "ce_source",
            "ce_time",
            *(["ce_subject"] if subject_required else []),
            "ce_dataschemaversion",
            "content-type",
            "correlation_id",
        ]
    )
    description = (
        "CloudEvents 1.0 attributes, Kafka binding, binary mode. Optional on this topic: its "
        "Sotong consumers read no header for meaning, but a publisher should set them."
        if external
        else "CloudEvents 1.0 attributes, Kafka binding, binary mode: on every message."
    )
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
    }


def key_schema(topic: str) -> dict[str, Any]:
    if topic == topics.SUBMISSIONS:
        description = (
            "Chosen by the channel (no complaint id exists yet); keying by `channel_ref` keeps "
            "a submission's redeliveries in one partition."
        )
    elif topic == topics.DEAD_LETTER:
        description = "The original message's key (its complaint id), absent if it had none."
    else:
        description = "The complaint id: one complaint's messages stay in order in one partition."
    return {"type": "string", "description": description}


# -- the document ---------------------------------------------------------------------------


INFO_DESCRIPTION = """\
Every topic of the Sotong complaint (민원) workflow, who publishes on it and who consumes it.

- **Keys.** Every message about a complaint is keyed by its complaint id, so one \
complaint's messages stay in order in one partition.
- **Payloads** are JSON of the frozen pydantic models in `schemas/`. Readers ignore \
unknown fields, so additive changes never break a subscriber; `schema_version` (and the \
`ce_type` suffix) names the payload's version.
- **Headers** carry the CloudEvents 1.0 attributes in the Kafka binding's binary mode \
(`ce_*` and `content-type`), so any CloudEvents SDK reads a message as an event and a \
system can route on headers alone.
- **Tracing.** Where a deployment turns OpenTelemetry on, every message also carries a \
W3C `traceparent` header (outside the CloudEvents attributes, so SDKs ignore it); a \
consumer that continues it appears in the complaint's one trace.
- **Delivery** is at least once: deduplicate on `event_id` (`ce_id`).
- **Consumer groups** are `sotong-<service>` or `sotong-<service>-<purpose>`; a \
department system uses a group of its own.
- **Personal data.** `complaint.submissions` and `complaint.filed` carry the resident's \
contact and are internal; department systems read `complaint.lifecycle`.
- **Topic names** get `SOTONG_KAFKA_TOPIC_PREFIX` prepended where a deployment sets one.

Generated by `make docs` from the services and `schemas/`; `make lint` fails when it is \
out of date."""


def _publishers_text(topic: str, subscriptions: Sequence[Subscription]) -> str:
    names = {
        topics.CHANNELS: "channel systems (KakaoTalk, chatbot, call centre, Open311 bridges)",
        topics.DEPARTMENTS: "department systems",
    }
    publishers = ", ".join(names.get(p, p) for p in topics.PUBLISHERS[topic])
    consumers = ", ".join(
        f"{s.service} (group `{s.group_id}`)" for s in subscriptions if s.topic == topic
    )
    return f"Published by: {publishers}.\n\nConsumed by: {consumers or 'no Sotong service'}."


def build(platform: Platform) -> dict[str, Any]:
    payload_refs, schemas = payload_schemas()
    docs = topic_docs()
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = {t: [] for t in topics.ALL}
    for name, payload in PAYLOADS:
        topic = topics.OF_EVENT[_event_type(payload)]
        by_topic[topic].append(name)
        sources = [platform.sources[p] for p in topics.PUBLISHERS[topic] if p in platform.sources]
        summary, _, detail = _docstring(payload).partition("\n\n")
        messages[name] = {
            "name": name,
            "title": name,
            "summary": " ".join(summary.split()),
            **({"description": detail} if detail else {}),
            "contentType": "application/json",
            "headers": headers_schema(payload, topic, sources),
            "payload": payload_refs[name],
            "correlationId": {"location": "$message.header#/ce_correlationid"},
            "bindings": {
                "kafka": {"key": key_schema(topic), "bindingVersion": KAFKA_BINDING_VERSION}
            },
        }
    missing = set(topics.OF_EVENT) - {_event_type(p) for _, p in PAYLOADS}
    if missing:
        raise ValueError(f"no payload model for event types {sorted(missing)}")
    for topic in topics.ALL:
        channel = _channel_id(topic)
        channels[channel] = {
            "address": topic,
            "title": topic,
            "description": f"{docs.get(topic, '')}\n\n"
            + _publishers_text(topic, platform.subscriptions),
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in by_topic[topic]},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        channel_messages = [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in by_topic[topic]]
        for publisher in topics.PUBLISHERS[topic]:
            if publisher not in platform.sources:
                continue
            operations[_camel(publisher, "send", topic)] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "title": f"{publisher} publishes on {topic}",
                "tags": [{"name": publisher}],
                "messages": channel_messages,
                "bindings": {
                    "kafka": {
                        "clientId": {
                            "type": "string",
                            "enum": [str(platform.brokers[publisher].config.client_id)],
                        },
                        "bindingVersion": KAFKA_BINDING_VERSION,
                    }
                },
            }
        for sub in platform.subscriptions:
            if sub.topic != topic:
                continue
            operation = _camel(sub.service, "receive", topic)
            if operation in operations:
                raise ValueError(f"{sub.service} subscribes to {topic} twice")
            operations[operation] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "title": f"{sub.service} consumes {topic}",
                "summary": f"Consumer group `{sub.group_id}`"
                + (", in batches." if sub.batch else ", one message at a time."),
                "tags": [{"name": sub.service}],
                "messages": channel_messages,
                "bindings": {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [sub.group_id]},
                        "clientId": {"type": "string", "enum": [sub.client_id]},
                        "bindingVersion": KAFKA_BINDING_VERSION,
                    }
                },
            }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Sotong",
            "version": metadata.version("sotong"),
            "description": INFO_DESCRIPTION,
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
            "tags": [{"name": s, "description": f"the {s} service"} for s in platform.services],
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka cluster a deployment names in "
                "`SOTONG_KAFKA_BOOTSTRAP_SERVERS`; by default the embedded broker `make up` "
                "starts.",
                "variables": {
                    "bootstrap": {
                        "default": KafkaSettings.model_fields["bootstrap_servers"].default,
                        "description": "host:port of a bootstrap broker",
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line text as literal blocks, so descriptions read as written; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(document: Mapping[str, Any]) -> dict[str, str]:
    """The document as the committed files hold it: suffix → text."""
    return {
        "yaml": yaml.dump(
            document,
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=False,
        ),
        "json": json.dumps(document, indent=2, ensure_ascii=False) + "\n",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sotong.asyncapi", description="Write or check docs/asyncapi.*"
    )
    parser.add_argument("directory", type=Path, help="where asyncapi.yaml and .json live")
    parser.add_argument(
        "--check", action="store_true", help="fail if the files differ from the code"
    )
    args = parser.parse_args(argv)
    quiet = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the services' start-up warnings are not about the docs
    try:
        texts = render(build(read_platform()))
    finally:
        logging.disable(quiet)
    stale = []
    for suffix, text in texts.items():
        path = args.directory / f"asyncapi.{suffix}"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"out of date with the code: {', '.join(stale)}; run `make docs` and commit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
