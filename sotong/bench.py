"""``sotong bench``: what the pipeline sustains, next to what the same machine allows.

It starts the embedded backends and the four services as separate processes (exactly
what ``make up`` runs), then in one run measures:

1. the raw ceilings: bare aiokafka produce (acks=all, awaited one by one, as the
   services publish) and a bare two-hop relay through the same broker (the pipeline's
   filed → lifecycle hops), and bare single and bulk inserts into the same database;
2. the pipeline, complaints filed over HTTP, each followed until the tracker shows it
   ``handler_assigned`` and the notifier has sent its first three messages (received,
   assigned, handler assigned), in three phases: saturation early in the run (half the
   saturation size, filed at once), a fixed offered rate (``--rate`` for ``--duration``
   seconds, the load shape a help desk is measured at), and saturation again with
   thousands more complaints stored, so the two saturation figures show whether the
   cost per complaint stays flat as history grows;
3. that every complaint of the run was tracked and each resident message sent once.

Figures are reported with their ratio to the ceilings, so a noisy machine moves both.
Output: a table on stdout, a JSON file and a PNG of latency over the run.
"""

import asyncio
import json
import os
import random
import secrets
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from routing.classifier import load_examples
from services.settings import PROJECT_ROOT
from sotong import localstack

DONGS = [
    "검암경서동", "연희동", "청라1동", "청라2동", "청라3동", "가정1동", "가정2동", "가정3동",
    "석남1동", "석남2동", "석남3동", "신현원창동", "가좌1동", "가좌2동", "가좌3동", "가좌4동",
]  # fmt: skip
NOTIFICATIONS_PER_COMPLAINT = 3  # received, assigned, handler_assigned


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": pick(0.50),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


@dataclass
class Phase:
    name: str
    offered_rate: float | None
    complaints: int
    filed_seconds: float = 0.0
    completed: int = 0
    throughput: float = 0.0
    to_notified: dict[str, float] = field(default_factory=dict)
    to_tracked: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, float, float]] = field(default_factory=list)
    stored_before: int = 0
    cpu_ms_per_complaint: dict[str, float] = field(default_factory=dict)
    db_commands_per_complaint: dict[str, dict[str, float]] = field(default_factory=dict)
    db_ms_per_complaint: dict[str, dict[str, float]] = field(default_factory=dict)
    db_documents_per_complaint: dict[str, dict[str, float]] = field(default_factory=dict)
    retried_503: int = 0
    """Filings intake answered 503 (a dependency away) and the bench filed again."""


# -- where the time goes: CPU per process, database commands per service ----------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DB_COMMANDS = "sotong_mongodb_command_duration_seconds"
DB_WRITTEN = "sotong_mongodb_documents_written_total"


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU a process has used, from ``/proc/PID/stat``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def db_commands(metrics_text: str) -> dict[str, float]:
    """Commands a service has sent to MongoDB so far, by command name (its own metric)."""
    return _db_histogram(metrics_text, "_count")


def db_seconds(metrics_text: str) -> dict[str, float]:
    """Seconds a service has waited on MongoDB so far, by command name: the round trip as
    the client sees it, so it includes the time a command queued behind others' work."""
    return _db_histogram(metrics_text, "_sum")


def _db_histogram(metrics_text: str, suffix: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != DB_COMMANDS:
            continue
        for sample in family.samples:
            if sample.name == f"{DB_COMMANDS}{suffix}":
                command = sample.labels["command"]
                values[command] = values.get(command, 0.0) + sample.value
    return values


def db_documents(metrics_text: str) -> dict[str, float]:
    """Documents a service's writes have changed so far, by collection (its own metric)."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != DB_WRITTEN.removesuffix("_total"):
            continue
        for sample in family.samples:
            if sample.name == DB_WRITTEN:
                collection = sample.labels["collection"]
                values[collection] = values.get(collection, 0.0) + sample.value
    return values


Snapshot = tuple[
    dict[str, float],
    dict[str, dict[str, float]],
    dict[str, dict[str, float]],
    dict[str, dict[str, float]],
]


def per_complaint(
    after: dict[str, dict[str, float]],
    before: dict[str, dict[str, float]],
    n: int,
    scale: float = 1.0,
) -> dict[str, dict[str, float]]:
    """What each service spent per complaint between two snapshots, by command, with a total."""
    spent_by_service: dict[str, dict[str, float]] = {}
    for service, values in after.items():
        earlier = before.get(service, {})
        spent = {
            command: (value - earlier.get(command, 0.0)) * scale / n
            for command, value in values.items()
            if value - earlier.get(command, 0.0) > 0
        }
        spent["total"] = sum(spent.values())
        spent_by_service[service] = spent
    return spent_by_service


@dataclass
class Probe:
    """Snapshots, before and after a phase, of what each process spent."""

    pids: dict[str, int]
    metrics_urls: dict[str, str]

    async def snapshot(self) -> Snapshot:
        cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        commands: dict[str, dict[str, float]] = {}
        seconds: dict[str, dict[str, float]] = {}
        documents: dict[str, dict[str, float]] = {}
        async with httpx.AsyncClient(timeout=10) as http:
            for name, url in self.metrics_urls.items():
                text = (await http.get(url)).text
                commands[name], seconds[name] = db_commands(text), db_seconds(text)
                documents[name] = db_documents(text)
        return {k: v for k, v in cpu.items() if v is not None}, commands, seconds, documents

    @staticmethod
    def charge(phase: Phase, before: Snapshot, after: Snapshot) -> None:
        n = max(phase.completed, 1)
        phase.cpu_ms_per_complaint = {
            name: (after[0][name] - before[0][name]) * 1000 / n
            for name in after[0]
            if name in before[0]
        }
        phase.db_commands_per_complaint = per_complaint(after[1], before[1], n)
        phase.db_ms_per_complaint = per_complaint(after[2], before[2], n, scale=1000.0)
        phase.db_documents_per_complaint = per_complaint(after[3], before[3], n)


# -- raw ceilings ---------------------------------------------------------------------


async def kafka_ceilings(bootstrap: str, n: int, payload: bytes) -> dict[str, float]:
    prefix = f"bench-raw-{uuid.uuid4().hex[:8]}"
    first, second = f"{prefix}.a", f"{prefix}.b"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(first, 3, 1), NewTopic(second, 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        start = time.perf_counter()
        for i in range(n):
            await producer.send_and_wait(first, payload, key=str(i % 97).encode())
        produce_rate = n / (time.perf_counter() - start)

        options = {"bootstrap_servers": bootstrap, "auto_offset_reset": "earliest"}
        relay = AIOKafkaConsumer(
            first, group_id=f"{prefix}-relay", enable_auto_commit=False, **options
        )
        sink = AIOKafkaConsumer(
            second, group_id=f"{prefix}-sink", enable_auto_commit=False, **options
        )
        await relay.start()
        await sink.start()
        try:
            start = time.perf_counter()
            relayed = 0
            while relayed < n:
                for records in (await relay.getmany(timeout_ms=200)).values():
                    for record in records:
                        await producer.send_and_wait(second, record.value, key=record.key)
                        relayed += 1
                    await relay.commit()
            received = 0
            while received < n:
                for records in (await sink.getmany(timeout_ms=200)).values():
                    received += len(records)
                await sink.commit()
            relay_rate = n / (time.perf_counter() - start)
        finally:
            await relay.stop()
            await sink.stop()
    finally:
        await producer.stop()
    return {"produce_per_s": produce_rate, "two_hop_relay_per_s": relay_rate}


async def mongo_ceilings(uri: str, n: int, doc_size: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    db = client[f"bench_raw_{uuid.uuid4().hex[:8]}"]
    filler = "가" * (doc_size // 3)
    try:
        start = time.perf_counter()
        for i in range(n):
            await db.single.insert_one({"_id": i, "body": filler})
        single = n / (time.perf_counter() - start)
        docs = [{"_id": i, "body": filler} for i in range(n * 5)]
        start = time.perf_counter()
        for i in range(0, len(docs), 500):
            await db.bulk.insert_many(docs[i : i + 500], ordered=False)
        bulk = len(docs) / (time.perf_counter() - start)
    finally:
        await client.drop_database(db.name)
        await client.close()
    return {"single_inserts_per_s": single, "bulk_docs_per_s": bulk}


# -- the pipeline ---------------------------------------------------------------------


class Follower:
    """Watches notification outcomes on Kafka and the tracker's read model in MongoDB."""

    def __init__(self, bootstrap: str, topic_prefix: str, mongo_uri: str, database: str) -> None:
        self.consumer = AIOKafkaConsumer(
            f"{topic_prefix}notification.outcomes",
            bootstrap_servers=bootstrap,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
        self.read_models = self.mongo[database]["tracker_complaints"]
        self.sent: dict[str, int] = {}
        self.messages: dict[tuple[str, str, str, str], int] = {}
        self.first_notified: dict[str, float] = {}
        self.notified: dict[str, float] = {}
        self.tracked: dict[str, float] = {}
        self.filed: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.consumer.start()
        self._tasks = [asyncio.create_task(self._outcomes()), asyncio.create_task(self._tracker())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.consumer.stop()
        await self.mongo.close()

    async def _outcomes(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for record in records:
                    outcome = json.loads(record.value)
                    cid = outcome["complaint_id"]
                    if outcome["outcome"] == "sent":
                        key = (
                            cid,
                            outcome["source_event_id"],
                            outcome["recipient"],
                            outcome["channel"],
                        )
                        self.messages[key] = self.messages.get(key, 0) + 1
                    self.sent[cid] = self.sent.get(cid, 0) + 1
                    self.first_notified.setdefault(cid, now)
                    if self.sent[cid] >= NOTIFICATIONS_PER_COMPLAINT:
                        self.notified.setdefault(cid, now)

    async def _tracker(self) -> None:
        while True:
            pending = [cid for cid in self.filed if cid not in self.tracked]
            if pending:
                now = time.perf_counter()
                for i in range(0, len(pending), 200):
                    # by _id alone: the embedded server plans an index only for a filter
                    # the index covers whole, and a scan here would bench the benchmark
                    query = {"_id": {"$in": pending[i : i + 200]}}
                    async for doc in self.read_models.find(query, projection={"state": 1}):
                        if doc.get("state") == "handler_assigned":
                            self.tracked.setdefault(str(doc["_id"]), now)
            await asyncio.sleep(0.05)

    def done(self, cid: str) -> bool:
        return cid in self.tracked and cid in self.notified

    def delivery_check(self) -> dict[str, int]:
        """Every complaint filed in the run: tracked, notified, and no message twice (the
        same source event, recipient and channel sent more than once)."""
        filed = set(self.filed)
        return {
            "filed": len(filed),
            "tracked": len(filed & set(self.tracked)),
            "notified": len(filed & set(self.notified)),
            "messages_sent": sum(1 for key in self.messages if key[0] in filed),
            "messages_sent_twice": sum(
                1 for key, n in self.messages.items() if key[0] in filed and n > 1
            ),
        }


async def run_phase(
    phase: Phase,
    intake: str,
    follower: Follower,
    texts: Sequence[str],
    concurrency: int,
    wait: float,
    channel_key: str | None = None,
) -> Phase:
    """``channel_key``: the ``web`` credential the bench files with as the portal does,
    naming a resident of its own per filing (X-End-User), so intake's per-resident limits
    apply as they would to that many residents and never to the bench as one client."""
    rng = random.Random(phase.name)  # noqa: S311 - reproducible sample texts
    ids: list[str] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=intake, timeout=60, limits=limits) as http:
        semaphore = asyncio.Semaphore(concurrency)

        async def file_one(i: int) -> None:
            body = {
                "channel": "web",
                "channel_ref": f"bench-{phase.name}-{i}-{uuid.uuid4().hex[:6]}",
                "body": rng.choice(texts),
                "location": {"dong": rng.choice(DONGS)},
                # a reachable resident: without a contact the notifier sends nothing
                "resident": {"phone": f"010-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}"},
            }
            headers = (
                {"X-Api-Key": channel_key, "X-End-User": f"bench-{phase.name}-{i}"}
                if channel_key
                else {}
            )
            async with semaphore:
                sent = time.perf_counter()
                for attempt in range(6):  # the same channel_ref: a retry files once
                    try:
                        response = await http.post("/v1/complaints", json=body, headers=headers)
                    except httpx.TransportError:  # e.g. a kept-alive connection closed
                        if attempt == 5:
                            raise
                        continue
                    if response.status_code != 503 or attempt == 5:
                        break
                    # a dependency away for a moment: retry after what intake asks, as a
                    # client would; counted, since it is part of what the run measured
                    phase.retried_503 += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                response.raise_for_status()
                cid = response.json()["complaint_id"]
                follower.filed[cid] = sent
                ids.append(cid)

        start = time.perf_counter()
        tasks = []
        for i in range(phase.complaints):
            if phase.offered_rate:
                delay = start + i / phase.offered_rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(file_one(i)))
        await asyncio.gather(*tasks)
        phase.filed_seconds = time.perf_counter() - start
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline and not all(follower.done(c) for c in ids):  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    done = [c for c in ids if follower.done(c)]
    phase.completed = len(done)
    if done:
        first = min(follower.filed[c] for c in ids)
        last = max(max(follower.tracked[c], follower.notified[c]) for c in done)
        phase.throughput = len(done) / (last - first)
    phase.to_notified = percentiles([follower.first_notified[c] - follower.filed[c] for c in done])
    phase.to_tracked = percentiles([follower.tracked[c] - follower.filed[c] for c in done])
    phase.timeline = sorted(
        (
            follower.filed[c] - follower.filed[ids[0]],
            follower.first_notified[c] - follower.filed[c],
            follower.tracked[c] - follower.filed[c],
        )
        for c in done
    )
    return phase


def peak_memory_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def plot(phases: Sequence[Phase], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(phases), 1, figsize=(10, 3.5 * len(phases)), squeeze=False)
    for ax, phase in zip(axes[:, 0], phases, strict=True):
        xs = [t for t, _, _ in phase.timeline]
        for column, label in ((1, "filed → first notification"), (2, "filed → visible in tracker")):
            ax.plot(xs, [row[column] * 1000 for row in phase.timeline], ".", ms=3, label=label)
        rate = f"{phase.offered_rate:g}/s offered" if phase.offered_rate else "filed at once"
        ax.set_title(f"{phase.name} ({rate}): {phase.throughput:.1f} complaints/s sustained")
        ax.set_xlabel("seconds since the first filing")
        ax.set_ylabel("latency (ms)")
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    k, m = result["ceilings"]["kafka"], result["ceilings"]["mongo"]
    lines = [
        "raw ceilings on this machine, this run",
        f"  kafka produce (acks=all, awaited)   {k['produce_per_s']:>9.0f} msg/s",
        f"  kafka two-hop relay                 {k['two_hop_relay_per_s']:>9.0f} msg/s",
        f"  mongo single inserts                {m['single_inserts_per_s']:>9.0f} docs/s",
        f"  mongo bulk inserts                  {m['bulk_docs_per_s']:>9.0f} docs/s",
        "",
        f"{'phase':<12}{'offered':>9}{'done':>11}{'complaints/s':>14}{'÷ relay':>9}"
        f"{'notify p50/p95/p99/max ms':>30}{'tracked p50/p95/p99/max ms':>30}",
    ]
    for p in result["phases"]:
        n, t = p["to_notified"], p["to_tracked"]

        def ms(d: dict[str, float]) -> str:
            return (
                "/".join(f"{d[q] * 1000:.0f}" for q in ("p50", "p95", "p99", "max"))
                if d.get("n")
                else "—"
            )

        offered = f"{p['offered_rate']:g}/s" if p["offered_rate"] else "max"
        lines.append(
            f"{p['name']:<12}{offered:>9}{p['completed']:>5}/{p['complaints']:<5}{p['throughput']:>14.1f}"
            f"{p['ratio_to_relay']:>9.3f}{ms(n):>30}{ms(t):>30}"
        )
    for p in result["phases"]:
        if p.get("retried_503"):
            lines.append(
                f"  {p['name']}: {p['retried_503']} filings answered 503 (a dependency away) "
                "and filed again after Retry-After"
            )
    for p in result["phases"]:
        cpu, db = p["cpu_ms_per_complaint"], p["db_commands_per_complaint"]
        lines += ["", f"{p['name']}: CPU ms per complaint, by process"]
        lines.append("  " + "  ".join(f"{name} {ms:.1f}" for name, ms in cpu.items()))
        lines.append(f"  all processes {sum(cpu.values()):.1f}")
        lines.append(f"{p['name']}: database commands per complaint, by service")
        lines += breakdown(db, "{:.1f}")
        waited = p.get("db_ms_per_complaint") or {}
        if waited:
            lines.append(f"{p['name']}: ms waited on the database per complaint, by service")
            lines += breakdown(waited, "{:.1f}")
        documents = p.get("db_documents_per_complaint") or {}
        if documents:
            lines.append(f"{p['name']}: documents written per complaint, by service and collection")
            lines += breakdown(documents, "{:.1f}")
            floor = per_document_write(p)
            if floor is not None:
                lines.append(
                    f"  all services {floor['documents']:.1f} documents; the database's CPU "
                    f"per document written {floor['mongodb_cpu_ms']:.2f} ms"
                )
    flat = result.get("history")
    if flat:
        lines += [
            "",
            f"cost as history grows: saturation with {flat['stored_late']} stored "
            f"{flat['late']:.1f}/s vs {flat['stored_early']} stored {flat['early']:.1f}/s "
            f"(ratio {flat['ratio']:.2f}; 1.00 is flat)",
        ]
    check = result.get("delivery_check")
    if check:
        lines += [
            "",
            f"every complaint: filed {check['filed']}, tracked {check['tracked']}, "
            f"notified {check['notified']}; messages sent {check['messages_sent']}, "
            f"sent twice {check['messages_sent_twice']}",
        ]
    lines += ["", "peak memory (VmHWM) per process, MB"]
    lines += [f"  {name:<10}{mb:>8.0f}" for name, mb in result["peak_memory_mb"].items() if mb]
    return "\n".join(lines)


def per_document_write(phase: dict[str, Any]) -> dict[str, float] | None:
    """The database server's CPU per document the services wrote in a phase: with the
    documents a complaint needs, what bounds the rate on this database."""
    documents = sum(
        v.get("total", 0.0) for v in phase.get("db_documents_per_complaint", {}).values()
    )
    cpu = phase.get("cpu_ms_per_complaint", {}).get("mongodb")
    if not documents or cpu is None:
        return None
    return {"documents": documents, "mongodb_cpu_ms": cpu / documents}


def breakdown(by_service: dict[str, dict[str, float]], fmt: str) -> list[str]:
    """One line per service: its total, then each command kind, largest first."""
    lines = []
    for service, values in by_service.items():
        kinds = ", ".join(
            f"{c} {fmt.format(v)}"
            for c, v in sorted(values.items(), key=lambda kv: -kv[1])
            if c != "total"
        )
        lines.append(f"  {service:<10}{fmt.format(values.get('total', 0.0)):>8}  ({kinds})")
    return lines


def output_dir(out: str | None) -> Path:
    root = Path(out or PROJECT_ROOT / "var" / "bench") / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    root.mkdir(parents=True, exist_ok=True)
    return root


async def bench(args: Any, root: Path) -> dict[str, Any]:
    kafka_port, mongo_port = localstack.free_port(), localstack.free_port()
    backends = localstack.start_backends(
        kafka_port=kafka_port, mongo_port=mongo_port, data_dir=root / "mongo", log_dir=root / "logs"
    )
    bootstrap = f"127.0.0.1:{kafka_port}"
    mongo_uri = localstack.backend_env(kafka_port, mongo_port, "bench")["SOTONG_MONGO_URI"]
    try:
        print("measuring raw ceilings…", flush=True)
        payload = json.dumps({"body": "가" * 300, "pad": "x" * 400}).encode()
        ceilings = {
            "kafka": await kafka_ceilings(bootstrap, args.raw_messages, payload),
            "mongo": await mongo_ceilings(mongo_uri, args.raw_messages, 1000),
        }
        channel_key = secrets.token_urlsafe(24)
        env = localstack.backend_env(kafka_port, mongo_port, "bench") | {
            # the bench files as the portal does: its web credential, a resident per filing
            "SOTONG_INTAKE_CHANNEL_KEYS": json.dumps({"web": channel_key}),
            "SOTONG_INTAKE_PHONE_HASH_KEY": secrets.token_urlsafe(32),
            # the residents the bench plays never enter a one-time code: the pipeline is
            # measured to the notices a confirmed phone gets, not to the code message
            "SOTONG_INTAKE_CONTACT_CODE_CHANNELS": "[]",
            "SOTONG_NOTIFIER_OUTBOX_PATH": str(root / "outbox.jsonl"),
            "SOTONG_ROUTING_MODEL_DIR": str(PROJECT_ROOT / "var" / "classifier"),
            **{f"SOTONG_{s.upper()}_LOG_LEVEL": "WARNING" for s in localstack.SERVICES},
        }
        print("starting the four services…", flush=True)
        services = localstack.start_services(env, root / "logs")
        follower = Follower(bootstrap, "", mongo_uri, "bench")
        await follower.start()
        texts = [e.text for e in load_examples()]
        phases = []
        pids = {name: p.child.process.pid for name, p in services.items() if p.child.process}
        pids |= {
            ("kafka" if "kafka" in b.name else "mongodb"): b.process.pid
            for b in backends
            if b.process
        }
        pids["bench"] = os.getpid()
        probe = Probe(pids, {name: f"{p.url}/metrics" for name, p in services.items()})
        try:
            await run_phase(
                Phase("warm-up", 5, 20),
                services["intake"].url,
                follower,
                texts,
                4,
                120,
                channel_key,
            )
            for phase in (
                Phase("saturation-early", None, max(args.complaints // 2, 1)),
                Phase("fixed-rate", args.rate, max(round(args.rate * args.duration), 1)),
                Phase("saturation", None, args.complaints),
            ):
                print(f"phase {phase.name}…", flush=True)
                phase.stored_before = len(follower.filed)
                before = await probe.snapshot()
                await run_phase(
                    phase,
                    services["intake"].url,
                    follower,
                    texts,
                    args.concurrency,
                    args.wait,
                    channel_key,
                )
                Probe.charge(phase, before, await probe.snapshot())
                phases.append(phase)
            memory = {name: peak_memory_mb(pid) for name, pid in pids.items()}
            check = follower.delivery_check()
        finally:
            await follower.stop()
            for proc in services.values():
                proc.child.stop()
    finally:
        for child in reversed(backends):
            child.stop()
    relay = ceilings["kafka"]["two_hop_relay_per_s"]
    result = {
        "at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count()},
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "ceilings": ceilings,
        "phases": [
            {
                **{k: v for k, v in asdict(p).items() if k != "timeline"},
                "ratio_to_relay": p.throughput / relay,
                "per_document_write": per_document_write(asdict(p)),
            }
            for p in phases
        ],
        "peak_memory_mb": memory,
        "history": {
            "stored_early": phases[0].stored_before,
            "early": phases[0].throughput,
            "stored_late": phases[-1].stored_before,
            "late": phases[-1].throughput,
            "ratio": phases[-1].throughput / phases[0].throughput if phases[0].throughput else 0,
        },
        "delivery_check": check,
    }
    (root / "bench.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    plot(phases, root / "latency.png")
    print()
    print(table(result))
    print(f"\nJSON: {root / 'bench.json'}\nplot: {root / 'latency.png'}")
    return result
