"""The benchmark's where-the-time-goes arithmetic: commands and database time per complaint."""

from prometheus_client import CollectorRegistry, generate_latest

from services.metrics import MongoCommandMetrics
from sotong.bench import breakdown, db_commands, db_seconds, per_complaint


def _metrics(observations: list[tuple[str, float]]) -> str:
    registry = CollectorRegistry()
    metrics = MongoCommandMetrics(registry)
    for command, seconds in observations:
        metrics.latency.labels(command).observe(seconds)
    return generate_latest(registry).decode()


def test_counts_and_seconds_are_read_per_command() -> None:
    text = _metrics([("find", 0.010), ("find", 0.030), ("update", 0.5)])
    assert db_commands(text) == {"find": 2.0, "update": 1.0}
    seconds = db_seconds(text)
    assert round(seconds["find"], 6) == 0.04
    assert round(seconds["update"], 6) == 0.5


def test_per_complaint_is_the_difference_divided_by_complaints() -> None:
    before = {"routing": {"find": 10.0, "insert": 4.0}}
    after = {"routing": {"find": 30.0, "insert": 4.0, "update": 5.0}, "notifier": {"find": 2.0}}
    spent = per_complaint(after, before, 10)
    assert spent["routing"] == {"find": 2.0, "update": 0.5, "total": 2.5}  # insert unchanged
    assert spent["notifier"] == {"find": 0.2, "total": 0.2}  # new service: all of it counts
    waited = per_complaint({"routing": {"find": 1.5}}, {"routing": {"find": 0.5}}, 4, scale=1000)
    assert waited["routing"]["find"] == 250.0


def test_breakdown_lists_the_largest_first() -> None:
    (line,) = breakdown({"routing": {"find": 1.0, "update": 3.0, "total": 4.0}}, "{:.1f}")
    assert line.split() == ["routing", "4.0", "(update", "3.0,", "find", "1.0)"]
