"""Filing traffic and raw Kafka access for the scenarios: HTTP filings as a channel
sends them, submissions on ``complaint.submissions`` as a channel without HTTP does,
raw records for poison, and every topic read back from the earliest offset."""

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from schemas import topics
from schemas.events import ComplaintSubmitted
from services.mongo import Document

TEXTS = (
    "이불이랑 매트리스 버리려면 어떻게 해요? 스티커 어디서 사요",
    "집 앞 도로에 포트홀이 생겨서 차가 위험합니다",
    "공원 가로등이 며칠째 꺼져 있어요",
    "불법 주차 차량 때문에 골목을 지나갈 수가 없습니다",
    "아파트 옆 공사장 소음이 너무 심해요 밤에도 합니다",
    "음식물 쓰레기 수거가 안 되고 있어요",
    "버스 정류장 의자가 부서져 있습니다",
    "놀이터 바닥이 깨져서 아이들이 다칠 것 같아요",
)
DONGS = ("청라1동", "청라2동", "가정1동", "검단동", "석남1동")


def filing(i: int, *, channel_ref: str | None = None, channel: str = "web") -> dict[str, Any]:
    """A filing anyone could send: varied text, a resident with a (fictional) phone."""
    body: dict[str, Any] = {
        "channel": channel,
        "body": f"{TEXTS[i % len(TEXTS)]} ({i})",
        "resident": {"name": "시험주민", "phone": f"010-5{i % 1000:03d}-{i % 10000:04d}"},
        "location": {"address": "인천 서구 청라대로 1", "dong": DONGS[i % len(DONGS)]},
    }
    if channel_ref is not None:
        body["channel_ref"] = channel_ref
    return body


@dataclass
class Ledger:
    """What the suite was told was accepted, to count what is lost and what is doubled."""

    http: dict[str, str] = field(default_factory=dict)
    """channel_ref (or a local id) → complaint_id answered."""
    http_answers: list[tuple[str, int, str | None]] = field(default_factory=list)
    """(local id, status, complaint_id) for every answer, retries included."""
    kafka: dict[str, str | None] = field(default_factory=dict)
    """submission event_id → channel_ref (None when sent without one)."""
    status_counts: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0

    def count(self, status: int) -> None:
        self.status_counts[status] = self.status_counts.get(status, 0) + 1


async def file_http(
    client: httpx.AsyncClient,
    intake: str,
    body: dict[str, Any],
    ledger: Ledger,
    local_id: str,
    *,
    retries: int = 8,
    headers: dict[str, str] | None = None,
) -> str | None:
    """File as a channel would, retrying (same body, same channel_ref) on a transport
    error or a 5xx/503 the way a client does; the complaint id once stored. ``headers``:
    the channel's credential and end user (``Stack.as_resident``)."""
    for attempt in range(retries):
        try:
            response = await client.post(f"{intake}/v1/complaints", json=body, headers=headers)
        except httpx.HTTPError:
            ledger.transport_errors += 1
            await asyncio.sleep(min(0.5 * 2**attempt, 5))
            continue
        ledger.count(response.status_code)
        if response.status_code in (200, 201):
            complaint_id = str(response.json()["complaint_id"])
            ledger.http_answers.append((local_id, response.status_code, complaint_id))
            ledger.http[local_id] = complaint_id
            return complaint_id
        ledger.http_answers.append((local_id, response.status_code, None))
        if response.status_code < 500 and response.status_code != 429:
            return None
        await asyncio.sleep(min(0.5 * 2**attempt, 5))
    return None


def submission(i: int, *, channel_ref: str | None) -> ComplaintSubmitted:
    fields = filing(i, channel_ref=channel_ref, channel="kakao")
    return ComplaintSubmitted.model_validate(fields)


class Kafka:
    """One producer for the suite, acks=all and no idempotence (the embedded broker)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", request_timeout_ms=15_000
        )

    async def __aenter__(self) -> "Kafka":
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def submit(self, sub: ComplaintSubmitted, ledger: Ledger, *, tries: int = 10) -> bool:
        value = sub.model_dump_json().encode()
        for attempt in range(tries):
            try:
                await self.producer.send_and_wait(
                    topics.SUBMISSIONS, value, key=sub.event_id.encode()
                )
            except Exception:
                await asyncio.sleep(min(0.5 * 2**attempt, 5))
                continue
            ledger.kafka[sub.event_id] = sub.channel_ref
            return True
        return False

    async def raw(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
    ) -> tuple[int, int]:
        """Send bytes as they are; the (partition, offset) they were written at."""
        meta = await self.producer.send_and_wait(
            topic,
            value,
            key=key,
            headers=list(headers) if headers is not None else None,
        )
        return int(meta.partition), int(meta.offset)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    def text(self) -> str:
        """Everything a reader of the record sees, as text; a dead letter's original
        value is decoded from base64 so what it carries is searched too."""
        parts = [
            (self.key or b"").decode("utf-8", "replace"),
            *(f"{k}={(v or b'').decode('utf-8', 'replace')}" for k, v in self.headers),
            (self.value or b"").decode("utf-8", "replace"),
        ]
        if self.topic == topics.DEAD_LETTER and self.value:
            try:
                letter = json.loads(self.value)
                original = base64.b64decode(letter.get("original_value_b64") or "")
                parts.append(original.decode("utf-8", "replace"))
            except ValueError:
                pass
        return "\n".join(parts)


async def read_topics(bootstrap: str, names: Sequence[str], *, within: float = 60) -> list[Record]:
    """Every record now on these topics, from the earliest offset to the end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    found: list[Record] = []
    try:
        existing = await consumer.topics()
        partitions = [
            TopicPartition(name, p)
            for name in names
            if name in existing
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batch.items():
                for r in records:
                    found.append(
                        Record(tp.topic, tp.partition, r.offset, r.key, r.value, tuple(r.headers))
                    )
    finally:
        await consumer.stop()
    return found


async def tracked_ids(db: AsyncDatabase[Document], ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        async for doc in db["tracker_complaints"].find({"_id": {"$in": chunk}}, {"_id": 1}):
            found.add(str(doc["_id"]))
    return found


async def intake_by_submission(db: AsyncDatabase[Document], ids: Sequence[str]) -> dict[str, str]:
    """submission event_id → complaint_id, for the submissions intake stored."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        cursor = db["intake_complaints"].find(
            {"submission_id": {"$in": chunk}}, {"_id": 1, "submission_id": 1}
        )
        async for doc in cursor:
            found[str(doc["submission_id"])] = str(doc["_id"])
    return found


def local_id() -> str:
    return uuid.uuid4().hex[:12]
