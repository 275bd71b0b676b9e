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


def test_documents_written_are_read_from_each_write_reply() -> None:
    from services.metrics import documents_written

    assert documents_written("insert", {"n": 3, "ok": 1}) == 3
    # a bulk insert with a duplicate key still reports the ones it inserted
    assert documents_written("insert", {"n": 2, "writeErrors": [{"code": 11000}]}) == 2
    upserted = {"n": 3, "nModified": 1, "upserted": [{"index": 0, "_id": "a"}]}
    assert documents_written("update", upserted) == 2  # matched-but-unchanged ones are not
    assert documents_written("delete", {"n": 4}) == 4
    assert documents_written("findAndModify", {"lastErrorObject": {"n": 1}, "value": {}}) == 1
    assert documents_written("findAndModify", {"lastErrorObject": {"n": 0}, "value": None}) == 0
    assert documents_written("find", {"cursor": {}}) == 0


def test_documents_written_are_counted_per_collection_and_bounded() -> None:
    from types import SimpleNamespace

    from services.metrics import MAX_COLLECTION_LABELS

    registry = CollectorRegistry()
    metrics = MongoCommandMetrics(registry)

    def write(request_id: int, collection: str, n: int) -> None:
        command = {"insert": collection, "documents": [{}] * n}
        metrics.started(
            SimpleNamespace(command_name="insert", command=command, request_id=request_id)
        )  # type: ignore[arg-type]
        metrics.succeeded(
            SimpleNamespace(
                command_name="insert", request_id=request_id, reply={"n": n}, duration_micros=10
            )
        )  # type: ignore[arg-type]

    write(1, "tracker_events", 5)
    write(2, "tracker_events", 2)
    for i in range(MAX_COLLECTION_LABELS + 5):
        write(100 + i, f"c{i}", 1)
    written = metrics.written
    assert written.labels("tracker_events", "insert")._value.get() == 7
    assert written.labels("other", "insert")._value.get() == 6  # 64 names: tracker_events, c0–c62
    assert not metrics._collections  # every started write was matched by its reply


def test_the_database_cpu_is_divided_by_the_documents_written() -> None:
    from sotong.bench import db_documents, per_document_write

    registry = CollectorRegistry()
    metrics = MongoCommandMetrics(registry)
    metrics.written.labels("tracker_complaints", "update").inc(6)
    metrics.written.labels("tracker_events", "insert").inc(4)
    assert db_documents(generate_latest(registry).decode()) == {
        "tracker_complaints": 6.0,
        "tracker_events": 4.0,
    }
    phase = {
        "db_documents_per_complaint": {"tracker": {"total": 8.0}, "routing": {"total": 2.0}},
        "cpu_ms_per_complaint": {"mongodb": 25.0, "tracker": 3.0},
    }
    assert per_document_write(phase) == {"documents": 10.0, "mongodb_cpu_ms": 2.5}
    assert per_document_write({"cpu_ms_per_complaint": {"mongodb": 1.0}}) is None
