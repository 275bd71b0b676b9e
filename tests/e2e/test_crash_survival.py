"""The platform as ``sotong up`` runs it survives crashes (issue 16): a killed service is
restarted and the flow completes; a killed broker is restarted, producers replay, and
every complaint is tracked with each resident message sent exactly once; ``sotong up``
itself killed and started again, the same; a Ctrl-C with a backlog drains it first.

Each test runs its own ``sotong up`` (a real process, as a user types it) on free ports
in a temporary directory; the residents' messages are read from the notifier's outbox.
"""

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sotong import localstack
from tests.conftest import MODEL_DIR
from tests.e2e.conftest import API_KEYS, eventually
from tests.e2e.test_walking_skeleton import STEPS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

READY_LINE = "Ctrl-C drains"
CALL_CENTRE_KEY = "e2e-call-centre-credential"
"""The complaints here come through the call centre, whose credential vouches for the
resident's phone: no one-time code to enter (issue 11 §11), so what a crash does to the
messages is all these tests see."""


@dataclass
class Up:
    """One ``sotong up`` process and where it keeps things."""

    root: Path
    ports: dict[str, int]
    runs: list[localstack.Child] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        keys = json.dumps(API_KEYS)
        return {
            **os.environ,
            "SOTONG_LOCAL_DIR": str(self.root / "var"),
            "SOTONG_LOCAL_KAFKA_PORT": str(self.ports["kafka"]),
            "SOTONG_LOCAL_MONGO_PORT": str(self.ports["mongo"]),
            "SOTONG_LOCAL_METRICS_PORT": str(self.ports["metrics"]),
            "SOTONG_LOCAL_DRAIN_TIMEOUT_SECONDS": "120",
            **{
                f"SOTONG_{name.upper()}_HTTP_PORT": str(self.ports[name])
                for name in localstack.SERVICES
            },
            "SOTONG_INTAKE_API_KEYS": keys,
            "SOTONG_INTAKE_CHANNEL_KEYS": json.dumps({"call_center": CALL_CENTRE_KEY}),
            "SOTONG_TRACKER_API_KEYS": keys,
            "SOTONG_ROUTING_MODEL_DIR": str(MODEL_DIR),
            "SOTONG_INTAKE_RELAY_INTERVAL_SECONDS": "0.5",
            "SOTONG_ROUTING_RELAY_INTERVAL_SECONDS": "0.5",
            "SOTONG_RETRY_INITIAL_BACKOFF_SECONDS": "0.1",
            "SOTONG_RETRY_MAX_BACKOFF_SECONDS": "1",
        }

    @property
    def process(self) -> localstack.Child:
        return self.runs[-1]

    def start(self) -> None:
        run = localstack.Child(
            name="sotong up",
            argv=[sys.executable, "-m", "sotong.cli", "up"],
            log_path=self.root / f"up-{len(self.runs)}.out",
            env=self.env,
        )
        self.runs.append(run)
        run.start()
        run.wait_until(lambda: READY_LINE in self.output(), 240)

    def output(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def outbox(self) -> Path:
        return self.root / "var" / "outbox.jsonl"

    def outbox_lines(self, complaint_id: str) -> list[dict[str, Any]]:
        if not self.outbox.exists():
            return []
        lines = [json.loads(x) for x in self.outbox.read_text().splitlines() if x]
        return [x for x in lines if x["complaint_id"] == complaint_id]

    def child_pid(self, marker: str) -> int:
        """The pid of ``sotong up``'s child whose command line holds ``marker``."""
        pid = self.process.pid
        assert pid is not None
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if marker in cmdline:
                return int(child)
        raise AssertionError(f"no child of sotong up runs {marker!r}")

    async def said(self, text: str, within: float = 180) -> None:
        await eventually(lambda: text in self.output(), within=within, what=f"sotong up: {text}")

    def stop(self) -> None:
        for run in self.runs:
            run.stop(timeout=150, sig=signal.SIGINT)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    names = ["kafka", "mongo", "metrics", *localstack.SERVICES]
    stack = Up(tmp_path, {name: localstack.free_port() for name in names})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


BODIES = [
    "이불이랑 매트리스 버리려면 어떻게 해요? 스티커 어디서 사요",
    "음식물 쓰레기 수거가 안 됐어요",
    "재활용품 분리수거함이 넘쳐요",
]


async def file(http: httpx.AsyncClient, up: Up, n: int) -> dict[str, Any]:
    body = {
        "channel": "call_center",
        "body": BODIES[n % len(BODIES)],
        "resident": {"name": "홍길동", "phone": f"010-1234-{5600 + n}"},
        # an address of its own: one complaint each, none joining another (중복민원)
        "location": {"address": f"인천 서구 청라대로 {n + 1}", "dong": "청라2동"},
    }
    response = await http.post(
        f"{up.url('intake')}/v1/complaints", json=body, headers={"X-Api-Key": CALL_CENTRE_KEY}
    )
    assert response.status_code == 201, response.text
    assert "contact" not in response.json()
    return dict(response.json())


async def act(http: httpx.AsyncClient, up: Up, filed: dict[str, Any], action: str) -> None:
    note = {"note": "내일 오전 방문"} if action == "start_site_check" else {}
    response = await http.post(
        f"{up.url('intake')}/v1/complaints/{filed['complaint_id']}/commands",
        json={"action": action} | note,
        headers={"X-Api-Key": API_KEYS["resource-circulation"]},
    )
    assert response.status_code == 202, response.text


async def reaches(
    http: httpx.AsyncClient, up: Up, filed: dict[str, Any], state: str, within: float = 120
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        try:
            response = await http.get(
                f"{up.url('tracker')}/v1/complaints/{filed['complaint_id']}",
                headers={"X-Tracking-Token": filed["tracking_token"]},
            )
        except httpx.TransportError:  # the tracker is being restarted
            return None
        view = dict(response.json()) if response.status_code == 200 else None
        return view if view and view["state"] == state else None

    found: dict[str, Any] = await eventually(probe, within=within, what=f"state {state}")
    return found


async def messages_once(up: Up, filed: dict[str, Any], steps: int) -> None:
    """The resident got each step's message, in order, and none twice."""

    def enough() -> list[dict[str, Any]] | None:
        lines = up.outbox_lines(filed["complaint_id"])
        return lines if len(lines) >= steps else None

    lines = await eventually(enough, within=120, what=f"{steps} messages")
    await asyncio.sleep(1.5)  # a duplicate would come right behind: give it the chance to show
    lines = up.outbox_lines(filed["complaint_id"])
    assert [line["state"] for line in lines] == STEPS[:steps]
    assert max(Counter(line["delivery_id"] for line in lines).values()) == 1


async def in_every_stage(
    http: httpx.AsyncClient, up: Up
) -> tuple[list[tuple[dict[str, Any], int]], int]:
    """Complaints at handler_assigned, site_check and reviewing, and two whose lifecycle
    events are on the broker but not yet read by the notifier (stopped with SIGSTOP, so
    only a replay can deliver them after the broker's memory is gone): each with the
    steps it will reach, and the stopped notifier's pid."""
    settled = [await file(http, up, n) for n in range(3)]
    for filed in settled:
        await reaches(http, up, filed, "handler_assigned")
    await act(http, up, settled[1], "start_site_check")
    await act(http, up, settled[2], "start_site_check")
    await reaches(http, up, settled[2], "site_check")
    await act(http, up, settled[2], "start_review")
    await reaches(http, up, settled[1], "site_check")
    await reaches(http, up, settled[2], "reviewing")
    for filed, steps in ((settled[1], 4), (settled[2], 5)):
        await messages_once(up, filed, steps)
    notifier = up.child_pid("run notifier")
    os.kill(notifier, signal.SIGSTOP)
    moving = [await file(http, up, n) for n in range(3, 5)]
    for filed in moving:
        await reaches(http, up, filed, "handler_assigned")
    assert all(up.outbox_lines(f["complaint_id"]) == [] for f in moving)
    return [(settled[0], 3), (settled[1], 4), (settled[2], 5), *((f, 3) for f in moving)], notifier


async def command_in_flight(
    http: httpx.AsyncClient, up: Up, complaints: list[tuple[dict[str, Any], int]]
) -> int:
    """A department's command accepted (202) while routing is stopped: on the broker only,
    until intake replays it. The first complaint will reach one step more; routing's pid."""
    routing = up.child_pid("run routing")
    os.kill(routing, signal.SIGSTOP)
    first, steps = complaints[0]
    await act(http, up, first, "start_site_check")
    complaints[0] = (first, steps + 1)
    return routing


async def every_complaint_whole(
    http: httpx.AsyncClient, up: Up, complaints: list[tuple[dict[str, Any], int]]
) -> None:
    for filed, steps in complaints:
        view = await reaches(http, up, filed, STEPS[steps - 1])
        assert [e["state"] for e in view["timeline"]] == STEPS[:steps]
    for filed, steps in complaints:
        await messages_once(up, filed, steps)


async def test_a_killed_service_is_restarted_and_the_flow_completes(
    up: Up, http: httpx.AsyncClient
) -> None:
    first = await file(http, up, 0)
    await reaches(http, up, first, "handler_assigned")
    os.kill(up.child_pid("run notifier"), signal.SIGKILL)
    second = await file(http, up, 1)
    await act(http, up, first, "start_site_check")
    await up.said("supervisor: notifier exited (code -9)")
    await up.said("supervisor: notifier is running again")
    await every_complaint_whole(http, up, [(first, 4), (second, 3)])
    metrics = (await http.get(f"http://127.0.0.1:{up.ports['metrics']}/metrics")).text
    assert 'sotong_supervisor_restarts_total{child="notifier"} 1.0' in metrics
    assert 'sotong_supervisor_restarts_total{child="routing"} 0.0' in metrics


async def test_a_killed_broker_is_restarted_and_replay_loses_nothing(
    up: Up, http: httpx.AsyncClient
) -> None:
    complaints, _ = await in_every_stage(http, up)  # the notifier, stopped, is restarted too
    await command_in_flight(http, up, complaints)
    os.kill(up.child_pid("tansu"), signal.SIGKILL)
    await up.said("supervisor: kafka exited (code -9)")
    await up.said("supervisor: notifier is running again")
    await every_complaint_whole(http, up, complaints)
    logs = (up.root / "var" / "logs" / "routing.log").read_text()
    assert "the broker lost its data" in logs
    after = await file(http, up, 5)  # and the new broker carries new work
    await every_complaint_whole(http, up, [(after, 3)])


async def test_sotong_up_killed_and_started_again_loses_nothing(
    up: Up, http: httpx.AsyncClient
) -> None:
    complaints, notifier = await in_every_stage(http, up)
    routing = await command_in_flight(http, up, complaints)
    up.process.kill()  # SIGKILL: its children stop with it (PR_SET_PDEATHSIG)
    for stopped in (notifier, routing):
        os.kill(stopped, signal.SIGCONT)  # so the stopped ones see their SIGTERM too
    up.start()  # the same data directory, a new broker
    await every_complaint_whole(http, up, complaints)
    assert "supervisor: " not in up.output()  # nothing needed restarting this time
    assert "the broker lost its data" in (up.root / "var" / "logs" / "routing.log").read_text()


async def test_ctrl_c_drains_a_backlog_before_stopping(up: Up, http: httpx.AsyncClient) -> None:
    notifier = up.child_pid("run notifier")
    os.kill(notifier, signal.SIGSTOP)  # a consumer that has fallen behind
    try:
        complaints = [await file(http, up, n) for n in range(4)]
        for filed in complaints:
            await reaches(http, up, filed, "handler_assigned")
        assert all(up.outbox_lines(f["complaint_id"]) == [] for f in complaints)
        running = up.process.process
        assert running is not None
        running.send_signal(signal.SIGINT)
        await up.said("draining: ")
        refused = await http.post(
            f"{up.url('intake')}/v1/complaints", json={"channel": "web", "body": "테스트"}
        )
        assert refused.status_code == 503
        assert refused.headers["retry-after"].isdigit()
        assert "sotong-notifier" in up.output().split("draining: ", 1)[1]
    finally:
        os.kill(notifier, signal.SIGCONT)
    await up.said("drained: every consumer is caught up", within=150)
    assert running.wait(60) == 0
    assert "stopped" in up.output()
    for filed in complaints:
        lines = up.outbox_lines(filed["complaint_id"])
        assert [line["state"] for line in lines] == STEPS[:3]
