"""Tiers and backends for the test suite.

Tiers (``make test-unit``, ``make test-service``, ``make test-e2e``) follow the folder,
or a test's own ``service`` marker where one test of a unit module needs a process:
``tests/unit`` is pure logic and in-memory fakes, and a unit test that opens a socket or
starts a process fails; ``tests/service`` (marked ``service``) runs one service on the
real embedded broker and database; ``tests/e2e`` (marked ``e2e``) runs the processes as
``make up`` does; ``tests/browser`` (marked ``browser``) drives the portal's pages in
headless Chromium on that stack. A contract test module lives in ``tests/contract`` and
runs the same assertions against a fake (unit tier) and the real adapter (its ``service``
parameter).

The backends are the embedded servers over real TCP by default.
``SOTONG_TEST_BACKEND=containers`` uses testcontainers (Kafka KRaft, MongoDB replica
set) instead, and fails loudly when no Docker engine answers: nothing here skips.
"""

import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from routing.classifier import Classifier, load_examples
from services import ratelimit
from services.mongo import Document
from services.settings import PROJECT_ROOT, KafkaSettings, MongoSettings, RetrySettings
from sotong import localstack

TIER_OF_FOLDER = {
    "service": pytest.mark.service,
    "e2e": pytest.mark.e2e,
    "browser": pytest.mark.browser,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.parent.name
        if folder in TIER_OF_FOLDER:
            item.add_marker(TIER_OF_FOLDER[folder])


def is_unit(item: pytest.Item) -> bool:
    return all(item.get_closest_marker(tier) is None for tier in ("service", "e2e", "browser"))


@pytest.fixture(autouse=True)
def _unit_tier_has_no_sockets_or_processes(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit tier must answer in seconds on any machine: no servers, no processes."""
    if not is_unit(request.node):
        return

    def refuse(what: str) -> Any:
        def refused(*_: object, **__: object) -> NoReturn:
            raise RuntimeError(
                f"a unit test tried to {what}: move it to tests/service (or mark its "
                "parameter service) or use an in-memory fake"
            )

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("open a connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("open a connection"))
    monkeypatch.setattr(socket.socket, "bind", refuse("listen on a port"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("start a process"))
    # rate-limit buckets built without a clock stand still: a unit test's Retry-After is
    # the same on a loaded CI machine as on a quiet one (tests of refill pass a clock)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=lambda: 1_000.0))


@dataclass(frozen=True)
class Backends:
    kafka_bootstrap: str
    mongo_uri: str
    idempotent_producer: bool
    log_dir: Path

    def kafka(self, topic_prefix: str = "") -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.kafka_bootstrap,
            idempotent_producer=self.idempotent_producer,
            topic_prefix=topic_prefix,
            partitions=3,
            session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=TEST_SESSION_TIMEOUT_MS // 4,
        )

    def mongo(self, database: str) -> MongoSettings:
        return MongoSettings.model_validate({"uri": self.mongo_uri, "database": database})

    def env(self, *, database: str, topic_prefix: str) -> dict[str, str]:
        return {
            "SOTONG_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "SOTONG_KAFKA_IDEMPOTENT_PRODUCER": str(self.idempotent_producer).lower(),
            "SOTONG_KAFKA_TOPIC_PREFIX": topic_prefix,
            "SOTONG_MONGO_URI": self.mongo_uri,
            "SOTONG_MONGO_DATABASE": database,
            "SOTONG_KAFKA_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
            "SOTONG_KAFKA_HEARTBEAT_INTERVAL_MS": str(TEST_SESSION_TIMEOUT_MS // 4),
            # routing processes load the classifier the session fitted instead of training
            "SOTONG_ROUTING_MODEL_DIR": str(MODEL_DIR),
        } | ABUSE_LIMITS_OFF


ABUSE_LIMITS_OFF = {
    name: "1000000"
    for name in (
        "SOTONG_INTAKE_FILINGS_PER_MINUTE",
        "SOTONG_INTAKE_FILINGS_PER_HOUR",
        "SOTONG_INTAKE_FILINGS_PER_DAY_PER_PHONE",
        "SOTONG_INTAKE_RESIDENT_ACTIONS_PER_MINUTE",
        "SOTONG_INTAKE_RESIDENT_ACTIONS_PER_HOUR",
        "SOTONG_INTAKE_COMPLAINT_ACTIONS_PER_MINUTE",
        "SOTONG_INTAKE_COMPLAINT_ACTIONS_PER_HOUR",
        "SOTONG_TRACKER_PUBLIC_PER_MINUTE",
        "SOTONG_PORTAL_FILINGS_PER_MINUTE",
        "SOTONG_PORTAL_ACTIONS_PER_MINUTE",
        "SOTONG_PORTAL_CHAT_PER_MINUTE",
        "SOTONG_PORTAL_PAGES_PER_MINUTE",
        "SOTONG_PORTAL_STATIC_PER_MINUTE",
        "SOTONG_CHATBOT_KAKAO_MESSAGES_PER_MINUTE",
        "SOTONG_CHATBOT_KAKAO_MESSAGES_PER_HOUR",
    )
}
"""Processes the e2e and browser tiers start file and poll from one address far faster than
a resident: they test other things. The limits themselves are tested in the unit and
service tiers, and through processes by the resilience suite (``sotong.resilience``),
which runs the local stack's own settings."""


TEST_SESSION_TIMEOUT_MS = 4_000
"""Short: the embedded broker holds a consumer's join for half of it (2 s, not 5 s)."""

MODEL_DIR = PROJECT_ROOT / "var" / "test-cache"
"""Fitted classifiers, shared by the session fixture and the routing processes of e2e."""

FAST_RETRY = RetrySettings(max_attempts=4, initial_backoff_seconds=0.05, max_backoff_seconds=0.5)


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    root = tmp_path_factory.mktemp("backends")
    kind = os.environ.get("SOTONG_TEST_BACKEND", "embedded")
    if kind == "containers":
        yield from _container_backends(root)
        return
    if kind != "embedded":
        raise pytest.UsageError(f"SOTONG_TEST_BACKEND must be embedded or containers, not {kind!r}")
    kafka_port, mongo_port = localstack.free_port(), localstack.free_port()
    children = localstack.start_backends(
        kafka_port=kafka_port, mongo_port=mongo_port, data_dir=root / "mongo", log_dir=root / "logs"
    )
    try:
        yield Backends(
            kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            mongo_uri=localstack.embedded_mongo_uri(mongo_port),
            idempotent_producer=False,
            log_dir=root / "logs",
        )
    finally:
        for child in reversed(children):
            child.stop()


def _container_backends(root: Path) -> Iterator[Backends]:
    import docker
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    docker.from_env().ping()  # no Docker engine: this raises, and the suite fails loudly
    with (
        KafkaContainer().with_kraft() as kafka,
        MongoDbContainer("mongo:8").with_command("--replSet rs0 --bind_ip_all") as mongo,
    ):
        mongo.exec(["mongosh", "--quiet", "--eval", "rs.initiate()"])
        host = mongo.get_container_host_ip()
        port = mongo.get_exposed_port(27017)
        yield Backends(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            mongo_uri=f"mongodb://{host}:{port}/?directConnection=true",
            idempotent_producer=True,
            log_dir=root / "logs",
        )


@pytest.fixture
async def mongo_db(backends: Backends) -> AsyncIterator[AsyncDatabase[Document]]:
    """A fresh database on the real server, dropped afterwards."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(backends.mongo_uri, tz_aware=True)
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(scope="session")
def trained_classifier() -> Classifier:
    """The classifier fitted on the shipped dataset: trained once, then kept under
    ``var/test-cache`` until the data or the code changes (training takes seconds)."""
    model = Classifier(threshold=0.75, general_desk="civil-passport")
    return model.fit_cached(load_examples(), MODEL_DIR)


@pytest.fixture
def unique() -> str:
    """A unique token for topic prefixes and database names, so tests never share state."""
    return uuid.uuid4().hex[:10]
