"""Idempotency-Key (issue 14 §5) and channel credentials (issue 11 §1) on intake's HTTP API,
in memory: the app through ASGI with the fake stores and a clock the test moves."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from intake.app import create_app
from intake.idempotency import (
    Answer,
    CannotUnseal,
    Claim,
    derived_id,
    fingerprint,
    key_id,
    seal,
    unseal,
)
from intake.settings import IntakeSettings
from schemas import ComplaintFiled, topics
from schemas.commands import COMMAND_ADAPTER
from schemas.tokens import hash_token
from tests.fakes.intake import (
    InMemoryConfirmedPhones,
    InMemoryContactCodes,
    InMemoryIdempotencyStore,
    InMemorySubmissionStore,
    RecordingPublish,
)

START = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
ROADS_KEY = "roads-department-key"
PARKS_KEY = "parks-department-key"
KAKAO_KEY = "kakao-channel-credential"
WEB_KEY = "web-channel-credential"
CID = "9b2f1c4e-7d3a-4e8b-9c61-2a5f0e8d4b17"
FILING = {
    "channel": "web",
    "title": "가로등 고장",
    "body": "석남동 골목 가로등이 사흘째 꺼져 있어요",
    "resident": {"name": "홍길동", "phone": "010-1234-5678"},
}


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    http: httpx.AsyncClient
    store: InMemorySubmissionStore
    keys: InMemoryIdempotencyStore
    publish: RecordingPublish
    clock: Clock

    async def file(
        self, key: str | None = None, api_key: str | None = None, **changes: Any
    ) -> httpx.Response:
        headers = {}
        if key is not None:
            headers["Idempotency-Key"] = key
        if api_key is not None:
            headers["X-Api-Key"] = api_key
        return await self.http.post("/v1/complaints", json=FILING | changes, headers=headers)

    def filed(self) -> list[ComplaintFiled]:
        return [e for e in self.publish.on(topics.FILED) if isinstance(e, ComplaintFiled)]


def settings(**changes: Any) -> IntakeSettings:
    return IntakeSettings(
        api_keys={"roads": SecretStr(ROADS_KEY), "parks": SecretStr(PARKS_KEY)},
        idempotency_ttl_seconds=3600,
        idempotency_lease_seconds=30,
        **changes,
    )


async def harness(idempotency: InMemoryIdempotencyStore, **changes: Any) -> AsyncIterator[Harness]:
    store, publish, clock = InMemorySubmissionStore(), RecordingPublish(), Clock()
    app = create_app(
        settings(**changes),
        store=store,
        publish=publish,
        clock=clock,
        idempotency_store=idempotency,
        contact_store=InMemoryContactCodes(),
        recovery_store=InMemoryContactCodes(),
        confirmed_phones=InMemoryConfirmedPhones(),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://i") as http:
        yield Harness(http, store, idempotency, publish, clock)


@pytest.fixture
async def intake() -> AsyncIterator[Harness]:
    async for h in harness(InMemoryIdempotencyStore()):
        yield h


@pytest.fixture
async def channels() -> AsyncIterator[Harness]:
    """Intake where kakao and web have credentials."""
    keys = {"kakao": SecretStr(KAKAO_KEY), "web": SecretStr(WEB_KEY)}
    async for h in harness(InMemoryIdempotencyStore(), channel_keys=keys):
        yield h


def header_error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert [f["field"] for f in error.get("fields", [])] == ["Idempotency-Key"], error
    assert "Idempotency-Key" in error["message"]
    return error


# Pure rules


def test_the_fingerprint_ignores_key_order_and_spacing_but_not_values() -> None:
    a = fingerprint("POST", "/v1/complaints", b'{"a": 1, "b": [1, 2]}')
    assert a == fingerprint("POST", "/v1/complaints", b'{"b":[1,2],"a":1}')
    assert a != fingerprint("POST", "/v1/complaints", b'{"a": 2, "b": [1, 2]}')
    assert a != fingerprint("POST", "/v1/other", b'{"a": 1, "b": [1, 2]}')


def test_a_sealed_answer_opens_only_with_its_key() -> None:
    body = b'{"tracking_token": "abc"}'
    sealed = seal(body, key="k-1", scope="anonymous", print_="p")
    assert b"abc" not in sealed
    assert unseal(sealed, key="k-1", scope="anonymous", print_="p") == body
    for key, scope in (("k-2", "anonymous"), ("k-1", "department:roads")):
        with pytest.raises(CannotUnseal):
            unseal(sealed, key=key, scope=scope, print_="p")


def test_derived_ids_are_uuids_stable_per_key_and_purpose() -> None:
    kid = key_id("anonymous", "k")
    assert derived_id(kid, "submission") == derived_id(kid, "submission")
    assert derived_id(kid, "submission") != derived_id(kid, "command")
    assert derived_id(kid, "submission") != derived_id(key_id("channel:web", "k"), "submission")


# Filing


async def test_a_retry_with_the_same_key_and_body_answers_the_first_answer_once(
    intake: Harness,
) -> None:
    first = await intake.file("key-1")
    again = await intake.file("key-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()  # the tokens included: it is the first answer
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Cache-Control"] == "no-store"  # a resident's tokens: never cached
    assert again.headers["Referrer-Policy"] == "no-referrer"
    assert "Idempotent-Replayed" not in first.headers
    assert len(intake.filed()) == 1
    assert len(intake.store.rows) == 1
    kept = repr(intake.keys.kept)  # the answer is kept sealed, the key only hashed
    assert first.json()["tracking_token"] not in kept
    assert "key-1" not in kept


async def test_the_same_key_with_another_body_is_422_naming_the_header(intake: Harness) -> None:
    assert (await intake.file("key-1")).status_code == 201

    other = await intake.file("key-1", body="다른 내용입니다")

    assert other.status_code == 422
    assert header_error(other)["code"] == "idempotency_key_reused"
    assert len(intake.filed()) == 1


async def test_a_key_still_in_flight_is_409_until_its_lease_runs_out(intake: Harness) -> None:
    """A pending claim is another request at work, or one that died with its process: the
    retry waits (409) until the lease runs out, then takes over."""
    body = httpx.Request(
        "POST", "http://i/v1/complaints", json=FILING
    ).read()  # the bytes httpx sends
    kid = key_id("anonymous", "key-1")
    print_ = fingerprint("POST", "/v1/complaints", body)
    await intake.keys.claim_many([Claim(kid, print_, START, START + timedelta(hours=1))])

    busy = await intake.file("key-1")
    assert busy.status_code == 409
    assert busy.headers["Retry-After"] == "1"
    assert busy.headers["Cache-Control"] == "no-store"
    header_error(busy)
    assert intake.filed() == []

    intake.clock.now = START + timedelta(seconds=31)
    taken = await intake.file("key-1")
    assert taken.status_code == 201
    assert len(intake.filed()) == 1


async def test_concurrent_requests_with_one_key_file_once(intake: Harness) -> None:
    answers = await asyncio.gather(*(intake.file("key-1") for _ in range(4)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert len(intake.filed()) == 1
    assert {a.json()["complaint_id"] for a in answers if a.status_code == 201} == {
        intake.filed()[0].complaint_id
    }


async def test_a_refused_request_frees_its_key_for_the_corrected_retry(intake: Harness) -> None:
    refused = await intake.file("key-1", body="")
    assert refused.status_code == 422
    assert "Idempotency-Key" not in str(refused.json())

    fixed = await intake.file("key-1")
    assert fixed.status_code == 201
    assert len(intake.filed()) == 1


class ForgetfulKeys(InMemoryIdempotencyStore):
    """The answer cannot be kept (the database went away after the filing)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    async def answer_many(self, answers: Sequence[Answer]) -> None:
        if self.fail:
            self.fail = False
            raise ConnectionError("database unreachable")
        await super().answer_many(answers)


async def test_a_retry_after_the_answer_was_lost_finds_the_complaint_filed_once() -> None:
    async for intake in harness(ForgetfulKeys()):
        with pytest.raises(ConnectionError):
            await intake.file("key-1")
        assert len(intake.store.rows) == 1

        retry = await intake.file("key-1")

        assert retry.status_code == 200
        [complaint_id] = intake.store.rows
        assert retry.json() == {
            "complaint_id": complaint_id,
            "receipt_number": intake.store.rows[complaint_id].record.filed.receipt_number,
            "duplicate": True,
        }
        assert len(intake.store.rows) == 1
        assert [e.complaint_id for e in intake.filed()] == [complaint_id]


async def test_a_key_is_forgotten_after_it_expires(intake: Harness) -> None:
    assert (await intake.file("key-1")).status_code == 201
    intake.clock.now = START + timedelta(hours=1, seconds=1)

    later = await intake.file("key-1", body="한 시간 뒤 새 민원입니다")

    assert later.status_code == 201
    assert len(intake.filed()) == 2


async def test_keys_are_scoped_per_client(channels: Harness) -> None:
    """The same key from two clients is two keys: an anonymous filer and the web channel."""
    anonymous = await channels.file("key-1")
    portal = await channels.file("key-1", api_key=WEB_KEY)
    wrong = await channels.file("key-1", api_key="nobody-holds-this")

    assert (anonymous.status_code, portal.status_code, wrong.status_code) == (201, 201, 401)
    assert anonymous.json()["complaint_id"] != portal.json()["complaint_id"]
    assert len(channels.filed()) == 2


@pytest.mark.parametrize("key", ["", "키", "x" * 256])
async def test_a_malformed_key_is_422_naming_the_header(intake: Harness, key: str) -> None:
    response = await intake.http.post(
        "/v1/complaints",
        json=FILING,
        headers=[(b"Idempotency-Key", key.encode())],
    )
    assert response.status_code == 422
    header_error(response)
    assert intake.filed() == []


# Commands


async def test_a_retried_command_is_published_once_with_one_command_id(intake: Harness) -> None:
    url = f"/v1/complaints/{CID}/commands"
    body = {"action": "start_site_check"}
    headers = {"X-Api-Key": ROADS_KEY, "Idempotency-Key": "cmd-1"}

    first = await intake.http.post(url, json=body, headers=headers)
    again = await intake.http.post(url, json=body, headers=headers)
    other_department = await intake.http.post(
        url, json=body, headers=headers | {"X-Api-Key": PARKS_KEY}
    )

    assert first.status_code == again.status_code == other_department.status_code == 202
    assert again.json() == first.json()
    commands = [COMMAND_ADAPTER.validate_python(e) for e in intake.publish.on(topics.COMMANDS)]
    assert [c.actor for c in commands] == ["roads", "parks"]
    assert commands[0].event_id == first.json()["command_id"]
    assert commands[1].event_id != commands[0].event_id


async def test_a_resident_action_retried_is_published_once(intake: Harness) -> None:
    filed = (await intake.file()).json()
    url = f"/v1/complaints/{filed['complaint_id']}/resident-actions"
    body = {"action": "withdraw", "token": filed["tracking_token"]}

    first = await intake.http.post(url, json=body, headers={"Idempotency-Key": "w-1"})
    again = await intake.http.post(url, json=body, headers={"Idempotency-Key": "w-1"})

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert len(intake.publish.on(topics.COMMANDS)) == 1


# Channel credentials (issue 11 §1)


async def test_a_credentialed_channel_is_filed_as_only_with_its_credential(
    channels: Harness,
) -> None:
    anonymous = await channels.file(channel="kakao", channel_ref="K-1")
    other = await channels.file(channel="kakao", channel_ref="K-1", api_key=WEB_KEY)
    own = await channels.file(channel="kakao", channel_ref="K-1", api_key=KAKAO_KEY)

    assert anonymous.status_code == 401
    assert "channel" in anonymous.json()["error"]["message"]
    assert other.status_code == 403
    assert own.status_code == 201
    assert [e.channel_ref for e in channels.filed()] == ["K-1"]


async def test_only_the_channel_itself_hears_of_its_duplicate_and_never_a_token(
    channels: Harness,
) -> None:
    first = (await channels.file(channel="kakao", channel_ref="CC-1", api_key=KAKAO_KEY)).json()
    again = await channels.file(channel="kakao", channel_ref="CC-1", api_key=KAKAO_KEY)

    assert again.status_code == 200
    assert again.json() == {
        "complaint_id": first["complaint_id"],
        "receipt_number": first["receipt_number"],
        "duplicate": True,
    }
    stranger = await channels.file(channel="kakao", channel_ref="CC-1")
    assert stranger.status_code == 401
    assert first["complaint_id"] not in stranger.text


async def test_anonymous_web_filers_file_without_a_channel_ref(channels: Harness) -> None:
    plain = await channels.file()
    with_ref = await channels.file(channel_ref="web-1")

    assert plain.status_code == 201
    assert plain.json()["tracking_token"]
    assert with_ref.status_code == 401
    assert with_ref.json()["error"]["message"].startswith("channel_ref:")
    [event] = channels.filed()
    assert event.tracking_token_hash == hash_token(plain.json()["tracking_token"])


async def test_a_department_key_is_not_a_channel_credential(channels: Harness) -> None:
    response = await channels.file(api_key=ROADS_KEY)
    assert response.status_code == 401
    assert hashlib.sha256(ROADS_KEY.encode()).hexdigest() not in response.text
