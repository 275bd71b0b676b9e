"""The platform as ``sotong up`` runs it, on free ports in one directory, for the suite.

The embedded broker and database and the five services are started with
``sotong.localstack`` exactly as ``sotong up`` starts them, with the production retry
settings (nothing ``SOTONG_RETRY_*`` is set), department, staff and Open311 keys
generated into the run's directory, and every department's webhook pointed at a small
receiver on 127.0.0.1 that keeps each body it is sent. A service is killed and started
again the way the supervisor does it; a restarted broker restarts its dependants.
"""

import contextlib
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from schemas.catalogue import catalogue
from services.mongo import Document
from sotong import localstack as ls
from sotong.drain import BacklogProbe


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """Department systems' endpoint: every POST is answered 204 and kept."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[Received]:
        with self._lock:
            return list(self.received)


@dataclass
class Stack:
    root: Path
    kafka_port: int
    mongo_port: int
    env: dict[str, str]
    backends: dict[str, ls.Child]
    services: dict[str, ls.ServiceProcess]
    webhooks: WebhookReceiver
    department_keys: dict[str, str]
    staff_key: str
    started_at: datetime
    database: str = "sotong"
    log_dir: Path = field(default_factory=Path)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_uri(self) -> str:
        return ls.embedded_mongo_uri(self.mongo_port)

    def url(self, service: str) -> str:
        return self.services[service].url

    @property
    def outbox(self) -> Path:
        return Path(self.env["SOTONG_NOTIFIER_OUTBOX_PATH"])

    def as_resident(self, end_user: str) -> dict[str, str]:
        """Headers of a filing the portal makes for one resident: its ``web`` credential
        and the resident named in X-End-User, so intake limits each resident on its own
        (``sotong.localstack.local_channel_keys``)."""
        web = json.loads(self.env["SOTONG_INTAKE_CHANNEL_KEYS"])["web"]
        return {"X-Api-Key": str(web), "X-End-User": end_user}

    def outbox_files(self) -> list[Path]:
        return sorted(self.outbox.parent.glob(f"{self.outbox.stem}*{self.outbox.suffix}"))

    def log_files(self) -> list[Path]:
        return sorted(self.log_dir.glob("*.log"))

    def mongo(self) -> AsyncMongoClient[Document]:
        return AsyncMongoClient(self.mongo_uri, serverSelectionTimeoutMS=10_000)

    # ---- crashes -------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        child = self.backends.get(name) or self.services[name].child
        return child.pid

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash: no drain, no flush."""
        if name in self.backends:
            self.backends[name].kill()
        else:
            self.services[name].child.kill()

    def start_again(self, name: str) -> None:
        """Start a killed child and wait until it is ready; a new broker (empty, with a
        fresh cluster id) restarts every service after it, as the supervisor does."""
        if name == "kafka":
            kafka = self.backends["kafka"]
            kafka.start()
            kafka.wait_until(lambda: ls.port_open(self.kafka_port), 30)
            for proc in self.services.values():
                proc.child.stop(timeout=5)
            for proc in self.services.values():
                proc.child.start()
            for proc in self.services.values():
                proc.wait_ready(READY_WITHIN)
        elif name == "mongodb":
            mongo = self.backends["mongodb"]
            mongo.start()
            mongo.wait_until(lambda: ls.port_open(self.mongo_port), 60)
        else:
            self.services[name].child.start()
            self.services[name].wait_ready(READY_WITHIN)

    def pause(self, name: str) -> None:
        """SIGSTOP: the process hangs with its sockets open, as a stalled server does."""
        pid = self.pid(name)
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        pid = self.pid(name)
        if pid is not None:
            os.kill(pid, signal.SIGCONT)

    async def settle(self, within: float) -> int:
        """Wait until every consumer group is caught up and every outbox is empty (twice
        in a row); the backlog left (0 when settled)."""
        client = self.mongo()
        left = -1
        zero = 0
        try:
            async with BacklogProbe(
                self.bootstrap, "", client[self.database], self.started_at
            ) as probe:
                deadline = time.monotonic() + within
                while time.monotonic() < deadline:
                    left = (await probe.backlog()).total
                    zero = zero + 1 if left == 0 else 0
                    if zero >= 2:
                        return 0
                    await _sleep(1.0)
        finally:
            await client.close()
        return left

    def stop(self) -> None:
        for proc in reversed(list(self.services.values())):
            if proc.child.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(proc.child.pid, signal.SIGCONT)
            proc.child.stop()
        for child in reversed(list(self.backends.values())):
            if child.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(child.pid, signal.SIGCONT)
            child.stop()
        self.webhooks.stop()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


READY_WITHIN = 300.0
"""Longer than ``sotong up``'s wait: the suite shares a loaded machine, and a start that
is slow is not what it measures."""


def start_services(env: Mapping[str, str], log_dir: Path) -> dict[str, ls.ServiceProcess]:
    """``localstack.start_services`` with a longer wait for readiness."""
    ports = {name: ls.free_port() for name in ls.SERVICES}
    procs = {
        name: ls.ServiceProcess(
            ls.service_child(name, ports[name], env, log_dir, ports), ports[name]
        )
        for name in ls.SERVICES
    }
    try:
        for proc in procs.values():
            proc.child.start()
        for proc in procs.values():
            proc.wait_ready(READY_WITHIN)
    except BaseException:
        for proc in procs.values():
            proc.child.stop()
        raise
    return procs


def start(root: Path, *, model_dir: Path, extra_env: Mapping[str, str] | None = None) -> Stack:
    """Backends and services as ``sotong up`` starts them, in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    log_dir = root / "logs"
    kafka_port, mongo_port = ls.free_port(), ls.free_port()
    started_at = datetime.now(UTC)
    backends = ls.start_backends(
        kafka_port=kafka_port, mongo_port=mongo_port, data_dir=root / "mongo", log_dir=log_dir
    )
    webhooks = WebhookReceiver()
    webhooks.start()
    department_keys = ls.local_api_keys(root / "api-keys.json")
    staff_key = ls.local_staff_keys(root / "staff-keys.json")[ls.STAFF_NAME]
    hooks = {
        code: {"url": f"http://127.0.0.1:{webhooks.port}/{code}", "secret": secrets.token_hex(16)}
        for code in catalogue().codes
    }
    env = (
        ls.backend_env(kafka_port, mongo_port, "sotong")
        | ls.local_service_env(root, root / "api-keys.json", root / "staff-keys.json")
        | {
            "SOTONG_ROUTING_MODEL_DIR": str(model_dir),
            "SOTONG_NOTIFIER_OUTBOX_PATH": str(root / "outbox.jsonl"),
            "SOTONG_NOTIFIER_WEBHOOKS": json.dumps(hooks),
            "SOTONG_INTAKE_API_KEYS": json.dumps(department_keys),
            "SOTONG_TRACKER_API_KEYS": json.dumps(department_keys),
            "SOTONG_TRACKER_STAFF_API_KEYS": json.dumps({ls.STAFF_NAME: staff_key}),
            "SOTONG_INTAKE_TRACKER_API_KEY": staff_key,
            # the residents the suite plays never enter a one-time code: crashes, poison
            # and outages are judged on the messages a confirmed phone gets
            "SOTONG_INTAKE_CONTACT_CODE_CHANNELS": "[]",
        }
        | dict(extra_env or {})
    )
    try:
        services = start_services(env, log_dir)
    except BaseException:
        for child in reversed(backends):
            child.stop()
        webhooks.stop()
        raise
    return Stack(
        root=root,
        kafka_port=kafka_port,
        mongo_port=mongo_port,
        env=env,
        backends={child.name: child for child in backends},
        services=services,
        webhooks=webhooks,
        department_keys=department_keys,
        staff_key=staff_key,
        started_at=started_at,
        log_dir=log_dir,
    )
