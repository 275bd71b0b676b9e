"""Two routing processes in one consumer group share the partitions and route every
complaint exactly once between them, also while one is stopped and started again."""

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from schemas import topics
from sotong import localstack
from sotong.localstack import ServiceProcess
from tests.conftest import Backends
from tests.e2e.conftest import API_KEYS, Stack, eventually, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


@dataclass
class Pair:
    stack: Stack
    second: ServiceProcess


@pytest.fixture(scope="module")
def pair(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("scale")
    suffix = root.name.replace("-", "_")[-16:]
    prefix, database = f"scale{suffix}.", f"scale_{suffix}"
    env = backends.env(database=database, topic_prefix=prefix) | {
        "SOTONG_NOTIFIER_OUTBOX_PATH": str(root / "outbox.jsonl"),
        "SOTONG_INTAKE_API_KEYS": json.dumps(API_KEYS),
    }
    services = localstack.start_services(env, root / "logs", names=("intake", "routing", "tracker"))
    port = localstack.free_port()
    second = ServiceProcess(localstack.service_child("routing", port, env, root / "logs-2"), port)
    second.child.start()
    try:
        second.wait_ready()
        yield Pair(Stack(backends, services, root / "outbox.jsonl", prefix, database), second)
    finally:
        second.child.stop()
        for proc in services.values():
            proc.child.stop()


def routed_by(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sotong_complaints_routed_total{")
    )


async def file_many(stack: Stack, n: int, tag: str) -> list[str]:
    ids = []
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(n):
            response = await http.post(
                f"{stack.intake}/v1/complaints",
                json={
                    "channel": "web",
                    "channel_ref": f"{tag}-{i}",
                    "body": f"{i}번지 앞 가로등이 꺼졌어요",
                },
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["complaint_id"])
    return ids


async def test_two_routers_share_the_work_and_route_each_complaint_once(pair: Pair) -> None:
    stack, first = pair.stack, pair.stack.services["routing"]
    ids = await file_many(stack, 24, "before")
    first.child.stop()  # a graceful stop: its partitions move to the other process
    ids += await file_many(stack, 12, "while-stopped")
    first.child.start()
    first.wait_ready()
    # the restarted process joins the group when the broker rebalances (seconds later);
    # until then the other routes everything, so file until the restarted one has work
    rounds = 0

    async def restarted_routes() -> bool | None:
        nonlocal rounds
        rounds += 1
        ids.extend(await file_many(stack, 6, f"after-{rounds}"))
        return True if routed_by(first.url) > 0 else None

    await eventually(
        restarted_routes, within=120, interval=1, what="the restarted router to route again"
    )

    async def all_routed() -> dict[str, list[dict[str, object]]] | None:
        events = await read_topic(stack, topics.LIFECYCLE, min_count=3 * len(ids), within=20)
        by_complaint: dict[str, list[dict[str, object]]] = defaultdict(list)
        for event in events:
            by_complaint[str(event["value"]["complaint_id"])].append(event["value"])
        return (
            by_complaint
            if all(len({e["event_id"] for e in by_complaint[c]}) >= 3 for c in ids)
            else None
        )

    by_complaint = await eventually(
        all_routed, within=180, interval=1, what="every complaint routed"
    )
    for complaint_id in ids:
        distinct = {str(e["event_id"]): e for e in by_complaint[complaint_id]}
        assert sorted(int(str(e["sequence"])) for e in distinct.values()) == [1, 2, 3], complaint_id
    assert routed_by(first.url) > 0
    assert routed_by(pair.second.url) > 0
