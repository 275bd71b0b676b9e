"""반복민원 and 중복민원 on the read side: the marks in the read model and the department
queue, and the per-department counts (with small cells withheld)."""

from schemas import ComplaintState
from schemas.events import LinkedTo, RepeatedOf
from tests.fakes.tracker import as_stored, projected
from tests.unit.test_tracker_projection import change, filed
from tracker.projection import TrackedEvent, project
from tracker.statistics import StatisticsRow, statistics, suppressed
from tracker.store import read_model_document, stored_fields
from tracker.view import QueueItem

S = ComplaintState
MARK = RepeatedOf(complaint_id="c0", receipt_number="250301-000001", similarity=0.8)
LINK = LinkedTo(complaint_id="c0", receipt_number="250301-000001", similarity=0.6, distance_m=12)


def routed(cid: str, *more: TrackedEvent) -> list[TrackedEvent]:
    return [
        filed(cid),
        change(cid, 1, None, S.RECEIVED, trigger="file"),
        change(cid, 2, S.RECEIVED, S.ASSIGNED, trigger="assign", department="roads"),
        change(cid, 3, S.ASSIGNED, S.HANDLER_ASSIGNED, trigger="assign_handler"),
        *more,
    ]


def marked(cid: str) -> TrackedEvent:
    return change(
        cid, 4, S.HANDLER_ASSIGNED, S.HANDLER_ASSIGNED, trigger="mark_repeated", repeated_of=MARK
    )


def queue_item(events: list[TrackedEvent]) -> QueueItem:
    document = as_stored(read_model_document(project(events)))
    return QueueItem.model_validate(projected(document, stored_fields(QueueItem)))


def test_the_handler_sees_the_mark_in_the_queue_until_dismissed() -> None:
    item = queue_item(routed("c1", marked("c1")))
    assert item.repeated_of is not None
    assert (item.repeated_of.receipt_number, item.repeated_of.similarity) == (
        "250301-000001",
        0.8,
    )
    dismissed = change("c1", 5, S.HANDLER_ASSIGNED, S.HANDLER_ASSIGNED, trigger="dismiss_repeated")
    assert queue_item(routed("c1", marked("c1"), dismissed)).repeated_of is None


def test_a_confirmed_repeat_is_counted_once_concluded() -> None:
    concluded = change(
        "c1",
        5,
        S.HANDLER_ASSIGNED,
        S.CLOSED,
        trigger="conclude_repeated",
        repeated_of=MARK.model_copy(update={"answer": "수리 완료"}),
        actor="roads",
    )
    model = project(routed("c1", marked("c1"), concluded))
    assert (model.repeated, model.state) == (True, S.CLOSED)
    assert project(routed("c2", marked("c2"))).repeated is False


def test_a_link_shows_until_unlinked() -> None:
    link = change("c1", 4, S.HANDLER_ASSIGNED, S.HANDLER_ASSIGNED, trigger="link", linked_to=LINK)
    item = queue_item(routed("c1", link))
    assert item.linked_to is not None
    assert item.linked_to.distance_m == 12
    unlink = change("c1", 5, S.HANDLER_ASSIGNED, S.HANDLER_ASSIGNED, trigger="unlink")
    assert queue_item(routed("c1", link, unlink)).linked_to is None


def test_repeated_and_linked_complaints_are_counted_per_department_and_small_cells_withheld() -> (
    None
):
    concluded = [
        change(
            f"r{n}",
            5,
            S.HANDLER_ASSIGNED,
            S.CLOSED,
            trigger="conclude_repeated",
            repeated_of=MARK,
            actor="roads",
        )
        for n in range(3)
    ]
    linked = change("l0", 4, S.HANDLER_ASSIGNED, S.HANDLER_ASSIGNED, trigger="link", linked_to=LINK)
    models = [project(routed(f"r{n}", marked(f"r{n}"), concluded[n])) for n in range(3)]
    models += [project(routed("l0", linked)), project(routed("n0"))]
    rows = [
        StatisticsRow.model_validate(
            projected(as_stored(read_model_document(m)), stored_fields(StatisticsRow))
        )
        for m in models
    ]
    figures = statistics(rows)
    roads = figures.by_department["roads"]
    assert (roads.total, roads.repeated, roads.linked) == (5, 3, 1)
    withheld = suppressed(figures, 3).by_department["roads"]
    assert (withheld.repeated, withheld.linked) == (3, None)
