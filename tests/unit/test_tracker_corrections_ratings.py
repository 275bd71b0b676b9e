"""What tracker keeps of a correction (정정) and a rating (만족도), and what statistics make
of ratings. Pure: projection and statistics over events built in memory."""

import itertools
from datetime import timedelta

from schemas import ComplaintState, topics
from schemas.commands import CorrectComplaint, StartSiteCheck, WithdrawComplaint
from schemas.events import Correction, PhotoRef, Rating
from services.broker import topic_name
from tests.unit.test_tracker_api import running
from tests.unit.test_tracker_batches import Record, ingest_of
from tests.unit.test_tracker_projection import HANDLER, T0, change, filed
from tests.unit.test_tracker_statistics import only_statistics_fields
from tracker.projection import TrackedEvent, project
from tracker.statistics import statistics, suppressed
from tracker.view import ComplaintView, DepartmentComplaintView

S = ComplaintState
NEW_HANDLER = HANDLER.model_copy(update={"handler_id": "h-18", "name": "이담당"})


def handled(complaint_id: str, department: str = "roads") -> list[TrackedEvent]:
    return [
        filed(complaint_id),
        change(complaint_id, 1, None, S.RECEIVED, trigger="file"),
        change(complaint_id, 2, S.RECEIVED, S.ASSIGNED, trigger="assign", department=department),
        change(
            complaint_id,
            3,
            S.ASSIGNED,
            S.HANDLER_ASSIGNED,
            trigger="assign_handler",
            department=department,
            handler=HANDLER,
        ),
    ]


def corrected(complaint_id: str = "c1") -> tuple[CorrectComplaint, list[TrackedEvent]]:
    """The command (as intake published it) and routing's two changes it caused."""
    command = CorrectComplaint(
        event_id=f"{complaint_id}-correct",
        complaint_id=complaint_id,
        actor="resident",
        address="인천 서구 청라대로 99",
        dong="청라3동",
        title="가로등이 꺼져 있어요",
    )
    fields = ["address", "dong", "title"]
    changes: list[TrackedEvent] = [
        change(
            complaint_id,
            4,
            S.HANDLER_ASSIGNED,
            S.HANDLER_ASSIGNED,
            trigger="correct",
            actor="resident",
            department="roads",
            handler=HANDLER,
            caused_by=command.event_id,
            correction=Correction(fields=fields, dong="청라3동"),
        ),
        change(
            complaint_id,
            5,
            S.HANDLER_ASSIGNED,
            S.HANDLER_ASSIGNED,
            trigger="reassign",
            department="roads",
            handler=NEW_HANDLER,
            caused_by=command.event_id,
        ),
    ]
    return command, changes


def test_a_correction_changes_the_facts_and_the_timeline_shows_the_new_handler() -> None:
    command, changes = corrected()
    model = project([*handled("c1"), command, *changes])
    assert (model.dong, model.title) == ("청라3동", "가로등이 꺼져 있어요")
    assert model.resident is not None
    assert model.resident.address == "인천 서구 청라대로 99"
    assert model.handler == NEW_HANDLER
    assert [t.trigger for t in model.timeline][-2:] == ["correct", "reassign"]
    assert model.timeline[-2].correction == Correction(
        fields=["address", "dong", "title"], dong="청라3동"
    )
    assert model.search_terms != project(handled("c1")).search_terms  # the new title's
    resident = ComplaintView.model_validate(model, from_attributes=True)
    assert resident.dong == "청라3동"
    assert resident.title == "가로등이 꺼져 있어요"
    assert resident.timeline[-1].handler is not None
    assert resident.timeline[-1].handler.name == "이담당"
    department = DepartmentComplaintView.model_validate(model, from_attributes=True)
    assert department.resident.address == "인천 서구 청라대로 99"


def photo(photo_id: str) -> PhotoRef:
    return PhotoRef(photo_id=photo_id.ljust(22, "x"), content_type="image/jpeg", size=2048)


def test_photos_a_correction_added_join_the_filings_in_the_read_model_and_both_views() -> None:
    events = handled("c1")
    events[0] = filed("c1", photos=[photo("filed")])
    added = [photo("added"), photo("filed")]  # a filing's photo named again counts once
    photo_change = change(
        "c1",
        4,
        S.HANDLER_ASSIGNED,
        S.HANDLER_ASSIGNED,
        trigger="correct",
        actor="resident",
        department="roads",
        handler=HANDLER,
        correction=Correction(fields=["photos"], dong="청라1동", photos=added),
    )

    model = project([*events, photo_change])

    assert model.photos == [photo("filed"), photo("added")]
    assert model.timeline[-1].correction is not None
    assert model.timeline[-1].correction.photos == added
    resident = ComplaintView.model_validate(model, from_attributes=True)
    assert [p.photo_id for p in resident.photos] == [
        photo("filed").photo_id,
        photo("added").photo_id,
    ]
    assert resident.timeline[-1].correction is not None
    assert resident.timeline[-1].correction.fields == ["photos"]
    department = DepartmentComplaintView.model_validate(model, from_attributes=True)
    assert len(department.photos) == 2
    assert project(events).photos == [photo("filed")]


def test_order_of_arrival_does_not_matter() -> None:
    command, changes = corrected()
    events = [*handled("c1"), command, *changes]
    models = {project(list(order)).model_dump_json() for order in itertools.permutations(events)}
    assert len(models) == 1


def test_a_command_routing_did_not_apply_changes_nothing() -> None:
    command, _ = corrected()
    model = project([*handled("c1"), command])  # refused, or not decided yet
    assert (model.dong, model.title) == ("청라1동", "가로등 고장")
    assert model.resident is not None
    assert model.resident.address == "인천 서구 청라커낼로 100"


def test_the_change_alone_gives_the_new_dong_and_the_rest_waits_for_the_command() -> None:
    _, changes = corrected()
    model = project([*handled("c1"), *changes])
    assert model.dong == "청라3동"
    assert model.title == "가로등 고장"
    assert model.resident is not None
    assert model.resident.address == "인천 서구 청라커낼로 100"


def resolved_and_rated(complaint_id: str, department: str, score: int) -> list[TrackedEvent]:
    events = handled(complaint_id, department)
    events.append(
        change(
            complaint_id,
            4,
            S.HANDLER_ASSIGNED,
            S.RESOLVED,
            trigger="resolve",
            department=department,
            note="고쳤습니다",
        )
    )
    events.append(
        change(
            complaint_id,
            5,
            S.RESOLVED,
            S.RESOLVED,
            trigger="rate",
            actor="resident",
            rating=Rating(score=score, comment="감사합니다"),
            occurred_at=T0 + timedelta(hours=3),
        )
    )
    return events


def test_the_latest_rating_is_kept_and_shown() -> None:
    model = project(resolved_and_rated("c1", "roads", 4))
    assert (model.rating, model.rating_comment) == (4, "감사합니다")
    assert ComplaintView.model_validate(model, from_attributes=True).rating == 4


def test_ratings_per_department_mean_and_count_with_small_cells_withheld() -> None:
    scores = [5, 4, 4, 3, 5, 2]
    models = [project(resolved_and_rated(f"r{i}", "roads", s)) for i, s in enumerate(scores)]
    models += [project(resolved_and_rated(f"p{i}", "parks", s)) for i, s in enumerate([1, 2])]
    models.append(project(handled("unrated", "parks")))
    rows = [only_statistics_fields(m) for m in models]  # what the store hands over
    figures = statistics(rows)
    roads, parks = figures.by_department["roads"], figures.by_department["parks"]
    assert (roads.ratings, roads.rating_mean) == (6, round(sum(scores) / 6, 2))
    assert (parks.ratings, parks.rating_mean) == (2, 1.5)
    shown = suppressed(figures, 5)
    assert (shown.by_department["roads"].ratings, shown.by_department["roads"].rating_mean) == (
        6,
        3.83,
    )
    assert shown.by_department["parks"].ratings is None
    assert shown.by_department["parks"].rating_mean is None


async def test_of_the_commands_tracker_keeps_only_valid_corrections() -> None:
    """Other commands, and anything invalid there, are routing's to report or dead-letter:
    tracker passes over them, counted, and dead-letters nothing of that topic."""
    async with running() as tracker:
        ingest = ingest_of(tracker)
        commands = topic_name(tracker.runtime.settings.kafka, topics.COMMANDS)
        lifecycle = topic_name(tracker.runtime.settings.kafka, topics.LIFECYCLE)
        command, changes = corrected()
        others = [
            StartSiteCheck(complaint_id="c1", actor="roads"),
            WithdrawComplaint(complaint_id="c1", actor="resident"),
        ]
        records = [
            Record(topic=commands, value=c.model_dump_json().encode()) for c in [command, *others]
        ]
        records += [
            Record(topic=commands, value=b"not json"),
            Record(topic=commands, value=b'{"action": "correct", "complaint_id": "c1"}'),
        ]
        records += [
            Record(topic=lifecycle, value=e.model_dump_json().encode())
            for e in handled("c1")[1:] + changes
        ]
        await tracker.deliver(filed("c1"))
        await ingest.handle(records)
        assert tracker.dead_letters == []
        assert ingest.metrics.commands_passed._value.get() == 4
        model = await tracker.store.read_model("c1")
        assert model is not None
        assert model.title == "가로등이 꺼져 있어요"
        assert model.resident is not None
        assert model.resident.address == "인천 서구 청라대로 99"
