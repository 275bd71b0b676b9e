"""A browser's live timeline across tracker replicas, on the processes as ``sotong up``
runs them: the page asks one tracker for a stream ticket with the tracking token in a
header, and its EventSource, which cannot send headers, opens the stream with
``?ticket=`` on whichever replica the load balancer picks. The token never travels in a
URL, and every replica with the shared key accepts a ticket any of them issued."""

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from sotong import localstack
from sotong.localstack import ServiceProcess
from tests.conftest import Backends
from tests.e2e.conftest import API_KEYS, Stack, eventually
from tests.e2e.test_walking_skeleton import file
from tests.service.test_tracker_read_api import next_entry, sse_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@dataclass
class Replicas:
    stack: Stack
    second_tracker: ServiceProcess


@pytest.fixture(scope="module")
def replicas(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("tickets")
    suffix = root.name.replace("-", "_")[-16:]
    prefix, database = f"tickets{suffix}.", f"tickets_{suffix}"
    env = backends.env(database=database, topic_prefix=prefix) | {
        "SOTONG_INTAKE_API_KEYS": json.dumps(API_KEYS),
        "SOTONG_TRACKER_STREAM_TICKET_KEY": secrets.token_urlsafe(32),
    }
    services = localstack.start_services(env, root / "logs", names=("intake", "routing", "tracker"))
    port = localstack.free_port()
    second = ServiceProcess(localstack.service_child("tracker", port, env, root / "logs-2"), port)
    second.child.start()
    try:
        second.wait_ready()
        yield Replicas(Stack(backends, services, root / "outbox.jsonl", prefix, database), second)
    finally:
        second.child.stop()
        for proc in services.values():
            proc.child.stop()


async def test_a_ticket_from_one_replica_opens_the_stream_on_another(replicas: Replicas) -> None:
    stack, other = replicas.stack, replicas.second_tracker.url
    async with httpx.AsyncClient(timeout=30) as http:
        # no phone to tell: this stack runs no notifier to send a one-time code
        filed = await file(http, stack, resident={"name": "홍길동"})
        complaint_id, token = filed["complaint_id"], filed["tracking_token"]

        async def ticket_from_first() -> httpx.Response | None:
            answer = await http.post(
                f"{stack.tracker}/v1/complaints/{complaint_id}/stream-ticket",
                headers={"X-Tracking-Token": token},
            )
            return answer if answer.status_code == 201 else None

        issued = await eventually(ticket_from_first, what="the complaint at the tracker")
        stream = issued.json()["stream"]
        assert token not in stream

        async with http.stream("GET", f"{other}{stream}") as response:
            assert response.status_code == 200
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["referrer-policy"] == "no-referrer"
            messages = sse_messages(response)
            first = await next_entry(messages, within=60)
            await messages.aclose()

        # a ticket opens only its own complaint, though the other is there to be opened
        second = await file(http, stack, resident={"name": "홍길동"})

        async def second_at_the_replica() -> bool | None:
            answer = await http.get(
                f"{other}/v1/complaints/{second['complaint_id']}",
                headers={"X-Tracking-Token": second["tracking_token"]},
            )
            return True if answer.status_code == 200 else None

        await eventually(second_at_the_replica, what="the second complaint at the replica")
        elsewhere = await http.get(
            f"{other}/v1/complaints/{second['complaint_id']}/events",
            params={"ticket": issued.json()["ticket"]},
        )

    assert first["data"]["state"] == "received"
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"]["code"] == "not_found"
