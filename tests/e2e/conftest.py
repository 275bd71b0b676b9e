"""The whole platform as separate processes on the real backends, driven over HTTP and Kafka."""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.catalogue import catalogue
from sotong import localstack
from sotong.localstack import ServiceProcess
from tests.conftest import Backends

API_KEYS = {code: f"test-key-{code}" for code in catalogue().codes}
CALL_CENTRE_KEY = "e2e-call-centre-credential"
"""The call centre's channel credential: its filings vouch for the resident's phone, so
tests about something else than confirming contacts (issue 11 §11) file through it."""
SIGNING_KEYS = {"e2e": "e2e-command-signing-key-0123456789abcdef"}
INTAKE_STAFF_KEY = "e2e-intake-asks-the-tracker"
"""As ``sotong up``: intake asks the tracker, as staff, which department is responsible
when one fetches a photo."""
"""intake signs commands with it, routing refuses any without (as ``sotong up`` runs)."""


@dataclass
class Stack:
    backends: Backends
    services: dict[str, ServiceProcess]
    outbox: Path
    topic_prefix: str
    database: str

    @property
    def intake(self) -> str:
        return self.services["intake"].url

    @property
    def tracker(self) -> str:
        return self.services["tracker"].url

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    def outbox_lines(
        self, complaint_id: str | None = None, *, codes: bool = False
    ) -> list[dict[str, Any]]:
        """The resident messages written to the outbox; contact codes only if asked for."""
        if not self.outbox.exists():
            return []
        lines = [
            json.loads(line)
            for line in self.outbox.read_text(encoding="utf-8").splitlines()
            if line
        ]
        return [
            x
            for x in lines
            if (complaint_id is None or x["complaint_id"] == complaint_id)
            and (codes or x["template_code"] != CODE_TEMPLATE)
        ]


CODE_TEMPLATE = "SOTONG_CONTACT_CODE"
CODE = re.compile(r"인증번호는 ([0-9]{6})입니다")


async def confirm_contact(
    http: httpx.AsyncClient,
    intake: str,
    filed: dict[str, Any],
    codes: Callable[[], list[dict[str, Any]]],
) -> None:
    """As the resident: read the code the notifier sent (``codes``: the outbox lines that
    may hold it) and enter it, so the complaint's messages are no longer held (issue 11
    §11). A filing that needed no code is left as it is."""
    if not filed.get("contact"):  # absent, or null: no phone to confirm
        return

    def sent() -> list[str]:
        return [
            m.group(1)
            for line in codes()
            if line["complaint_id"] == filed["complaint_id"]
            and line["template_code"] == CODE_TEMPLATE
            and (m := CODE.search(line["text"]))
        ]

    [code, *_] = await eventually(sent, what="the contact code message")
    response = await http.post(
        f"{intake}/v1/complaints/{filed['complaint_id']}/contact/confirm",
        json={"code": code},
        headers={"X-Tracking-Token": filed["tracking_token"]},
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def stack(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    suffix = root.name.replace("-", "_")[-16:]
    prefix, database = f"e2e{suffix}.", f"e2e_{suffix}"
    env = backends.env(database=database, topic_prefix=prefix) | {
        "SOTONG_NOTIFIER_OUTBOX_PATH": str(root / "outbox.jsonl"),
        # as sotong up: clearly fake work contacts, so staff notices reach the staff outbox
        "SOTONG_NOTIFIER_STAFF_DIRECTORY_PATH": str(
            localstack.local_staff_directory(root / "staff-contacts.json")
        ),
        "SOTONG_RETRY_INITIAL_BACKOFF_SECONDS": "0.1",
        "SOTONG_RETRY_MAX_BACKOFF_SECONDS": "1",
        "SOTONG_INTAKE_RELAY_INTERVAL_SECONDS": "0.5",
        "SOTONG_ROUTING_RELAY_INTERVAL_SECONDS": "0.5",
        "SOTONG_INTAKE_API_KEYS": json.dumps(API_KEYS),
        "SOTONG_INTAKE_CHANNEL_KEYS": json.dumps({"call_center": CALL_CENTRE_KEY}),
        "SOTONG_COMMAND_SIGNING_KEYS": json.dumps(SIGNING_KEYS),
        "SOTONG_TRACKER_STAFF_API_KEYS": json.dumps({"intake": INTAKE_STAFF_KEY}),
        "SOTONG_INTAKE_TRACKER_API_KEY": INTAKE_STAFF_KEY,
        # a module files dozens of complaints with one resident's phone, and the contact
        # code counts against its daily cap: past 20, codes would stop (the cap itself is
        # tested in tests/unit/test_notifier_caps.py and test_notifier_contacts.py)
        "SOTONG_NOTIFIER_DAILY_CAP_PER_RECIPIENT": "1000",
    }
    services = localstack.start_services(env, root / "logs")
    try:
        yield Stack(backends, services, root / "outbox.jsonl", prefix, database)
    finally:
        for proc in services.values():
            proc.child.stop()


async def eventually(
    probe: Callable[[], Any],
    *,
    within: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
) -> Any:
    """Poll until probe() returns something truthy (awaiting it if needed)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def read_topic(
    stack: Stack, topic: str, *, key: str | None = None, min_count: int = 1, within: float = 30.0
) -> list[dict[str, Any]]:
    """Everything on a topic (optionally for one key), read from the start by a fresh group."""
    consumer = AIOKafkaConsumer(
        stack.topic(topic),
        bootstrap_servers=stack.backends.kafka_bootstrap,
        group_id=f"probe-{time.monotonic_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and len(found) < min_count:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if key is None or (record.key or b"").decode() == key:
                        found.append(
                            {"value": json.loads(record.value), "headers": dict(record.headers)}
                        )
    finally:
        await consumer.stop()
    return found


async def produce(stack: Stack, topic: str, value: bytes, key: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.backends.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(stack.topic(topic), value, key=key.encode())
    finally:
        await producer.stop()
