"""The restart policy and the supervisor's decisions, on fake processes and a fake clock."""

from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from sotong.drain import Backlog, group_lag
from sotong.supervisor import (
    CrashHistory,
    CrashLoop,
    RestartPolicy,
    Supervisor,
    SupervisorMetrics,
    Unit,
)

POLICY = RestartPolicy(
    initial_backoff_seconds=1,
    max_backoff_seconds=4,
    crash_loop_restarts=3,
    crash_loop_window_seconds=60,
)


def test_backoff_doubles_up_to_the_cap_then_a_crash_loop_gives_up() -> None:
    history = CrashHistory(POLICY)
    assert [history.record_exit(t) for t in (0, 1, 2)] == [1, 2, 4]
    assert history.record_exit(3) is None


def test_exits_older_than_the_window_are_forgotten() -> None:
    history = CrashHistory(POLICY)
    for t in (0, 10, 20):
        history.record_exit(t)
    assert history.record_exit(75) == 2  # 0 and 10 left the window: two exits in it


def test_a_policy_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="crash_loop_restarts"):
        RestartPolicy(crash_loop_restarts=0)


@dataclass
class FakeProcess:
    name: str
    log: list[str]
    alive: bool = True
    exit_code: int | None = None
    starts: int = 0

    def start(self) -> None:
        self.alive, self.exit_code = True, None
        self.starts += 1
        self.log.append(f"start {self.name}")

    def stop(self, timeout: float = 10.0) -> None:
        self.log.append(f"stop {self.name}")
        self.alive = False

    def crash(self, code: int = -9) -> None:
        self.alive, self.exit_code = False, code

    def tail(self, lines: int = 20) -> str:
        return f"last words of {self.name}"


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    log: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def supervisor(self, units: list[Unit]) -> Supervisor:
        return Supervisor(
            units,
            POLICY,
            report=self.reports.append,
            metrics=SupervisorMetrics(self.registry),
            clock=self.clock,
        )

    def restarts(self, child: str) -> float | None:
        return self.registry.get_sample_value("sotong_supervisor_restarts_total", {"child": child})


def test_an_exited_service_is_started_again_after_its_backoff_and_counted() -> None:
    rig = Rig()
    notifier = FakeProcess("notifier", rig.log)
    tracker = FakeProcess("tracker", rig.log)
    sup = rig.supervisor([Unit(notifier, lambda: None), Unit(tracker, lambda: None)])
    notifier.crash()
    assert sup.poll() == []  # noticed, waiting out the backoff
    assert "notifier exited (code -9); starting it again in 1.0s" in rig.reports
    rig.clock.now = 1.0
    assert sup.poll() == ["notifier"]
    assert "notifier is running again (1.0s after notifier exited)" in rig.reports
    assert notifier.alive
    assert notifier.starts == 1
    assert tracker.starts == 0  # the others keep running
    assert rig.restarts("notifier") == 1
    assert rig.registry.get_sample_value("sotong_supervisor_child_up", {"child": "notifier"}) == 1


def test_a_restarted_broker_restarts_its_dependants_after_it() -> None:
    rig = Rig()
    kafka = FakeProcess("kafka", rig.log)
    routing = FakeProcess("routing", rig.log)
    sup = rig.supervisor([Unit(kafka, lambda: None, ("routing",)), Unit(routing, lambda: None)])
    kafka.crash()
    sup.poll()
    rig.clock.now = 1.0
    assert sup.poll() == ["kafka"]
    assert rig.log == ["stop kafka", "start kafka", "stop routing", "start routing"]
    assert "restarting routing: they depend on kafka" in rig.reports
    assert rig.restarts("routing") == 1


def test_a_crash_loop_gives_up_naming_the_child_and_its_last_log_lines() -> None:
    rig = Rig()
    routing = FakeProcess("routing", rig.log)
    sup = rig.supervisor([Unit(routing, lambda: None)])
    for _ in range(3):
        routing.crash(1)
        sup.poll()
        rig.clock.now += 5
        sup.poll()
    routing.crash(1)
    with pytest.raises(CrashLoop) as raised:
        sup.poll()
    assert raised.value.name == "routing"
    assert "routing exited 4 times within 60s" in str(raised.value)
    assert "last words of routing" in str(raised.value)


def test_a_child_that_fails_to_become_ready_is_decided_at_the_next_poll() -> None:
    rig = Rig()
    intake = FakeProcess("intake", rig.log)

    def not_ready() -> None:
        intake.crash(1)
        raise RuntimeError("intake exited during start-up")

    sup = rig.supervisor([Unit(intake, not_ready)])
    intake.crash()
    sup.poll()
    rig.clock.now = 1.0
    sup.poll()
    assert "intake did not become ready: intake exited during start-up" in rig.reports
    sup.poll()
    assert "intake exited (code 1); starting it again in 2.0s" in rig.reports


def test_lag_counts_committed_against_end_and_skips_topics_never_consumed() -> None:
    from aiokafka import TopicPartition

    filed0, filed1 = TopicPartition("complaint.filed", 0), TopicPartition("complaint.filed", 1)
    other = TopicPartition("complaint.sla", 0)
    lag = group_lag(
        committed={filed0: 5, filed1: None, other: None},
        beginning={filed0: 0, filed1: 0, other: 0},
        end={filed0: 7, filed1: 3, other: 9},
    )
    assert lag == {"complaint.filed": 5}
    subscribed = group_lag(
        committed={filed0: None, filed1: None, other: None},
        beginning={filed0: 0, filed1: 1, other: 0},
        end={filed0: 7, filed1: 3, other: 9},
        subscribed=["complaint.filed"],
    )
    assert subscribed == {"complaint.filed": 9}  # read nothing yet: all of it is behind


def test_a_backlog_says_what_is_left_with_counts() -> None:
    backlog = Backlog(
        lag={
            ("sotong-notifier", "complaint.lifecycle"): 4,
            ("sotong-tracker", "complaint.filed"): 0,
        },
        outboxes={"routing outboxes not yet published": 2},
    )
    assert backlog.total == 6
    assert backlog.describe() == (
        "sotong-notifier complaint.lifecycle: 4, routing outboxes not yet published: 2"
    )
