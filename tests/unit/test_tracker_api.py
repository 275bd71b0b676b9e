"""The resident's view over HTTP, fed through the real batch handler, on the in-memory
broker and the in-memory store: no lifespan, no sockets."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from schemas import ComplaintState, DeadLetter, topics
from schemas.tokens import hash_token
from services.broker import topic_name
from services.runtime import Clock, Runtime
from services.settings import KafkaSettings
from tests.conftest import FAST_RETRY
from tests.fakes.tracker import InMemoryTrackerStore
from tests.unit.test_tracker_projection import change, filed, story
from tracker.app import create_app
from tracker.handlers import PublishDeadLetter
from tracker.projection import TrackedEvent
from tracker.settings import TrackerSettings

TOKEN = "the-residents-tracking-token"
NOT_FOUND = {
    "error": {"code": "not_found", "message": "No complaint matches this id and tracking token."}
}


def settings(**overrides: Any) -> TrackerSettings:
    """Settings that reach nothing: the broker is the in-memory one, the store a fake."""
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9", create_topics=False)
    return TrackerSettings(kafka=kafka, retry=FAST_RETRY, http_port=0, **overrides)


@dataclass
class Tracker:
    runtime: Runtime
    store: InMemoryTrackerStore
    http: httpx.AsyncClient
    dead_letters: list[DeadLetter]

    async def deliver(self, *events: TrackedEvent) -> None:
        for event in events:
            await self.runtime.publish(topics.OF_EVENT[event.event_type], event)

    async def view(self, complaint_id: str, token: str | None = None) -> httpx.Response:
        """A resident's view, with the tracking token in its header (never in the URL)."""
        headers = {"X-Tracking-Token": token} if token is not None else {}
        return await self.http.get(f"/v1/complaints/{complaint_id}", headers=headers)

    async def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        headers = {"X-Api-Key": key} if key else {}
        return await self.http.get(path, params=params, headers=headers)

    def sample(self, name: str, **labels: str) -> float:
        return self.runtime.registry.get_sample_value(name, labels) or 0.0

    def stored(self, event_type: str) -> float:
        return self.sample("sotong_tracker_events_stored_total", event_type=event_type)


@asynccontextmanager
async def running(
    *, clock: Clock | None = None, dead_letter: PublishDeadLetter | None = None, **overrides: Any
) -> AsyncIterator[Tracker]:
    """The app on the in-memory broker and store; dead letters collected from their topic
    (unless ``dead_letter`` takes them first)."""
    config = settings(**overrides)
    runtime = Runtime.build("tracker", config)
    store = InMemoryTrackerStore()
    app = create_app(config, runtime=runtime, store=store, clock=clock, dead_letter=dead_letter)
    dead_letters: list[DeadLetter] = []

    @runtime.broker.subscriber(topic_name(config.kafka, topics.DEAD_LETTER))
    async def on_dead_letter(letter: DeadLetter) -> None:
        dead_letters.append(letter)

    async with (
        TestKafkaBroker(runtime.broker),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://tracker") as http,
    ):
        yield Tracker(runtime, store, http, dead_letters)


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    async with running() as tracker:
        yield tracker


async def test_the_right_token_shows_the_masked_complaint_and_its_timeline(
    tracker: Tracker,
) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*reversed(events))

    response = await tracker.view("c-1", token=TOKEN)

    assert response.status_code == 200
    view = response.json()
    assert view["complaint_id"] == "c-1"
    assert view["receipt_number"] == "250303-000042"
    assert view["state"] == "site_check"
    assert view["department"] == {"code": "roads", "name": "도로과"}
    assert view["handler"] == {"name": "김담당", "office_phone": "032-560-1234"}
    assert view["resident"] == {"name": "홍*동"}
    assert view["title"] == "가로등 고장"
    assert [entry["sequence"] for entry in view["timeline"]] == [1, 2, 3, 4]
    assert [entry["state"] for entry in view["timeline"]] == [
        "received",
        "assigned",
        "handler_assigned",
        "site_check",
    ]
    assert view["timeline"][3]["note"] == "내일 오전 현장 확인 예정"
    assert [n["outcome"] for n in view["notifications"]] == ["sent", "failed"]
    assert view["notifications"][0]["recipient"] == "010-****-5678"
    assert view["rejections"][0]["reason_ko"] == "배정 상태에서는 처리 완료할 수 없습니다."


async def test_the_view_never_carries_personal_data_or_the_token_hash(tracker: Tracker) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events)

    text = (await tracker.view("c-1", token=TOKEN)).text

    for secret in ("홍길동", "010-1234-5678", "01012345678", "청라커낼로", hash_token(TOKEN)):
        assert secret not in text
    assert "일주일째" not in text  # the body stays for department views


@pytest.mark.parametrize(
    ("complaint_id", "token", "in_url"),
    [
        pytest.param("c-1", "a-wrong-token", False, id="wrong-token"),
        pytest.param("c-1", None, False, id="no-token"),
        pytest.param("c-1", "", False, id="empty-token"),
        pytest.param("no-such-complaint", TOKEN, False, id="unknown-id"),
        pytest.param("c-unfiled", TOKEN, False, id="not-filed-yet"),
        # the right token in the URL, where proxies, history and Referer keep it: refused
        pytest.param("c-1", TOKEN, True, id="token-in-the-url"),
    ],
)
async def test_every_failure_is_the_same_404(
    tracker: Tracker, complaint_id: str, token: str | None, in_url: bool
) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events, *story("c-unfiled")[1:])

    if in_url:
        response = await tracker.http.get(f"/v1/complaints/{complaint_id}?token={token}")
    else:
        response = await tracker.view(complaint_id, token)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


async def test_redelivery_is_counted_and_changes_nothing(tracker: Tracker) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events)
    before = (await tracker.view("c-1", token=TOKEN)).json()

    await tracker.deliver(*events[:3])

    assert (await tracker.view("c-1", token=TOKEN)).json() == before
    assert tracker.stored("complaint.filed") == 1
    assert tracker.stored("complaint.status_changed") == 4
    filed_topic = topic_name(tracker.runtime.settings.kafka, topics.FILED)
    duplicates = tracker.sample(
        "sotong_duplicate_messages_total", consumer="tracker", topic=filed_topic
    )
    assert duplicates == 1


async def test_an_invalid_message_is_dead_lettered_and_nothing_is_stored(
    tracker: Tracker,
) -> None:
    lifecycle = topic_name(tracker.runtime.settings.kafka, topics.LIFECYCLE)
    body = {"event_type": "complaint.status_changed", "complaint_id": "c-9", "sequence": 0}

    await tracker.runtime.broker.publish(json.dumps(body).encode(), topic=lifecycle, key=b"c-9")

    assert len(tracker.dead_letters) == 1
    letter = tracker.dead_letters[0]
    assert letter.original_topic == lifecycle
    assert letter.consumer == "tracker"
    assert not letter.retryable
    assert {"sequence", "to_state"} <= {error.field.split(".")[-1] for error in letter.errors}
    assert tracker.stored("complaint.status_changed") == 0
    assert tracker.store.events == {}


async def test_a_rival_sequence_is_dead_lettered_and_the_history_stands(
    tracker: Tracker,
) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events)
    rival = change("c-1", 2, ComplaintState.RECEIVED, ComplaintState.REJECTED).model_copy(
        update={"event_id": "rival-2"}
    )

    await tracker.deliver(rival)

    view = (await tracker.view("c-1", token=TOKEN)).json()
    assert view["state"] == "site_check"
    assert [letter.reason.split(":")[0] for letter in tracker.dead_letters] == ["SequenceConflict"]


async def test_the_tracking_token_travels_in_a_header_and_stays_out_of_urls(
    tracker: Tracker,
) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events)

    by_header = await tracker.http.get("/v1/complaints/c-1", headers={"X-Tracking-Token": TOKEN})
    wrong = await tracker.http.get("/v1/complaints/c-1", headers={"X-Tracking-Token": "nope"})

    assert by_header.status_code == 200
    assert by_header.json()["complaint_id"] == "c-1"
    assert by_header.headers["referrer-policy"] == "no-referrer"
    assert by_header.headers["cache-control"] == "no-store"
    assert wrong.status_code == 404
