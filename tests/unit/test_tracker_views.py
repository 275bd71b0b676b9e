"""What leaves tracker: who sees personal data, pages, and the live timeline's wire format."""

import json
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from tests.unit.test_tracker_projection import story
from tracker.projection import ReadModel, project
from tracker.sse import KEEP_ALIVE, StreamTiming, TimelineHub, last_event_id, timeline_stream
from tracker.view import (
    ComplaintSummary,
    ComplaintView,
    DepartmentComplaintView,
    DepartmentView,
    QueueItem,
    SearchHit,
    TimelineEntry,
    excerpt,
    page,
)

PERSONAL = ("홍길동", "010-1234-5678", "청라커낼로")


def test_only_the_department_view_carries_the_residents_contact() -> None:
    model = project(story("c-1"))

    department = DepartmentComplaintView.model_validate(model, from_attributes=True)
    public = ComplaintView.model_validate(model, from_attributes=True).model_dump_json()

    assert department.resident.model_dump() == {
        "name": "홍길동",
        "phone": "010-1234-5678",
        "email": None,
        "address": "인천 서구 청라커낼로 100",
    }
    assert department.body == "청라1동 주민센터 앞 가로등이 일주일째 꺼져 있습니다."
    assert department.auto_routed is True
    assert all(p not in public for p in PERSONAL)
    assert '"홍*동"' in public


@pytest.mark.parametrize("view", [ComplaintSummary, QueueItem, SearchHit])
def test_lists_never_carry_personal_data_even_when_handed_a_whole_model(
    view: type[BaseModel],
) -> None:
    model = project(story("c-1"))

    text = view.model_validate(model, from_attributes=True).model_dump_json()

    assert all(p not in text for p in PERSONAL)
    assert "c-1" in text


def test_an_excerpt_is_short_and_masks_phone_numbers() -> None:
    body = "연락은 010-9876-5432 또는 01098765432로 주세요. " + "가" * 300

    text = excerpt(body)

    assert "9876" not in text
    assert text.startswith("연락은 010-****-5432 또는 010-****-5432로")
    assert len(text) <= 160
    assert excerpt(None) == ""


def test_pages_say_where_the_next_one_starts() -> None:
    item = DepartmentView(code="roads")

    assert page([item, item], 5, limit=2, offset=0)["next_offset"] == 2
    assert page([item], 5, limit=2, offset=4)["next_offset"] is None
    assert page([], 5, limit=2, offset=10)["next_offset"] is None


@pytest.mark.parametrize(
    ("header", "after"), [(None, 0), ("3", 3), ("junk", 0), ("-2", 0), ("", 0)]
)
def test_last_event_id_resumes_after_a_sequence(header: str | None, after: int) -> None:
    assert last_event_id(header) == after


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def collect(stream: AsyncIterator[str], count: int) -> list[str]:
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == count:
            break
    return chunks


def events_of(chunks: list[str]) -> list[dict[str, object]]:
    found = []
    for chunk in chunks:
        fields = dict(line.split(": ", 1) for line in chunk.strip().splitlines())
        if fields.get("event") == "timeline":
            found.append({"id": fields["id"], **json.loads(fields["data"])})
    return found


def timeline(model: ReadModel) -> list[TimelineEntry]:
    return [TimelineEntry.model_validate(entry, from_attributes=True) for entry in model.timeline]


async def test_the_stream_sends_what_is_stored_then_each_new_entry_once() -> None:
    full = timeline(project(story("c-1")))
    snapshots: list[list[TimelineEntry] | None] = [
        None,  # not visible yet: nothing sent, no error
        full[:2],
        full[:2],
        full,
    ]
    clock = FakeClock()

    async def read() -> list[TimelineEntry] | None:
        return snapshots.pop(0) if len(snapshots) > 1 else snapshots[0]

    async def connected() -> bool:
        return False

    chunks = await collect(
        timeline_stream(
            read,
            timing=StreamTiming(poll_seconds=0.5, keepalive_seconds=60),
            disconnected=connected,
            sleep=clock.sleep,
            clock=clock,
        ),
        5,
    )

    assert chunks[0] == "retry: 2000\n\n"
    sent = events_of(chunks)
    assert [e["sequence"] for e in sent] == [1, 2, 3, 4]
    assert [e["id"] for e in sent] == ["1", "2", "3", "4"]
    assert sent[3]["state"] == "site_check"
    assert sent[3]["note"] == "내일 오전 현장 확인 예정"
    assert "handler_id" not in chunks[3]


async def test_a_quiet_stream_sends_keep_alives_and_stops_when_the_client_leaves() -> None:
    entries = timeline(project(story("c-1")))
    clock = FakeClock()
    polls = 0

    async def read() -> list[TimelineEntry] | None:
        nonlocal polls
        polls += 1
        return entries

    async def disconnected() -> bool:
        return clock.now >= 10

    chunks = [
        chunk
        async for chunk in timeline_stream(
            read,
            timing=StreamTiming(poll_seconds=0.5, keepalive_seconds=3),
            after=2,
            disconnected=disconnected,
            sleep=clock.sleep,
            clock=clock,
        )
    ]

    assert [e["sequence"] for e in events_of(chunks)] == [3, 4]  # resumed after 2
    assert chunks.count(KEEP_ALIVE) == 3  # at 3, 6 and 9 seconds
    assert polls == 20  # and none after the client left


def ended(entries: list[TimelineEntry], state: str) -> list[TimelineEntry]:
    last = entries[-1].model_dump()
    return [*entries, TimelineEntry.model_validate(last | {"sequence": 5, "state": state})]


async def test_a_stream_ends_when_the_complaint_reaches_a_state_nothing_leaves() -> None:
    entries = ended(timeline(project(story("c-1"))), "withdrawn")
    clock = FakeClock()

    async def read() -> list[TimelineEntry] | None:
        return entries

    async def connected() -> bool:
        return False

    chunks = [
        chunk
        async for chunk in timeline_stream(
            read,
            timing=StreamTiming(poll_seconds=0.5, keepalive_seconds=60),
            disconnected=connected,
            sleep=clock.sleep,
            clock=clock,
        )
    ]
    assert [e["sequence"] for e in events_of(chunks)] == [1, 2, 3, 4, 5]
    assert chunks[-1] == 'event: end\ndata: {"reason": "final", "state": "withdrawn"}\n\n'


async def test_a_stream_ends_after_its_lifetime_and_resumes_where_it_stopped() -> None:
    entries = timeline(project(story("c-1")))
    clock = FakeClock()

    async def read() -> list[TimelineEntry] | None:
        return entries

    async def connected() -> bool:
        return False

    chunks = [
        chunk
        async for chunk in timeline_stream(
            read,
            timing=StreamTiming(poll_seconds=0.5, keepalive_seconds=60, max_seconds=30),
            disconnected=connected,
            sleep=clock.sleep,
            clock=clock,
        )
    ]
    assert chunks[-1] == 'event: end\ndata: {"reason": "lifetime"}\n\n'
    assert clock.now == 30
    assert len(events_of(chunks)) == 4


async def test_many_followers_of_one_complaint_share_one_poller() -> None:
    entries = timeline(project(story("c-1")))
    reads: list[str] = []

    async def read(complaint_id: str) -> list[TimelineEntry] | None:
        reads.append(complaint_id)
        return entries

    hub = TimelineHub(read, poll_seconds=3600)
    async with hub.follow("c-1") as first, hub.follow("c-1") as second, hub.follow("c-2") as other:
        assert (hub.followers("c-1"), hub.followers("c-2"), hub.total()) == (2, 1, 3)
        assert await first() == entries
        assert await second() == entries
        assert await other() == entries
        assert sorted(reads) == ["c-1", "c-2"]  # one read per complaint, not per follower
    assert hub.total() == 0
