"""(b) Poison messages: each bad record is followed by a valid canary on the same key
(so the same partition, after it), alone and inside a batch of valid records.

Two topics: ``complaint.submissions`` (intake's consumer) and ``complaint.filed``
(routing's, the tracker's and the notifier's batch consumers). A bad record must end up
processed or dead-lettered by every consumer, never skipped silently; the canary and
every valid neighbour in the batch must be processed.
"""

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from schemas import topics
from schemas.common import Location, Resident
from schemas.events import ComplaintFiled
from schemas.tokens import hash_token
from sotong.resilience.report import Scenario
from sotong.resilience.stack import Stack
from sotong.resilience.traffic import (
    Kafka,
    intake_by_submission,
    read_topics,
    submission,
    tracked_ids,
)

CASES = (
    "invalid_json",
    "invalid_utf8",
    "tombstone",
    "no_headers",
    "header_ff",
    "null_header",
    "null_key",
    "non_utf8_key",
    "value_900kb",
    "deep_json",
    "unknown_event_type",
)
HEADERS: tuple[tuple[str, bytes | None], ...] = (("content-type", b"application/json"),)
CONSUMERS = {topics.SUBMISSIONS: ("intake",), topics.FILED: ("routing", "tracker", "notifier")}


def valid_value(topic: str, i: int) -> tuple[str, bytes]:
    """A valid record for the topic: (its id to look for, its bytes)."""
    if topic == topics.SUBMISSIONS:
        sub = submission(i, channel_ref=None)
        return sub.event_id, sub.model_dump_json().encode()
    complaint_id = f"poison-{uuid.uuid4().hex[:16]}"
    filed = ComplaintFiled(
        complaint_id=complaint_id,
        receipt_number=f"990101-{secrets.randbelow(900000) + 100000}",
        tracking_token_hash=hash_token(secrets.token_urlsafe(24)),
        channel="web",
        resident=Resident(),
        body="공원 가로등이 며칠째 꺼져 있어요",
        location=Location(dong="청라1동"),
        submitted_at=datetime.now(UTC),
    )
    return complaint_id, filed.model_dump_json().encode()


def bad_record(
    case: str, topic: str, key: bytes, i: int
) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...], str | None]:
    """(value, key, headers, id of the valid body it carries or None) for a case."""
    ident, good = valid_value(topic, i)
    if case == "invalid_json":
        return b'{"channel": "web", "body": ', key, HEADERS, None
    if case == "invalid_utf8":
        return b'{"channel": "web", "body": "\xff\xfe\xfd"}', key, HEADERS, None
    if case == "tombstone":
        return None, key, HEADERS, None
    if case == "no_headers":
        return good, key, (), ident
    if case == "header_ff":
        return good, key, (*HEADERS, ("x-bad", b"\xff")), ident
    if case == "null_header":
        return good, key, (*HEADERS, ("x-null", None)), ident
    if case == "null_key":
        return good, None, HEADERS, ident
    if case == "non_utf8_key":
        return good, b"\xff\xfe" + key, HEADERS, ident
    if case == "value_900kb":
        value = json.loads(good)
        value["body"] = "가" * 300_000  # 900 KB in UTF-8, over every length limit
        return json.dumps(value, ensure_ascii=False).encode(), key, HEADERS, None
    if case == "deep_json":
        return b"[" * 100_000 + b"]" * 100_000, key, HEADERS, None
    if case == "unknown_event_type":
        value = json.loads(good)
        value["event_type"] = "complaint.unheard_of"
        return json.dumps(value).encode(), key, HEADERS, None
    raise ValueError(f"unknown poison case {case!r}")


@dataclass
class Sent:
    case: str
    topic: str
    batch: bool
    poison_at: tuple[int, int]
    poison_body_id: str | None
    canary: str
    canary_sent: float
    neighbours: list[str] = field(default_factory=list)
    neighbours_at: list[tuple[int, int]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.topic}/{self.case}{'/batch' if self.batch else ''}"


async def send_case(kafka: Kafka, topic: str, case: str, batch_size: int, n: int) -> Sent:
    key = f"poison-{case}-{uuid.uuid4().hex[:8]}".encode()
    neighbours: list[str] = []
    neighbours_at: list[tuple[int, int]] = []
    poison_at = (-1, -1)
    value, pkey, headers, body_id = bad_record(case, topic, key, n)
    size = batch_size if batch_size > 1 else 1
    middle = size // 2
    for j in range(size):
        if j == middle:
            poison_at = await kafka.raw(topic, value, pkey, headers)
        else:
            ident, good = valid_value(topic, n + j)
            neighbours.append(ident)
            neighbours_at.append(await kafka.raw(topic, good, key, HEADERS))
    canary, good = valid_value(topic, n + size)
    sent_at = time.monotonic()
    await kafka.raw(topic, good, key, HEADERS)
    return Sent(
        case, topic, size > 1, poison_at, body_id, canary, sent_at, neighbours, neighbours_at
    )


STALL_S = 10.0
"""A service whose /healthz goes unanswered this long has its event loop blocked."""


class Heartbeat:
    """Asks every service's /healthz each second; the longest time each went unanswered."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.longest: dict[str, float] = dict.fromkeys(stack.services, 0.0)
        self.down_since: dict[str, float] = {}
        self.stop = False

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            while not self.stop:
                await asyncio.gather(*(self.ask(http, name) for name in self.stack.services))
                await asyncio.sleep(1)
        now = time.monotonic()
        for name, since in self.down_since.items():
            self.longest[name] = max(self.longest[name], now - since)

    async def ask(self, http: httpx.AsyncClient, name: str) -> None:
        now = time.monotonic()
        try:
            (await http.get(f"{self.stack.url(name)}/healthz")).raise_for_status()
        except httpx.HTTPError:
            self.down_since.setdefault(name, now)
            return
        since = self.down_since.pop(name, None)
        if since is not None:
            self.longest[name] = max(self.longest[name], now - since)


async def unresponsive(stack: Stack) -> list[str]:
    """Services whose /healthz does not answer within 10 s."""
    found = []
    async with httpx.AsyncClient(timeout=10) as http:
        for name in stack.services:
            try:
                (await http.get(f"{stack.url(name)}/healthz")).raise_for_status()
            except httpx.HTTPError as exc:
                found.append(f"{name}: {type(exc).__name__} {exc}")
    return found


LAST = ("value_900kb",)
"""Sent in a second round, after every other case was seen through: a record that holds a
consumer up would otherwise blur what the other cases show."""


async def run(stack: Stack, scenario: Scenario, *, batch_size: int, wait: float) -> bool:
    """Every case on both topics; True when every service still answers afterwards (the
    stack can go on to the next scenario)."""
    scenario.parameters |= {"cases": list(CASES), "batch_size": batch_size, "wait_s": wait}
    watch = Heartbeat(stack)
    watching = asyncio.create_task(watch.run())
    sent: list[Sent] = []
    seen_at: dict[str, float] = {}
    progress: dict[str, float] = {}
    client = stack.mongo()
    db = client[stack.database]
    n = 0
    try:
        for round_ in ([c for c in CASES if c not in LAST], list(LAST)):
            this_round: list[Sent] = []
            async with Kafka(stack.bootstrap) as kafka:
                for topic in (topics.SUBMISSIONS, topics.FILED):
                    for case in round_:
                        for size in (1, batch_size):
                            this_round.append(await send_case(kafka, topic, case, size, n))
                            n += size + 1
            sent += this_round
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                await _observe(db, this_round, seen_at, progress=progress)
                if all(s.canary in seen_at for s in this_round):
                    break
                await asyncio.sleep(0.5)
        # what the batches and the header cases carried: a neighbour is only lost if it
        # is still missing when the same wait has passed again (a consumer that retried a
        # batch may store it after a canary another consumer already showed); a canary
        # late for its round is watched as long, to tell a slow consumer from a stuck one
        deadline = time.monotonic() + wait
        while True:
            await _observe(db, sent, seen_at, everything=True, progress=progress)
            if all(n in seen_at for s in sent for n in [*s.neighbours, s.canary]):
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)
        ended = time.monotonic()
    finally:
        await client.close()
        watch.stop = True
        await watching
    # a canary is seen once the tracker has it; another consumer (routing) may still be on
    # its way to the poison's dead letter: wait for those, bounded by the same wait
    deadline = time.monotonic() + wait
    while True:
        records = await read_topics(stack.bootstrap, [topics.DEAD_LETTER])
        letters = _letters(records)
        waiting = [
            s
            for s in sent
            if not (s.poison_body_id is not None and s.poison_body_id in seen_at)
            and any(c not in letters.get((s.topic, *s.poison_at), {}) for c in CONSUMERS[s.topic])
        ]
        if not waiting or time.monotonic() >= deadline:
            break
        await asyncio.sleep(2)
    reasons = _reasons(records)
    cases: dict[str, dict[str, object]] = {}
    slow: list[str] = []
    stuck: list[str] = []
    silent: list[str] = []
    lost_neighbours: list[str] = []
    for s in sent:
        by_consumer = letters.get((s.topic, *s.poison_at), {})
        processed = s.poison_body_id is not None and s.poison_body_id in seen_at
        missing_consumers = [
            c for c in CONSUMERS[s.topic] if c not in by_consumer and not processed
        ]
        lost = [n for n in s.neighbours if n not in seen_at]
        cases[s.label] = {
            "dead_letters": sum(by_consumer.values()),
            "dead_lettered_by": sorted(by_consumer),
            "poison_processed": processed,
            "canary_processed": s.canary in seen_at,
            "canary_seconds": round(seen_at[s.canary] - s.canary_sent, 2)
            if s.canary in seen_at
            else None,
            "neighbours_lost": len(lost),
        }
        verdict = canary_verdict(s, seen_at, progress, wait=wait, ended=ended)
        if verdict is not None:
            (stuck if verdict.startswith(STUCK) else slow).append(verdict)
        if missing_consumers:
            silent.append(
                f"{s.label}: neither processed nor dead-lettered by {', '.join(missing_consumers)}"
            )
        if lost:
            at = {a for n, a in zip(s.neighbours, s.neighbours_at, strict=True) if n in lost}
            why = sorted(
                {
                    f"{consumer}: {reason}"
                    for (topic, *where), by in reasons.items()
                    if topic == s.topic and tuple(where) in at
                    for consumer, reason in by.items()
                }
            )
            lost_neighbours.append(
                f"{s.label}: {len(lost)} valid neighbours not processed"
                + (f"; dead-lettered as {' | '.join(why)[:400]}" if why else "; no dead letter")
            )
    scenario.figures["cases"] = cases
    seconds = [
        c["canary_seconds"] for c in cases.values() if isinstance(c["canary_seconds"], float)
    ]
    scenario.figures["canary_seconds_max"] = max(seconds, default=None)
    scenario.figures["canary_seconds_max_by_topic"] = {
        topic: max(
            (
                c
                for s in sent
                if s.topic == topic and isinstance(c := cases[s.label]["canary_seconds"], float)
            ),
            default=None,
        )
        for topic in CONSUMERS
    }
    scenario.figures["longest_unanswered_healthz_s"] = {
        name: round(gap, 1) for name, gap in watch.longest.items()
    }
    stalled = [
        f"{name}: /healthz unanswered for {gap:.0f}s"
        + (" (still, when the wait ended)" if name in watch.down_since else "")
        for name, gap in watch.longest.items()
        if gap > STALL_S
    ]
    hung = await unresponsive(stack)
    scenario.figures["unresponsive_at_the_end"] = hung
    scenario.check(
        f"services stalled over {STALL_S:g}s by a poison", len(stalled), evidence=stalled
    )
    scenario.check(f"canaries slow (not processed within {wait:g}s)", len(slow), evidence=slow)
    scenario.check("canaries stuck (their topic no longer moving)", len(stuck), evidence=stuck)
    scenario.check("poison skipped silently", len(silent), evidence=silent)
    scenario.check(
        "valid records lost beside a poison", len(lost_neighbours), evidence=lost_neighbours
    )
    return not hung


STUCK = "stuck"
STILL_S = 15.0
"""A topic on which nothing new was processed for this long at the end of the wait is
not moving: its missing canary is stuck, not slow."""


def canary_verdict(
    s: Sent,
    seen_at: Mapping[str, float],
    progress: Mapping[str, float],
    *,
    wait: float,
    ended: float,
) -> str | None:
    """None for a canary processed within ``wait`` of being sent; else whether it was
    slow (processed later, or its topic still moving when the watch ended: time to the
    canary, or "not within N s") or stuck (nothing on its topic processed for the last
    :data:`STILL_S` seconds of the watch)."""
    if s.canary in seen_at:
        took = seen_at[s.canary] - s.canary_sent
        if took <= wait:
            return None
        return f"slow: {s.label}: canary processed after {took:.0f}s"
    watched = ended - s.canary_sent
    last = progress.get(s.topic)
    if last is not None and ended - last <= STILL_S:
        return (
            f"slow: {s.label}: canary not within {watched:.0f}s; its topic was still being "
            f"processed {ended - last:.0f}s before the watch ended"
        )
    idle = f"for the last {ended - last:.0f}s" if last is not None else "at all"
    return (
        f"{STUCK}: {s.label}: canary not within {watched:.0f}s; "
        f"nothing on its topic processed {idle}"
    )


async def _observe(
    db: object,
    sent: Sequence[Sent],
    seen_at: dict[str, float],
    *,
    everything: bool = False,
    progress: dict[str, float] | None = None,
) -> None:
    """Note when each awaited id is first seen stored, and (``progress``) when each topic
    last had anything new processed."""
    from pymongo.asynchronous.database import AsyncDatabase

    assert isinstance(db, AsyncDatabase)
    now = time.monotonic()
    wanted: dict[str, list[str]] = {topics.SUBMISSIONS: [], topics.FILED: []}
    for s in sent:
        ids = [s.canary] + (([*s.neighbours, s.poison_body_id or ""]) if everything else [])
        wanted[s.topic].extend(i for i in ids if i and i not in seen_at)
    found: dict[str, Collection[str]] = {
        topics.SUBMISSIONS: await intake_by_submission(db, wanted[topics.SUBMISSIONS]),
        topics.FILED: await tracked_ids(db, wanted[topics.FILED]),
    }
    for topic, stored in found.items():
        new = [i for i in stored if i not in seen_at]
        for i in new:
            seen_at[i] = now
        if new and progress is not None:
            progress[topic] = now


def _letters(records: Sequence[object]) -> dict[tuple[str, int, int], dict[str, int]]:
    """(original topic, partition, offset) → consumer → dead letters about it."""
    from sotong.resilience.traffic import Record

    found: dict[tuple[str, int, int], dict[str, int]] = {}
    for r in records:
        assert isinstance(r, Record)
        try:
            letter = json.loads(r.value or b"")
        except ValueError:
            continue
        partition, offset = letter.get("original_partition"), letter.get("original_offset")
        where = (
            str(letter.get("original_topic")),
            -1 if partition is None else int(partition),
            -1 if offset is None else int(offset),
        )
        consumer = str(letter.get("consumer", "?"))
        per = found.setdefault(where, {})
        # a consumer name may carry a suffix (intake.submissions): count by service
        service = consumer.split(".")[0].split("-")[0]
        per[service] = per.get(service, 0) + 1
    return found


def _reasons(records: Sequence[object]) -> dict[tuple[str, int, int], dict[str, str]]:
    """(original topic, partition, offset) → consumer → the dead letter's reason."""
    found: dict[tuple[str, int, int], dict[str, str]] = {}
    for r in records:
        try:
            letter = json.loads(getattr(r, "value", None) or b"")
            where = (
                str(letter["original_topic"]),
                int(letter["original_partition"]),
                int(letter["original_offset"]),
            )
        except (ValueError, KeyError, TypeError):
            continue
        found.setdefault(where, {})[str(letter.get("consumer", "?"))] = str(letter.get("reason"))
    return found
