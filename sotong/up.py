"""``sotong up``: start the embedded backends and the services, keep them running, and on
Ctrl-C drain before stopping.

Order of a clean stop: intake refuses new work (SIGUSR1 → 503 + Retry-After), every
consumer group's lag and every outbox goes to zero (bounded by a setting, reported each
second), then the services stop, then the broker and the database. A second Ctrl-C skips
what is left of the drain.
"""

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from pymongo import AsyncMongoClient

from services.mongo import Document
from sotong import localstack as ls
from sotong.drain import BacklogProbe
from sotong.supervisor import CrashLoop, RestartPolicy, Supervisor, SupervisorMetrics, Unit


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class StopRequests:
    """Ctrl-C (or SIGTERM) once: stop after a drain; twice: stop now."""

    count: int = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1
        if self.count == 1:
            say("stop requested: draining first (Ctrl-C again to stop at once)…")
        elif self.count == 2:
            say("stopping at once: the drain is skipped")

    @property
    def stop(self) -> bool:
        return self.count >= 1

    @property
    def now(self) -> bool:
        return self.count >= 2


@dataclass
class Platform:
    backends: list[ls.Child]
    services: dict[str, tuple[ls.Child, int]] = field(default_factory=dict)
    draining: bool = False

    def signal_drain(self, name: str) -> None:
        child, _ = self.services[name]
        if self.draining and child.pid is not None and child.alive:
            os.kill(child.pid, signal.SIGUSR1)

    def stop(self) -> None:
        for child, _ in reversed(list(self.services.values())):
            child.stop()
        for child in reversed(self.backends):
            child.stop()


def _units(platform: Platform, kafka_port: int, mongo_port: int) -> list[Unit]:
    kafka, mongo = platform.backends
    units = [
        Unit(
            kafka,
            lambda: kafka.wait_until(lambda: ls.port_open(kafka_port), 30),
            tuple(platform.services),
        ),
        Unit(mongo, lambda: mongo.wait_until(lambda: ls.port_open(mongo_port), 60)),
    ]
    for name, (child, port) in platform.services.items():
        ready = ls.http_ready(f"http://127.0.0.1:{port}/readyz")

        def wait(child: ls.Child = child, ready: Callable[[], bool] = ready) -> None:
            child.wait_until(ready, 90)

        after = None
        if name in ls.DRAINS_ON_SIGNAL:

            def after(name: str = name) -> None:
                platform.signal_drain(name)

        units.append(Unit(child, wait, after_restart=after))
    return units


async def drain(
    platform: Platform,
    supervisor: Supervisor,
    stop: StopRequests,
    *,
    kafka_bootstrap: str,
    mongo_uri: str,
    database: str,
    within_seconds: float,
    started_at: datetime,
) -> bool:
    """Wait until nothing is left to consume or publish; True when drained."""
    platform.draining = True
    for name in ls.DRAINS_ON_SIGNAL & set(platform.services):
        platform.signal_drain(name)
    deadline = time.monotonic() + within_seconds
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    zero_in_a_row = 0
    try:
        async with BacklogProbe(kafka_bootstrap, "", client[database], started_at) as probe:
            while not stop.now:
                supervisor.poll()
                backlog = await probe.backlog()
                if backlog.total == 0:
                    # twice in a row: a consumer commits only after publishing downstream,
                    # but groups are read one after the other
                    zero_in_a_row += 1
                    if zero_in_a_row >= 2:
                        say("drained: every consumer is caught up and every outbox is empty")
                        return True
                else:
                    zero_in_a_row = 0
                    left = max(0.0, deadline - time.monotonic())
                    say(f"draining: {backlog.total} left ({backlog.describe()}); {left:.0f}s to go")
                if time.monotonic() >= deadline:
                    say(
                        f"could not drain within {within_seconds:.0f}s: {backlog.total} left "
                        f"({backlog.describe()}); they stay in the database's outboxes and are "
                        "published again at the next start"
                    )
                    return False
                await asyncio.sleep(1.0)
    finally:
        await client.close()
    say("drain skipped")
    return False


def run(
    settings: ls.LocalStackSettings,
    *,
    service_env: Callable[[dict[str, str]], dict[str, str]],
    describe: Callable[[dict[str, str]], None],
) -> int:
    """The whole of ``sotong up``; ``service_env`` adds keys and paths to the backends' env,
    ``describe`` prints where things are once everything is ready."""
    var = settings.dir
    log_dir = var / "logs"
    stop = StopRequests()
    started_at = datetime.now(UTC)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    say(
        f"starting embedded Kafka (127.0.0.1:{settings.kafka_port}) and MongoDB "
        f"(127.0.0.1:{settings.mongo_port})…"
    )
    platform = Platform(
        ls.start_backends(
            kafka_port=settings.kafka_port,
            mongo_port=settings.mongo_port,
            data_dir=var / "mongo",
            log_dir=log_dir,
            grace=settings.previous_run_grace_seconds,
        )
    )
    database = os.environ.get("SOTONG_MONGO_DATABASE", "sotong")
    env = service_env(ls.backend_env(settings.kafka_port, settings.mongo_port, database))
    exit_code = 0
    drained_or_skipped = False
    server = None
    try:
        ports = {
            name: int(os.environ.get(f"SOTONG_{name.upper()}_HTTP_PORT", ls.DEFAULT_PORTS[name]))
            for name in ls.SERVICES
        }
        for name, port in ports.items():
            if not ls.wait_port_free(port, settings.previous_run_grace_seconds):
                raise ls.StartupError(f"port {port} for {name} is already in use")
            child = ls.service_child(name, port, env, log_dir, ports)
            child.start()
            platform.services[name] = (child, port)
        for name, (child, port) in platform.services.items():
            child.wait_until(ls.http_ready(f"http://127.0.0.1:{port}/readyz"), 90)
            say(f"  {name:<9} http://127.0.0.1:{port}  (docs /docs, metrics /metrics)")
        registry = CollectorRegistry()
        metrics_port = settings.metrics_port or ls.free_port()
        server, _ = start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
        supervisor = Supervisor(
            _units(platform, settings.kafka_port, settings.mongo_port),
            RestartPolicy(
                initial_backoff_seconds=settings.restart_initial_backoff_seconds,
                max_backoff_seconds=settings.restart_max_backoff_seconds,
                crash_loop_restarts=settings.crash_loop_restarts,
                crash_loop_window_seconds=settings.crash_loop_window_seconds,
            ),
            report=lambda text: say(f"supervisor: {text}"),
            metrics=SupervisorMetrics(registry),
        )
        describe(env)
        say(f"supervisor metrics (restarts per child): http://127.0.0.1:{metrics_port}/metrics")
        say(f"logs: {log_dir}/    Ctrl-C drains, then stops everything.")
        while not stop.stop:
            supervisor.poll()
            time.sleep(0.3)
        drained_or_skipped = True
        drained = asyncio.run(
            drain(
                platform,
                supervisor,
                stop,
                kafka_bootstrap=env["SOTONG_KAFKA_BOOTSTRAP_SERVERS"],
                mongo_uri=env["SOTONG_MONGO_URI"],
                database=database,
                within_seconds=settings.drain_timeout_seconds,
                started_at=started_at,
            )
        )
        exit_code = 0 if drained else 3
    except CrashLoop as exc:
        print(f"supervisor: {exc}", file=sys.stderr, flush=True)
        exit_code = 1
    except ls.StartupError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr, flush=True)
        exit_code = 1
    finally:
        if not drained_or_skipped and exit_code == 0:
            exit_code = 1
        say("stopping the services, then the broker and the database…")
        platform.stop()
        if server is not None:
            server.shutdown()
        say("stopped")
    return exit_code


def describe_local(keys_path: Path, staff_path: Path) -> Callable[[dict[str, str]], None]:
    def describe(env: dict[str, str]) -> None:
        outbox = Path(env["SOTONG_NOTIFIER_OUTBOX_PATH"])
        say(f"outbox (what residents receive): {outbox}")
        say(f"staff outbox (handlers, supervisors): {outbox.with_name('outbox-staff.jsonl')}")
        say(f"department API keys (for sotong act): {keys_path}")
        say(f"staff key (sotong act looks complaints up with it): {staff_path}")

    return describe
