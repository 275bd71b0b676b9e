"""intake's handlers in memory: the HTTP API through ASGI (no lifespan, no sockets) with the
fake store, a recording publish and a fixed clock; the Kafka subscriber on FastStream's
in-memory broker."""

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from intake import handlers
from intake.app import create_app
from intake.filing import file_submission
from intake.handlers import Intake, subscribe
from intake.settings import IntakeSettings
from intake.store import RELAY_GRACE, ChannelRef, FiledRecord
from schemas import ComplaintFiled, ComplaintSubmitted, DeadLetter, topics
from schemas.commands import COMMAND_ADAPTER, ComplaintCommand, DepartmentAction
from schemas.tokens import hash_token
from services.broker import KeyedEvent, topic_name
from services.runtime import Runtime
from tests.fakes.intake import (
    InMemoryConfirmedPhones,
    InMemoryContactCodes,
    InMemoryIdempotencyStore,
    InMemorySubmissionStore,
    RecordingPublish,
    insert,
)

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # already 2026-12-02 in Seoul
ROADS_KEY = "roads-department-key"
CID = "9b2f1c4e-7d3a-4e8b-9c61-2a5f0e8d4b17"  # a complaint id as intake issues them: a UUID4
SUBMISSION = {
    "channel": "web",
    "channel_ref": "web-1",
    "title": "가로등 고장",
    "body": "석남동 골목 가로등이 사흘째 꺼져 있어요",
    "resident": {"name": "홍길동", "phone": "010-1234-5678"},
}


def clock() -> datetime:
    return NOW


def settings() -> IntakeSettings:
    return IntakeSettings(api_keys={"roads": SecretStr(ROADS_KEY)})


@dataclass
class Harness:
    http: httpx.AsyncClient
    store: InMemorySubmissionStore
    publish: RecordingPublish

    async def file(self, **changes: Any) -> httpx.Response:
        return await self.http.post("/v1/complaints", json=SUBMISSION | changes)

    def filed(self) -> list[ComplaintFiled]:
        events = self.publish.on(topics.FILED)
        assert all(isinstance(e, ComplaintFiled) for e in events)
        return [e for e in events if isinstance(e, ComplaintFiled)]

    def commands(self) -> list[ComplaintCommand]:
        sent = self.publish.on(topics.COMMANDS)
        return [COMMAND_ADAPTER.validate_python(e) for e in sent]


@pytest.fixture
def store() -> InMemorySubmissionStore:
    return InMemorySubmissionStore()


@pytest.fixture
async def intake(store: InMemorySubmissionStore) -> AsyncIterator[Harness]:
    publish = RecordingPublish()
    app = create_app(
        settings(),
        store=store,
        publish=publish,
        clock=clock,
        idempotency_store=InMemoryIdempotencyStore(),
        contact_store=InMemoryContactCodes(),
        recovery_store=InMemoryContactCodes(),
        confirmed_phones=InMemoryConfirmedPhones(),
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        yield Harness(http, store, publish)


def error_fields(response: httpx.Response) -> set[str]:
    return {f["field"] for f in response.json()["error"].get("fields", [])}


# Filing


async def test_filing_answers_201_and_publishes_one_complaint_filed(intake: Harness) -> None:
    response = await intake.file()

    assert response.status_code == 201
    body = response.json()
    assert body["duplicate"] is False
    assert body["receipt_number"].startswith("261202-")
    assert body["tracking_token"] != body["resident_token"]
    # issue 11 §11: an anonymous web filing with a phone also has a code sent to it
    [sent, code] = intake.publish.sent
    assert sent.topic == topics.FILED
    assert code.topic == topics.CONTACT_CODES
    [event] = intake.filed()
    assert sent.correlation_id == event.event_id
    assert event.complaint_id == body["complaint_id"]
    assert event.receipt_number == body["receipt_number"]
    assert event.occurred_at == NOW
    assert event.tracking_token_hash == hash_token(body["tracking_token"])
    assert event.resident_token_hash == hash_token(body["resident_token"])
    assert (event.channel, event.channel_ref, event.body) == ("web", "web-1", SUBMISSION["body"])
    assert await intake.store.unpublished(older_than=NOW + timedelta(days=1)) == []
    assert await intake.store.known_residents({body["resident_token"]}) == {body["resident_token"]}


async def test_the_same_channel_ref_again_answers_200_with_the_same_complaint_and_no_token(
    intake: Harness,
) -> None:
    """Issue 11 §1: a duplicate names the complaint, never its tokens (anyone can set a
    channel and guess a sequential channel_ref)."""
    first = (await intake.file()).json()

    again = await intake.file(body="다시 보냅니다")

    assert again.status_code == 200
    assert again.json() == {
        "complaint_id": first["complaint_id"],
        "receipt_number": first["receipt_number"],
        "duplicate": True,
    }
    assert len(intake.publish.on(topics.FILED)) == 1
    assert len(intake.publish.on(topics.CONTACT_CODES)) == 1  # the first filing's code only


async def test_a_duplicate_of_a_complaint_a_crash_left_unpublished_publishes_it(
    intake: Harness,
) -> None:
    left = file_submission(
        ComplaintSubmitted.model_validate(SUBMISSION),
        complaint_id="c-left",
        receipt_number="261202-000007",
        tracking_token="tracking-token-of-c-left",
        resident_token="resident-token-of-c-left",
        filed_at=NOW - timedelta(seconds=1),
    )
    await insert(intake.store, left, "tracking-token-of-c-left", "resident-token-of-c-left")

    response = await intake.file()

    assert response.status_code == 200
    assert response.json()["complaint_id"] == "c-left"
    assert [e.event_id for e in intake.filed()] == [left.event_id]
    assert await intake.store.unpublished(older_than=NOW + timedelta(days=1)) == []


async def test_a_bad_field_is_refused_with_422_naming_it(intake: Harness) -> None:
    response = await intake.file(body="", channel="fax")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert error_fields(response) == {"body", "channel"}
    assert intake.publish.sent == []
    assert intake.store.rows == {}


async def test_a_resident_token_intake_never_issued_is_refused_with_422(intake: Harness) -> None:
    response = await intake.file(resident_token="not-a-token-intake-issued")

    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": "resident_token: not issued by an earlier filing",
    }
    assert intake.publish.sent == []
    assert intake.store.rows == {}


async def test_a_returning_resident_keeps_their_resident_token(intake: Harness) -> None:
    first = (await intake.file()).json()

    second = await intake.file(channel_ref="web-2", resident_token=first["resident_token"])

    assert second.status_code == 201
    assert second.json()["resident_token"] == first["resident_token"]
    assert second.json()["complaint_id"] != first["complaint_id"]
    hashes = {e.resident_token_hash for e in intake.filed()}
    assert hashes == {hash_token(first["resident_token"])}


async def test_a_receipt_number_already_taken_is_drawn_again(
    intake: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: Iterator[str] = iter(["261202-000001", "261202-000001", "261202-000002"])
    monkeypatch.setattr(handlers, "new_receipt_number", lambda _: next(drawn))

    first = await intake.file(channel_ref="web-1")
    second = await intake.file(channel_ref="web-2")

    assert first.json()["receipt_number"] == "261202-000001"
    assert second.json()["receipt_number"] == "261202-000002"
    assert second.status_code == 201


class LateStore(InMemorySubmissionStore):
    """A concurrent request files the same (channel, channel_ref) between our look-up and
    our insert."""

    def __init__(self, winner: ComplaintFiled) -> None:
        super().__init__()
        self.winner = winner
        self.looked = False

    async def find_by_channel_refs(
        self, refs: Collection[ChannelRef]
    ) -> dict[ChannelRef, FiledRecord]:
        if not self.looked:
            self.looked = True
            await insert(self, self.winner, "winners-tracking-token", "winners-resident-token")
            return {}
        return await super().find_by_channel_refs(refs)


async def test_losing_the_race_for_a_channel_ref_answers_the_winners_complaint() -> None:
    winner = file_submission(
        ComplaintSubmitted.model_validate(SUBMISSION),
        complaint_id="c-winner",
        receipt_number="261202-000009",
        tracking_token="winners-tracking-token",
        resident_token="winners-resident-token",
        filed_at=NOW,
    )
    store = LateStore(winner)
    publish = RecordingPublish()
    app = create_app(
        settings(),
        store=store,
        publish=publish,
        clock=clock,
        contact_store=InMemoryContactCodes(),
        recovery_store=InMemoryContactCodes(),
        confirmed_phones=InMemoryConfirmedPhones(),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://i") as http:
        response = await http.post("/v1/complaints", json=SUBMISSION)

    assert response.status_code == 200
    assert response.json()["complaint_id"] == "c-winner"
    assert "tracking_token" not in response.json()  # issue 11 §1: a duplicate gets no token
    assert [e.complaint_id for e in publish.on(topics.FILED)] == ["c-winner"]
    assert list(store.rows) == ["c-winner"]


async def test_filings_and_duplicates_are_counted_by_channel(intake: Harness) -> None:
    await intake.file()
    await intake.file()
    await intake.file(channel="kakao", channel_ref="k-1")

    metrics = (await intake.http.get("/metrics")).text

    assert 'sotong_complaints_filed_total{channel="web"} 1.0' in metrics
    assert 'sotong_complaints_filed_total{channel="kakao"} 1.0' in metrics
    assert 'sotong_submissions_duplicate_total{channel="web"} 1.0' in metrics


@pytest.mark.parametrize(
    "raw",
    [
        b'{"channel": "web", "body": }',
        b'{"channel": "web", "body": "\xea\xb0\x80\xeb\xa1\x9c\xeb\x93\xb1",}',
        b"channel=web&body=x",
    ],
)
async def test_malformed_json_is_refused_with_its_position_not_as_a_field(
    intake: Harness, raw: bytes
) -> None:
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        position = exc.pos

    response = await intake.http.post(
        "/v1/complaints", content=raw, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"] == f"malformed JSON at position {position}"
    [field] = error["fields"]
    assert field["field"] == "(body)"
    assert field["reason"].startswith(f"malformed JSON at position {position}: ")
    assert intake.publish.sent == []


async def test_a_json_body_without_a_content_type_is_read_as_json(intake: Harness) -> None:
    response = await intake.http.post("/v1/complaints", content=json.dumps(SUBMISSION).encode())

    assert response.status_code == 201
    assert [e.channel_ref for e in intake.filed()] == ["web-1"]


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain; charset=utf-8"]
)
async def test_a_body_declared_as_something_else_than_json_is_refused_with_415(
    intake: Harness, content_type: str
) -> None:
    response = await intake.http.post(
        "/v1/complaints",
        content=json.dumps(SUBMISSION).encode(),
        headers={"Content-Type": content_type},
    )

    assert response.status_code == 415
    assert response.json() == {
        "error": {
            "code": "unsupported_media_type",
            "message": "Content-Type must be application/json",
        }
    }
    assert intake.publish.sent == []


async def test_a_missing_body_is_refused_saying_so(intake: Harness) -> None:
    response = await intake.http.post("/v1/complaints")

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [
        {"field": "(body)", "reason": "a JSON body is required"}
    ]


# Department commands


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "not-a-key"}, {"X-Api-Key": ""}])
async def test_a_command_needs_a_valid_api_key(intake: Harness, headers: dict[str, str]) -> None:
    response = await intake.http.post(
        f"/v1/complaints/{CID}/commands", json={"action": "start_site_check"}, headers=headers
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert intake.publish.sent == []


async def test_a_command_is_published_as_the_department_the_key_belongs_to(
    intake: Harness,
) -> None:
    response = await intake.http.post(
        f"/v1/complaints/{CID}/commands",
        json={"action": "resolve", "note": "가로등을 교체했습니다"},
        headers={"X-Api-Key": ROADS_KEY},
    )

    assert response.status_code == 202
    [sent] = intake.publish.sent
    assert sent.topic == topics.COMMANDS
    [command] = intake.commands()
    assert (command.complaint_id, command.actor, command.action) == (CID, "roads", "resolve")
    assert command.note == "가로등을 교체했습니다"
    assert command.occurred_at == NOW
    assert sent.correlation_id == command.event_id
    assert response.json() == {
        "command_id": command.event_id,
        "complaint_id": CID,
        "action": "resolve",
    }


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"action": "transfer", "note": "도로과 소관"}, "to_department"),
        ({"action": "demolish"}, "action"),
        ({"action": "resolve", "actor": "parks"}, "actor"),
    ],
)
async def test_a_command_that_does_not_fit_its_action_is_422_naming_the_field(
    intake: Harness, body: dict[str, str], named: str
) -> None:
    response = await intake.http.post(
        f"/v1/complaints/{CID}/commands", json=body, headers={"X-Api-Key": ROADS_KEY}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert named in response.json()["error"]["message"]
    assert intake.publish.sent == []


NEW_DUE = "2026-12-20T18:00:00+09:00"
COMPLETE: dict[DepartmentAction, dict[str, Any]] = {
    DepartmentAction.START_SITE_CHECK: {},
    DepartmentAction.START_REVIEW: {"note": "서류 검토"},
    DepartmentAction.RESOLVE: {"note": "가로등을 교체했습니다"},
    DepartmentAction.TRANSFER: {"note": "공원 안 가로등", "to_department": "parks"},
    DepartmentAction.REQUEST_INFO: {"note": "정확한 위치를 알려 주세요"},
    DepartmentAction.EXTEND: {"note": "부품 수급", "new_due_at": NEW_DUE},
    DepartmentAction.REJECT: {"note": "사유 불충분", "remedy": "120 콜센터에 문의"},
    DepartmentAction.REASSIGN: {"handler_id": "roads-2"},
    DepartmentAction.CLOSE: {},
    DepartmentAction.CONCLUDE_REPEATED: {},
    DepartmentAction.DISMISS_REPEATED: {"note": "다른 장소"},
    DepartmentAction.UNLINK: {"note": "다른 가로등"},
}
"""Each action with what it needs: the door lets all of them through."""


@pytest.mark.parametrize("action", list(DepartmentAction))
async def test_each_action_with_what_it_needs_is_accepted_and_published_as_is(
    intake: Harness, action: DepartmentAction
) -> None:
    body = {"action": action.value} | COMPLETE[action]

    response = await intake.http.post(
        f"/v1/complaints/{CID}/commands", json=body, headers={"X-Api-Key": ROADS_KEY}
    )

    assert response.status_code == 202, response.text
    [command] = intake.commands()
    published = command.model_dump()
    assert published["action"] == action
    for name, value in COMPLETE[action].items():
        sent = datetime.fromisoformat(value) if name == "new_due_at" else value
        assert published[name] == sent, name
    assert (command.complaint_id, command.actor) == (CID, "roads")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"action": "resolve"}, "note"),
        ({"action": "resolve", "note": "   "}, "note"),
        ({"action": "transfer", "to_department": "parks"}, "note"),
        ({"action": "transfer", "note": "빵집 소관", "to_department": "bakery"}, "to_department"),
        ({"action": "transfer", "note": "소관 아님", "to_department": " "}, "to_department"),
        ({"action": "request_info"}, "note"),
        ({"action": "extend", "note": "부품 수급"}, "new_due_at"),
        ({"action": "extend", "new_due_at": NEW_DUE}, "note"),
        ({"action": "extend", "note": "부품", "new_due_at": "2026-12-20T18:00:00"}, "new_due_at"),
        ({"action": "reject", "remedy": "행정심판 청구"}, "note"),
        ({"note": "무엇을 할지 빠졌습니다"}, "action"),
        ({"action": "resolve", "note": "완료", "to_department": "parks"}, "to_department"),
    ],
)
async def test_what_an_action_needs_is_refused_at_the_door_naming_the_field(
    intake: Harness, body: dict[str, str], named: str
) -> None:
    response = await intake.http.post(
        f"/v1/complaints/{CID}/commands", json=body, headers={"X-Api-Key": ROADS_KEY}
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error_fields(response) == {named}
    assert error["message"].startswith(f"{named}: ")
    assert intake.publish.sent == []


async def test_an_unknown_action_is_refused_with_the_actions_there_are(intake: Harness) -> None:
    response = await intake.http.post(
        f"/v1/complaints/{CID}/commands",
        json={"action": "demolish"},
        headers={"X-Api-Key": ROADS_KEY},
    )

    assert response.status_code == 422
    [field] = response.json()["error"]["fields"]
    assert field["field"] == "action"
    assert field["reason"] == "'demolish' is not one of: " + ", ".join(DepartmentAction)


@pytest.mark.parametrize(
    "complaint_id",
    [
        "c-1",
        "no-such-complaint",
        "9b2f1c4e7d3a",
        str(uuid.uuid1()),  # a UUID, but not the version intake issues
    ],
)
@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("commands", {"action": "start_site_check"}),
        ("resident-actions", {"action": "withdraw", "token": "some-tracking-token"}),
    ],
)
async def test_a_malformed_complaint_id_is_refused_with_422_naming_it(
    intake: Harness, complaint_id: str, route: str, body: dict[str, str]
) -> None:
    response = await intake.http.post(
        f"/v1/complaints/{complaint_id}/{route}", json=body, headers={"X-Api-Key": ROADS_KEY}
    )

    assert response.status_code == 422
    assert error_fields(response) == {"path.complaint_id"}
    assert intake.publish.sent == []


async def test_a_complaint_id_in_capitals_is_published_as_intake_issued_it(
    intake: Harness,
) -> None:
    response = await intake.http.post(
        f"/v1/complaints/{CID.upper()}/commands",
        json={"action": "start_site_check"},
        headers={"X-Api-Key": ROADS_KEY},
    )

    assert response.status_code == 202
    assert [c.complaint_id for c in intake.commands()] == [CID]
    assert response.json()["complaint_id"] == CID


# Resident actions


async def test_a_resident_action_with_a_wrong_token_is_404(intake: Harness) -> None:
    filed = (await intake.file()).json()
    intake.publish.sent.clear()

    wrong = await intake.http.post(
        f"/v1/complaints/{filed['complaint_id']}/resident-actions",
        json={"action": "withdraw", "token": "not-the-tracking-token"},
    )
    unknown = await intake.http.post(
        f"/v1/complaints/{uuid.uuid4()}/resident-actions",
        json={"action": "withdraw", "token": filed["tracking_token"]},
    )

    assert (wrong.status_code, unknown.status_code) == (404, 404)
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "not_found"
    assert intake.publish.sent == []


async def test_a_reopen_needs_the_reason_at_the_door(intake: Harness) -> None:
    filed = (await intake.file()).json()
    intake.publish.sent.clear()

    response = await intake.http.post(
        f"/v1/complaints/{filed['complaint_id']}/resident-actions",
        json={"action": "reopen", "token": filed["tracking_token"]},
    )

    assert response.status_code == 422
    assert error_fields(response) == {"note"}
    assert intake.publish.sent == []


async def test_a_resident_action_with_the_tracking_token_is_published_as_the_resident(
    intake: Harness,
) -> None:
    filed = (await intake.file()).json()
    intake.publish.sent.clear()

    response = await intake.http.post(
        f"/v1/complaints/{filed['complaint_id']}/resident-actions",
        json={"action": "reopen", "token": filed["tracking_token"], "note": "아직 꺼져 있어요"},
    )

    assert response.status_code == 202
    [sent] = intake.publish.sent
    assert sent.topic == topics.COMMANDS
    [command] = intake.commands()
    assert (command.complaint_id, command.actor, command.action) == (
        filed["complaint_id"],
        "resident",
        "reopen",
    )
    assert filed["tracking_token"] not in sent.event.model_dump_json()


# The outbox relay


async def test_the_relay_publishes_only_what_was_left_unpublished_past_the_grace_window(
    store: InMemorySubmissionStore,
) -> None:
    publish = RecordingPublish()
    intake = Intake(store=store, publish=publish, clock=clock, registry=CollectorRegistry())
    submission = ComplaintSubmitted.model_validate(SUBMISSION | {"channel_ref": None})
    for complaint_id, age in (("c-old", RELAY_GRACE * 2), ("c-young", RELAY_GRACE / 2)):
        event = file_submission(
            submission,
            complaint_id=complaint_id,
            receipt_number=f"261202-{complaint_id}",
            tracking_token="t",
            resident_token="r",
            filed_at=NOW - age,
        )
        await insert(store, event, "t", "r")

    await intake.relay()

    assert [e.complaint_id for e in publish.on(topics.FILED)] == ["c-old"]
    assert [r.filed.complaint_id for r in await store.unpublished(older_than=NOW)] == ["c-young"]


class FlakyStore(InMemorySubmissionStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def unpublished(self, *, older_than: datetime, limit: int = 500) -> list[FiledRecord]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database gone for a moment")
        return await super().unpublished(older_than=older_than, limit=limit)


async def test_the_relay_keeps_going_after_a_failed_pass() -> None:
    store = FlakyStore()
    recording = RecordingPublish()
    published = asyncio.Event()

    async def publish(topic: str, event: KeyedEvent, correlation_id: str | None = None) -> None:
        await recording(topic, event, correlation_id)
        published.set()

    intake = Intake(store=store, publish=publish, clock=clock, registry=CollectorRegistry())
    event = file_submission(
        ComplaintSubmitted.model_validate(SUBMISSION),
        complaint_id="c-left",
        receipt_number="261202-000001",
        tracking_token="t",
        resident_token="r",
        filed_at=NOW - RELAY_GRACE * 2,
    )
    await insert(store, event, "t", "r")

    relay = asyncio.create_task(intake.relay_forever(0.001))
    try:
        async with asyncio.timeout(2):
            await published.wait()
    finally:
        relay.cancel()
        with pytest.raises(asyncio.CancelledError):
            await relay

    assert store.failures == 0
    assert [e.complaint_id for e in recording.on(topics.FILED)] == ["c-left"]


# The Kafka subscriber, on FastStream's in-memory broker


@dataclass
class Wire:
    runtime: Runtime
    store: InMemorySubmissionStore
    filed: list[tuple[bytes | None, ComplaintFiled]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    archived: dict[str, bytes] = field(default_factory=dict)

    async def keep(self, letter: DeadLetter, value: bytes) -> None:
        """The dead-letter archive, in memory."""
        self.archived[letter.event_id] = value

    async def submit(self, value: bytes, key: bytes) -> None:
        kafka = self.runtime.settings.kafka
        await self.runtime.broker.publish(
            value, topic=topic_name(kafka, topics.SUBMISSIONS), key=key
        )


@pytest.fixture
async def wire(store: InMemorySubmissionStore) -> AsyncIterator[Wire]:
    """The real broker configuration (dead-letter middleware, CloudEvents publishing) with
    intake's subscriber, kept in memory by TestKafkaBroker."""
    runtime = Runtime.build("intake", settings())
    intake = Intake(store=store, publish=runtime.publish, clock=clock, registry=runtime.registry)
    subscribe(runtime.subscriber, intake, reject=runtime.dead_letters.dead_letter_records)
    wire = Wire(runtime, store)
    runtime.dead_letters.archive = wire.keep
    kafka = runtime.settings.kafka

    @runtime.broker.subscriber(topic_name(kafka, topics.FILED))
    async def on_filed(event: ComplaintFiled, message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple), "not a batch subscriber"
        wire.filed.append((record.key, event))

    @runtime.broker.subscriber(topic_name(kafka, topics.DEAD_LETTER))
    async def on_dead_letter(letter: DeadLetter) -> None:
        wire.dead_letters.append(letter)

    try:
        async with TestKafkaBroker(runtime.broker):
            yield wire
    finally:
        await runtime.mongo.close()


async def test_a_submission_on_kafka_is_filed_and_published_keyed_by_its_complaint_id(
    wire: Wire,
) -> None:
    await wire.submit(json.dumps(SUBMISSION).encode(), key=b"web-1")
    await wire.submit(json.dumps(SUBMISSION).encode(), key=b"web-1")

    [(key, event)] = wire.filed
    assert key == event.complaint_id.encode()
    assert event.occurred_at == NOW
    assert list(wire.store.rows) == [event.complaint_id]
    assert await wire.store.unpublished(older_than=NOW + timedelta(days=1)) == []
    assert wire.dead_letters == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"channel": "web", "title": "no body"}, "body"),
        (SUBMISSION | {"resident_token": "not-a-token-intake-issued"}, "resident_token"),
    ],
)
async def test_a_submission_that_cannot_be_filed_is_dead_lettered_with_the_reason(
    wire: Wire, payload: dict[str, Any], reason: str
) -> None:
    await wire.submit(json.dumps(payload).encode(), key=b"ref")

    [letter] = wire.dead_letters
    assert letter.original_topic == topics.SUBMISSIONS
    assert reason in letter.reason
    assert letter.retryable is False
    assert wire.filed == []
    assert wire.store.rows == {}
    carried = base64.b64decode(letter.original_value_b64)
    assert b"1234-5678" not in carried, "the dead-letter topic carries no phone number"
    has_phone = "resident" in payload
    assert letter.original_masked is has_phone
    assert wire.archived == ({letter.event_id: json.dumps(payload).encode()} if has_phone else {})


async def test_a_batch_of_submissions_is_filed_in_one_group_commit_around_its_poison(
    wire: Wire,
) -> None:
    """The valid records of a batch are filed together, whatever lies between them; each
    record that cannot be filed is dead-lettered alone with its own reason."""
    kafka = wire.runtime.settings.kafka
    good = [SUBMISSION | {"channel_ref": f"web-b{i}"} for i in range(3)]
    await wire.runtime.broker.publish_batch(
        json.dumps(good[0]).encode(),
        b'{"channel": "web", "body": ',
        json.dumps(good[1]).encode(),
        json.dumps(good[2] | {"resident_token": "not-a-token-intake-issued"}).encode(),
        json.dumps({"channel": "web", "title": "no body"}).encode(),
        topic=topic_name(kafka, topics.SUBMISSIONS),
    )

    assert sorted(e.channel_ref or "" for _, e in wire.filed) == ["web-b0", "web-b1"]
    batches = wire.runtime.registry.get_sample_value("sotong_intake_filing_batch_size_count")
    assert batches == 1, "both valid records in one group commit"
    reasons = sorted(letter.reason for letter in wire.dead_letters)
    assert len(reasons) == 3
    assert any("Invalid JSON" in r or "EOF" in r for r in reasons), reasons
    assert any("resident_token" in r for r in reasons)
    no_body = next(letter for letter in wire.dead_letters if "body" in letter.reason)
    assert [(e.field, e.reason) for e in no_body.errors] == [("body", "Field required")]
