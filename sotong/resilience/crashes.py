"""(a) kill -9 under load and (c) outages under load, and the audit both end with.

Load: complaints filed half over HTTP, half over Kafka, some without ``channel_ref``,
at a steady rate. Meanwhile a random child is SIGKILLed and started again every few
seconds (a), or the database or the broker is SIGSTOPped for a while (c). Then the
platform is given time to settle and audited from its own stores and files: what was
accepted and never tracked, what was filed twice, resident messages and webhooks sent
twice, claims stuck in ``sending``, outbox rows never published, read models whose
event count differs from the events stored, and retryable failures dead-lettered.
"""

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from schemas import topics
from sotong.resilience.report import (
    Scenario,
    outbox_lines,
    percentile,
    repeated,
    resident_message_duplicates,
)
from sotong.resilience.stack import Stack
from sotong.resilience.traffic import (
    Kafka,
    Ledger,
    file_http,
    filing,
    intake_by_submission,
    local_id,
    read_topics,
    submission,
    tracked_ids,
)

UNAVAILABLE_GAP = (
    "a filing or command while the database is away is refused with 503 and Retry-After "
    "(the client retries and files once, see 'duplicates after client retries'); taking "
    "it through the broker until the database is back is not built"
)
WEBHOOK_GAP = (
    "at-least-once by design: a notifier killed while a webhook call is in flight (or "
    "within SOTONG_NOTIFIER_FINISH_INTERVAL_MS after it ended, before its finish is "
    "written) calls again with the same CloudEvent id and X-Sotong-Delivery; receivers "
    "dedupe by id. Calls that ended earlier in the batch, or whose finish a database "
    "outage kept from being written while the notifier lived on, are not repeated"
)


@dataclass
class Load:
    complaints: int
    rate: float
    without_ref_every: int = 5
    """Every n-th filing is sent without a channel_ref."""
    ledger: Ledger = field(default_factory=Ledger)
    no_ref_http: set[str] = field(default_factory=set)


async def generate(stack: Stack, load: Load, offset: int = 0) -> None:
    """File ``load.complaints`` at ``load.rate`` per second, half and half."""
    interval = 1.0 / load.rate
    tasks: list[asyncio.Task[Any]] = []
    limits = httpx.Limits(max_connections=64)
    async with (
        httpx.AsyncClient(timeout=20, limits=limits) as http,
        Kafka(stack.bootstrap) as kafka,
    ):
        start = time.monotonic()
        for i in range(load.complaints):
            n = offset + i
            ref = None if i % load.without_ref_every == 0 else f"R-{local_id()}"
            if i % 2 == 0:
                ident = ref or f"noref-{local_id()}"
                if ref is None:
                    load.no_ref_http.add(ident)
                retries = 8 if ref else 1  # without a reference a retry would file again
                tasks.append(
                    asyncio.create_task(
                        file_http(
                            http,
                            stack.url("intake"),
                            filing(n, channel_ref=ref),
                            load.ledger,
                            ident,
                            retries=retries,
                            headers=stack.as_resident(ident),  # as the portal files: per resident
                        )
                    )
                )
            else:
                tasks.append(
                    asyncio.create_task(kafka.submit(submission(n, channel_ref=ref), load.ledger))
                )
            delay = start + (i + 1) * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*tasks, return_exceptions=True)


async def audit(stack: Stack, scenario: Scenario, load: Load, *, settle: float) -> None:
    """Settle, then count what was lost, doubled or left behind."""
    t0 = time.monotonic()
    left = await stack.settle(settle)
    scenario.figures["settle_seconds"] = round(time.monotonic() - t0, 1)
    scenario.figures["backlog_left_after_settle"] = left
    ledger = load.ledger
    client = stack.mongo()
    db = client[stack.database]
    try:
        kafka_ids = list(ledger.kafka)
        stored = await intake_by_submission(db, kafka_ids)
        accepted = set(ledger.http.values()) | set(stored.values())
        tracked = await tracked_ids(db, sorted(accepted))
        lost_at_intake = [i for i in kafka_ids if i not in stored]
        lost = sorted(accepted - tracked)
        per_ref = await _grouped(db, "channel_ref")
        per_submission = await _grouped(db, "submission_id")
        answers: dict[str, set[str]] = {}
        for ident, _status, complaint_id in ledger.http_answers:
            if complaint_id:
                answers.setdefault(ident, set()).add(complaint_id)
        retried_twice = {k: len(v) for k, v in answers.items() if len(v) > 1}
        sending = await db["notifier_deliveries"].count_documents({"status": "sending"})
        unpublished_intake = await db["intake_complaints"].count_documents({"published": False})
        unpublished_routing = await db["routing_complaints"].count_documents(
            {"outbox_pending": True}
        )
        mismatched = await _event_count_mismatches(db, sorted(tracked))
    finally:
        await client.close()
    # this load's complaints only: an earlier scenario's are its own business
    lines = [
        line
        for path in stack.outbox_files()
        if "staff" not in path.name
        for line in outbox_lines(path)
        if line.get("complaint_id") in accepted
    ]
    resident_dupes = resident_message_duplicates(lines)
    hooks = [
        (r, subject)
        for r in stack.webhooks.bodies()
        if (subject := webhook_field(r.body, "subject")) in accepted
    ]
    hook_dupes = repeated(f"{r.path}|{webhook_field(r.body, 'id')}" for r, _ in hooks)
    letters = await read_topics(stack.bootstrap, [topics.DEAD_LETTER])
    retryable = []
    for record in letters:
        try:
            letter = json.loads(record.value or b"")
        except ValueError:
            continue
        if letter.get("retryable"):
            where = f"{letter.get('original_topic')}@{letter.get('original_offset')}"
            reason = str(letter.get("reason"))[:100]
            retryable.append(f"{letter.get('consumer')} {where}: {reason}")
    server_errors = {s: n for s, n in ledger.status_counts.items() if s >= 500}
    scenario.figures |= {
        "accepted_http": len(ledger.http),
        "accepted_kafka": len(ledger.kafka),
        "accepted": len(accepted),
        "tracked": len(tracked),
        "http_statuses": {str(k): v for k, v in sorted(ledger.status_counts.items())},
        "http_transport_errors": ledger.transport_errors,
        "resident_messages": len(lines),
        "webhooks": len(hooks),
        "dead_letters": len(letters),
    }
    scenario.check(
        "lost: accepted but never tracked",
        len(lost) + len(lost_at_intake),
        evidence=[f"tracked missing {c}" for c in lost]
        + [f"submission {s} never stored" for s in lost_at_intake],
    )
    scenario.check(
        "complaints per channel_ref > 1",
        len(per_ref),
        evidence=[f"{k}: {v}" for k, v in per_ref.items()],
    )
    scenario.check(
        "complaints per submission id > 1",
        len(per_submission),
        evidence=[f"{k}: {v}" for k, v in per_submission.items()],
    )
    scenario.check(
        "duplicates after client retries",
        len(retried_twice),
        evidence=[f"{k}: {v} complaints" for k, v in retried_twice.items()],
    )
    scenario.check(
        "duplicate resident messages (complaint, step, channel)",
        len(resident_dupes),
        evidence=[f"{k}: {v}x" for k, v in resident_dupes.items()],
    )
    scenario.check(
        "duplicate webhooks",
        len(hook_dupes),
        known_gap=WEBHOOK_GAP,
        evidence=[f"{k}: {v}x" for k, v in hook_dupes.items()],
    )
    scenario.check("claims stuck in sending", sending)
    scenario.check(
        "unpublished outbox rows",
        unpublished_intake + unpublished_routing,
        evidence=[f"intake {unpublished_intake}, routing {unpublished_routing}"],
    )
    scenario.check(
        "read models whose event count differs from the store", len(mismatched), evidence=mismatched
    )
    scenario.check("retryable failures dead-lettered", len(retryable), evidence=retryable)
    refused = server_errors.pop(503, 0)
    scenario.check(
        "5xx answered (other than 503 with Retry-After)",
        sum(server_errors.values()),
        evidence=[f"{k}: {v}" for k, v in server_errors.items()],
    )
    scenario.check(
        "503 answered (retry later) while a dependency was away",
        refused,
        known_gap=UNAVAILABLE_GAP,
        evidence=[f"503: {refused}"] if refused else [],
    )


def webhook_field(body: bytes, name: str) -> str:
    """A CloudEvent's attribute (structured mode: ``id``, ``subject``), or the body's hash
    when it has none."""
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, dict) and value.get(name):
        return str(value[name])
    return hashlib.sha256(body).hexdigest()


async def _grouped(db: Any, name: str) -> dict[str, int]:
    pipeline = [
        {"$match": {name: {"$type": "string"}}},
        {"$group": {"_id": {"c": "$channel", "v": f"${name}"}, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}},
    ]
    found: dict[str, int] = {}
    async for row in await db["intake_complaints"].aggregate(pipeline):
        found[f"{row['_id'].get('c')}:{row['_id'].get('v')}"] = int(row["n"])
    return found


async def _event_count_mismatches(db: Any, ids: Sequence[str]) -> list[str]:
    counts: dict[str, int] = {}
    models: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        async for doc in db["tracker_events"].find(
            {"complaint_id": {"$in": chunk}}, {"complaint_id": 1}
        ):
            counts[str(doc["complaint_id"])] = counts.get(str(doc["complaint_id"]), 0) + 1
        async for doc in db["tracker_complaints"].find({"_id": {"$in": chunk}}, {"event_count": 1}):
            models[str(doc["_id"])] = int(doc.get("event_count") or 0)
    return [
        f"{cid}: read model {models[cid]}, store {counts.get(cid, 0)}"
        for cid in ids
        if cid in models and models[cid] != counts.get(cid, 0)
    ]


# ---- (a) kill -9 ------------------------------------------------------------------------


async def kills(
    stack: Stack,
    scenario: Scenario,
    *,
    complaints: int,
    kills: int,
    every: float,
    targets: Sequence[str],
    settle: float,
    seed: int = 11,
) -> None:
    rate = max(1.0, complaints / max(1.0, kills * every))
    load = Load(complaints, rate)
    scenario.parameters |= {
        "complaints": complaints,
        "kills": kills,
        "every_s": every,
        "targets": list(targets),
        "rate_per_s": round(rate, 1),
        "seed": seed,
    }
    chooser = random.Random(seed)  # noqa: S311 - a reproducible choice of victims
    victims: list[str] = []
    while len(victims) < kills:  # every target once, in a random order, then again
        round_ = list(targets)
        chooser.shuffle(round_)
        victims += round_
    recoveries: list[dict[str, Any]] = []
    failures: list[str] = []

    began = time.monotonic()

    async def killer() -> None:
        for name in victims[:kills]:
            await asyncio.sleep(every)
            t0 = time.monotonic()
            stack.kill(name)
            try:
                await asyncio.to_thread(stack.start_again, name)
            except Exception as exc:
                failures.append(f"{name}: {exc}")
                continue
            recoveries.append(
                {
                    "child": name,
                    "killed_at_s": round(t0 - began, 1),
                    "seconds": round(time.monotonic() - t0, 2),
                }
            )

    await asyncio.gather(generate(stack, load), killer())
    seconds = [r["seconds"] for r in recoveries]
    scenario.figures |= {
        "kills_done": len(recoveries),
        "notifier_kills": sum(1 for r in recoveries if r["child"] == "notifier"),
        "recovery_seconds": recoveries,
        "recovery_p50_s": percentile(seconds, 0.5),
        "recovery_max_s": max(seconds) if seconds else None,
    }
    scenario.check("children that did not come back", len(failures), evidence=failures)
    scenario.check("kills short of the target", max(0, kills - len(recoveries)))
    await audit(stack, scenario, load, settle=settle)


# ---- (c) outages ------------------------------------------------------------------------


async def outage(
    stack: Stack,
    scenario: Scenario,
    *,
    pauses: Sequence[tuple[str, float]],
    complaints_per_pause: int,
    settle: float,
) -> None:
    """SIGSTOP each (child, seconds) in turn under load, SIGCONT, then one audit."""
    scenario.parameters |= {
        "pauses": [f"{name} {seconds:g}s" for name, seconds in pauses],
        "complaints_per_pause": complaints_per_pause,
    }
    load = Load(0, 1.0)
    offset = 100_000
    for name, seconds in pauses:
        batch = Load(
            complaints_per_pause,
            max(1.0, complaints_per_pause / (seconds + 10)),
            ledger=load.ledger,
        )

        async def pause(name: str = name, seconds: float = seconds) -> None:
            await asyncio.sleep(3)
            stack.pause(name)
            try:
                await asyncio.sleep(seconds)
            finally:
                stack.resume(name)

        await asyncio.gather(generate(stack, batch, offset), pause())
        offset += complaints_per_pause
        load.no_ref_http |= batch.no_ref_http
    await audit(stack, scenario, load, settle=settle)
