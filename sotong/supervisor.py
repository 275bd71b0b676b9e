"""``sotong up``'s supervisor: a child that exits is started again after a backoff; only
a crash loop (too many restarts within a window) gives up.

The policy (``CrashHistory``) is pure and clocked from outside, so it is tested without
processes; ``Supervisor.poll`` is called from ``sotong up``'s loop and does the restarts.
When the broker is restarted its dependants (the services) are restarted after it: a
fresh embedded broker has no topics and no consumer groups, and a service starting
against it creates its topics and, with replay on, publishes its retained events again.
"""

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 15.0
    crash_loop_restarts: int = 5
    """This many exits within ``crash_loop_window_seconds`` is a crash loop: give up."""
    crash_loop_window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.initial_backoff_seconds <= 0 or self.max_backoff_seconds <= 0:
            raise ValueError("restart backoff seconds must be positive")
        if self.crash_loop_restarts < 1:
            raise ValueError("crash_loop_restarts must be at least 1")
        if self.crash_loop_window_seconds <= 0:
            raise ValueError("crash_loop_window_seconds must be positive")


@dataclass
class CrashHistory:
    """The exits of one child within the policy's window."""

    policy: RestartPolicy
    exits: deque[float] = field(default_factory=deque)

    def record_exit(self, now: float) -> float | None:
        """The delay before the next start, or None: a crash loop, give up."""
        window = self.policy.crash_loop_window_seconds
        while self.exits and self.exits[0] <= now - window:
            self.exits.popleft()
        self.exits.append(now)
        if len(self.exits) > self.policy.crash_loop_restarts:
            return None
        backoff = self.policy.initial_backoff_seconds * 2 ** (len(self.exits) - 1)
        return float(min(backoff, self.policy.max_backoff_seconds))


class Process(Protocol):
    """What the supervisor needs of a child: ``localstack.Child`` in ``sotong up``."""

    name: str

    @property
    def alive(self) -> bool: ...

    @property
    def exit_code(self) -> int | None: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def tail(self, lines: int = 20) -> str: ...


@dataclass
class Unit:
    """A supervised child, how to tell it is ready, and which units depend on it."""

    process: Process
    wait_ready: Callable[[], None]
    dependants: Sequence[str] = ()
    after_restart: Callable[[], None] | None = None


class CrashLoop(RuntimeError):
    def __init__(self, name: str, restarts: int, window: float, tail: str) -> None:
        super().__init__(
            f"{name} exited {restarts} times within {window:.0f}s: giving up (a crash loop). "
            f"Its last log lines:\n{tail}"
        )
        self.name = name


class SupervisorMetrics:
    """On ``sotong up``'s own registry, served on its /metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.restarts = Counter(
            "sotong_supervisor_restarts_total",
            "Children sotong up started again after they exited.",
            ["child"],
            registry=registry,
        )
        self.up = Gauge(
            "sotong_supervisor_child_up",
            "1 while a child runs, else 0.",
            ["child"],
            registry=registry,
        )


class Supervisor:
    """Restarts exited children; ``poll`` is called every few hundred milliseconds."""

    def __init__(
        self,
        units: Sequence[Unit],
        policy: RestartPolicy,
        *,
        report: Callable[[str], None],
        metrics: SupervisorMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.units = {unit.process.name: unit for unit in units}
        self.policy = policy
        self.report = report
        self.metrics = metrics
        self.clock = clock
        self.history = {name: CrashHistory(policy) for name in self.units}
        self.due: dict[str, float] = {}
        self.down_since: dict[str, float] = {}
        for name in self.units:
            self.metrics.up.labels(name).set(1)
            self.metrics.restarts.labels(name)

    def poll(self) -> list[str]:
        """Notice exits, start what is due; the names started again. Raises CrashLoop."""
        now = self.clock()
        for name, unit in self.units.items():
            if name in self.due:
                continue
            if unit.process.alive:
                self.metrics.up.labels(name).set(1)
                continue
            self.metrics.up.labels(name).set(0)
            delay = self.history[name].record_exit(now)
            if delay is None:
                raise CrashLoop(
                    name,
                    len(self.history[name].exits),
                    self.policy.crash_loop_window_seconds,
                    unit.process.tail(),
                )
            self.report(
                f"{name} exited (code {unit.process.exit_code}); starting it again in {delay:.1f}s"
            )
            self.due[name] = now + delay
            self.down_since[name] = now
        restarted: list[str] = []
        for name, at in sorted(self.due.items(), key=lambda item: item[1]):
            if at <= now:
                del self.due[name]
                self._restart(name)
                restarted.append(name)
        return restarted

    def _down(self, name: str) -> str:
        since = self.down_since.get(name)
        return "" if since is None else f" ({self.clock() - since:.1f}s after {name} exited)"

    def _restart(self, name: str) -> None:
        unit = self.units[name]
        unit.process.stop()  # closes the old log handle; the process is gone already
        unit.process.start()
        self.metrics.restarts.labels(name).inc()
        try:
            unit.wait_ready()
        except Exception as exc:  # it exited or hung while starting: the next poll decides
            self.report(f"{name} did not become ready: {exc}")
            return
        self.metrics.up.labels(name).set(1)
        self.report(f"{name} is running again{self._down(name)}")
        if unit.after_restart is not None:
            unit.after_restart()
        others = [d for d in unit.dependants if d in self.units and d not in self.due and d != name]
        if not others:
            return
        self.report(f"restarting {', '.join(others)}: they depend on {name}")
        for dependant in others:  # stopped and started together, then waited for together
            self.units[dependant].process.stop(timeout=5.0)
        for dependant in others:
            self.units[dependant].process.start()
            self.metrics.restarts.labels(dependant).inc()
        for dependant in others:
            other = self.units[dependant]
            try:
                other.wait_ready()
            except Exception as exc:
                self.report(f"{dependant} did not become ready: {exc}")
                continue
            self.metrics.up.labels(dependant).set(1)
            self.report(f"{dependant} is running again{self._down(name)}")
            if other.after_restart is not None:
                other.after_restart()
