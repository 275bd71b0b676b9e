"""Statistics are a pure function of read models' non-personal fields."""

from datetime import timedelta
from typing import Any

import pytest

from schemas import ComplaintState
from tests.fakes.tracker import as_stored, projected
from tests.unit.test_tracker_projection import T0, change, filed
from tracker.projection import ReadModel, TrackedEvent, project
from tracker.statistics import Stage, StatisticsRow, percentile, stage_times, statistics
from tracker.store import read_model_document, stored_fields

S = ComplaintState
HOUR = 3600.0


def at(hours: float) -> dict[str, Any]:
    return {"occurred_at": T0 + timedelta(hours=hours)}


def complaint(
    complaint_id: str,
    steps: list[tuple[S, float, str]],
    *,
    department: str = "roads",
    due_hours: float = 48,
    auto: bool | None = True,
) -> ReadModel:
    """A read model from (state, hours after filing, trigger) steps."""
    events: list[TrackedEvent] = [filed(complaint_id)]
    previous: S | None = None
    for sequence, (state, hours, trigger) in enumerate(steps, start=1):
        events.append(
            change(
                complaint_id,
                sequence,
                previous,
                state,
                trigger=trigger,
                department=department if sequence > 1 else None,
                due_at=T0 + timedelta(hours=due_hours),
                auto_routed=auto if sequence == 2 else None,
                **at(hours),
            )
        )
        previous = state
    return project(events)


def only_statistics_fields(model: ReadModel) -> StatisticsRow:
    """What the store hands over: the stored fields a row declares, nothing else."""
    document = as_stored(read_model_document(model))
    return StatisticsRow.model_validate(projected(document, stored_fields(StatisticsRow)))


def whole(model: ReadModel) -> StatisticsRow:
    """A row read from the whole read model, not through the store's projection."""
    return StatisticsRow.model_validate(model, from_attributes=True)


ON_TIME = complaint(
    "c-on-time",
    [
        (S.RECEIVED, 0, "file"),
        (S.ASSIGNED, 1, "assign"),
        (S.HANDLER_ASSIGNED, 2, "assign_handler"),
        (S.HANDLER_ASSIGNED, 3, "extend"),
        (S.SITE_CHECK, 6, "start_site_check"),
        (S.RESOLVED, 10, "resolve"),
    ],
)
LATE_AND_REOPENED = complaint(
    "c-late",
    [
        (S.RECEIVED, 0, "file"),
        (S.ASSIGNED, 3, "assign"),
        (S.HANDLER_ASSIGNED, 4, "assign_handler"),
        (S.RESOLVED, 60, "resolve"),
        (S.HANDLER_ASSIGNED, 61, "reopen"),
    ],
    due_hours=48,
)
TRANSFERRED = complaint(
    "c-moved",
    [
        (S.RECEIVED, 0, "file"),
        (S.ASSIGNED, 2, "assign"),
        (S.HANDLER_ASSIGNED, 3, "assign_handler"),
        (S.ASSIGNED, 5, "transfer"),
        (S.HANDLER_ASSIGNED, 5.5, "assign_handler"),
    ],
    department="parks",
    auto=False,
)
UNROUTED = project([filed("c-new")])


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([float(n) for n in range(1, 11)], 0.9) == pytest.approx(9.1)


def test_a_stage_lasts_until_the_state_changes_and_the_current_one_is_not_counted() -> None:
    timeline = [
        Stage(state="received", **at(0)),
        Stage(state="assigned", **at(1)),
        Stage(state="assigned", **at(2)),  # an internal change: still assigned
        Stage(state="site_check", **at(4)),
    ]

    assert stage_times(timeline) == [("received", HOUR), ("assigned", 3 * HOUR)]
    assert stage_times([]) == []


def test_counts_per_state_and_department() -> None:
    result = statistics(
        only_statistics_fields(m) for m in (ON_TIME, LATE_AND_REOPENED, TRANSFERRED, UNROUTED)
    )

    assert result.complaints == 4
    assert result.awaiting_routing == 1
    assert result.by_state == {"handler_assigned": 2, "resolved": 1}
    assert result.by_department["roads"].total == 2
    assert result.by_department["roads"].by_state == {"handler_assigned": 1, "resolved": 1}
    assert result.by_department["parks"].by_state == {"handler_assigned": 1}


def test_time_per_stage_median_and_90th_percentile() -> None:
    result = statistics(
        only_statistics_fields(m) for m in (ON_TIME, LATE_AND_REOPENED, TRANSFERRED)
    )

    received = result.time_in_stage["received"]
    assert received.count == 3
    assert received.median_seconds == 2 * HOUR  # of 1 h, 3 h, 2 h
    assert received.p90_seconds == pytest.approx(2.8 * HOUR)
    # on time: 4 h (the extension does not end the stage); late: 56 h; moved: 2 h and 0.5 h
    assert result.time_in_stage["handler_assigned"].count == 3
    assert result.time_in_stage["handler_assigned"].median_seconds == 4 * HOUR
    assert result.time_in_stage["resolved"].count == 1  # left by the reopening
    assert result.time_to_resolution.count == 2
    assert result.time_to_resolution.median_seconds == 35 * HOUR  # of 10 h and 60 h


def test_rates() -> None:
    result = statistics(
        only_statistics_fields(m) for m in (ON_TIME, LATE_AND_REOPENED, TRANSFERRED, UNROUTED)
    )

    assert result.resolved_within_deadline.model_dump() == {
        "numerator": 1,
        "denominator": 2,
        "rate": 0.5,
    }
    assert result.reopen_rate.rate == 0.5
    assert (result.transfer_rate.numerator, result.transfer_rate.denominator) == (1, 3)
    assert (result.auto_routing_rate.numerator, result.auto_routing_rate.denominator) == (2, 3)


def test_nothing_to_count_gives_nulls_not_errors() -> None:
    result = statistics([])

    assert result.complaints == 0
    assert result.resolved_within_deadline.rate is None
    assert result.time_to_resolution.median_seconds is None
    assert result.time_in_stage == {}


def test_statistics_fields_hold_nothing_personal() -> None:
    row = only_statistics_fields(ON_TIME)
    text = repr(row)

    for personal in ("홍길동", "010-1234-5678", "청라커낼로", "resident", "body", "title"):
        assert personal not in text
    assert statistics([row]) == statistics([whole(ON_TIME)])


def test_suppression_withholds_small_counts_and_what_reveals_them() -> None:
    from tracker.statistics import DepartmentCounts, Durations, Rate, Statistics, suppressed

    figures = Statistics(
        complaints=120,
        awaiting_routing=3,
        by_state={"resolved": 100, "rejected": 2, "withdrawn": 0},
        by_department={"parks": DepartmentCounts(total=4, by_state={"resolved": 4})},
        time_in_stage={
            "received": Durations(count=120, median_seconds=60.0, p90_seconds=90.0),
            "info_requested": Durations(count=3, median_seconds=3600.0, p90_seconds=7200.0),
        },
        time_to_resolution=Durations(count=100, median_seconds=86400.0, p90_seconds=172800.0),
        resolved_within_deadline=Rate(numerator=98, denominator=100, rate=0.98),
        reopen_rate=Rate(numerator=2, denominator=100, rate=0.02),
        transfer_rate=Rate(numerator=40, denominator=120, rate=40 / 120),
        auto_routing_rate=Rate(numerator=3, denominator=4, rate=0.75),
    )
    shown = suppressed(figures, 5)
    assert (shown.complaints, shown.awaiting_routing) == (120, None)
    assert shown.by_state == {"resolved": 100, "rejected": None, "withdrawn": 0}
    assert shown.by_department["parks"].total is None
    assert shown.time_in_stage["received"] == figures.time_in_stage["received"]
    assert shown.time_in_stage["info_requested"] == Durations(
        count=None, median_seconds=None, p90_seconds=None
    )
    # 98 of 100 on time names the two late ones as surely as 2 of 100 would
    assert shown.resolved_within_deadline == Rate(numerator=None, denominator=100, rate=None)
    assert shown.reopen_rate == Rate(numerator=None, denominator=100, rate=None)
    assert shown.transfer_rate == figures.transfer_rate
    assert shown.auto_routing_rate == Rate(numerator=None, denominator=None, rate=None)
    assert shown.min_cell == 5
    assert suppressed(figures, 1).by_state == figures.by_state
