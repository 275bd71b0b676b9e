"""Confirmed contacts at intake (issue 11 §11): an anonymous web filing's phone gets a
one-time code; the code is checked with bounded attempts, expires, and may be re-sent a
few times an hour. In memory: the HTTP app through ASGI with fakes and a moving clock."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from intake import contacts
from intake.app import create_app
from intake.contacts import CodeRules, Verdict, hash_code, needs_code
from intake.settings import IntakeSettings
from schemas import ComplaintFiled, topics
from schemas.common import Channel, Resident
from schemas.events import ContactCodeIssued, ContactConfirmed
from tests.fakes.intake import (
    InMemoryConfirmedPhones,
    InMemoryContactCodes,
    InMemoryIdempotencyStore,
    InMemorySubmissionStore,
    RecordingPublish,
)

START = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
KAKAO_KEY = "kakao-channel-credential"
CALL_CENTRE_KEY = "call-centre-channel-credential"
FILING = {
    "channel": "web",
    "body": "석남동 골목 가로등이 사흘째 꺼져 있어요",
    "resident": {"name": "홍길동", "phone": "010-1234-5678"},
}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    http: httpx.AsyncClient
    publish: RecordingPublish
    codes: InMemoryContactCodes
    clock: Clock
    recovery_codes: InMemoryContactCodes
    phones: InMemoryConfirmedPhones

    async def file(self, **changes: Any) -> dict[str, Any]:
        response = await self.http.post("/v1/complaints", json=FILING | changes)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def issued(self) -> list[ContactCodeIssued]:
        return [
            e for e in self.publish.on(topics.CONTACT_CODES) if isinstance(e, ContactCodeIssued)
        ]

    def confirmations(self) -> list[ContactConfirmed]:
        return [e for e in self.publish.on(topics.CONTACT_CODES) if isinstance(e, ContactConfirmed)]

    async def confirm(self, filed: dict[str, Any], code: str, **headers: str) -> httpx.Response:
        headers = headers or {"X-Tracking-Token": filed["tracking_token"]}
        return await self.http.post(
            f"/v1/complaints/{filed['complaint_id']}/contact/confirm",
            json={"code": code},
            headers=headers,
        )

    async def resend(self, filed: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            f"/v1/complaints/{filed['complaint_id']}/contact/code",
            headers={"X-Resident-Token": filed["resident_token"]},
        )


@pytest.fixture
async def intake() -> AsyncIterator[Harness]:
    publish, codes, clock = RecordingPublish(), InMemoryContactCodes(), Clock()
    recovery_codes, phones = InMemoryContactCodes(), InMemoryConfirmedPhones()
    app = create_app(
        IntakeSettings(
            channel_keys={
                Channel.KAKAO: SecretStr(KAKAO_KEY),
                Channel.CALL_CENTER: SecretStr(CALL_CENTRE_KEY),
            }
        ),
        store=InMemorySubmissionStore(),
        publish=publish,
        clock=clock,
        idempotency_store=InMemoryIdempotencyStore(),
        contact_store=codes,
        recovery_store=recovery_codes,
        confirmed_phones=phones,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://i") as http:
        yield Harness(http, publish, codes, clock, recovery_codes, phones)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# Which filings need a code


@pytest.mark.parametrize(
    ("channel", "holder", "resident", "needed"),
    [
        (Channel.WEB, None, Resident(phone="010-1234-5678"), True),
        # the portal's web credential relays what anyone typed: it vouches for no phone
        (Channel.WEB, "web", Resident(phone="010-1234-5678"), True),
        (Channel.KAKAO, "kakao", Resident(phone="010-1234-5678"), False),  # it vouches
        (Channel.CALL_CENTER, None, Resident(phone="010-1234-5678"), True),  # open to anyone
        (Channel.WEB, None, Resident(email="a@example.com"), False),  # no phone
        (Channel.WEB, None, Resident(phone="010-1234-5678", notification_consent=False), False),
    ],
)
def test_web_and_uncredentialed_filings_with_a_phone_to_tell_need_a_code(
    channel: Channel, holder: str | None, resident: Resident, needed: bool
) -> None:
    assert needs_code(channel, holder, resident, {"web"}, {"web", "kakao"}) is needed


async def test_an_anonymous_web_filing_is_accepted_and_a_code_is_sent_to_its_phone(
    intake: Harness,
) -> None:
    filed = await intake.file()

    [event] = intake.publish.on(topics.FILED)
    assert isinstance(event, ComplaintFiled)
    assert event.contact_unconfirmed
    [issued] = intake.issued()
    assert issued.complaint_id == filed["complaint_id"]
    assert issued.receipt_number == filed["receipt_number"]
    assert issued.phone == "010-1234-5678"
    assert len(issued.code) == 6
    assert issued.code.isdigit()
    assert issued.expires_at == START + timedelta(minutes=10)
    contact = filed["contact"]
    assert contact["confirmation_required"] is True
    assert contact["code_sent"] is True
    assert contact["confirm"] == f"/v1/complaints/{filed['complaint_id']}/contact/confirm"
    stored = intake.codes.records[filed["complaint_id"]]
    assert issued.code not in repr(stored.__dict__)  # only its salted hash is kept
    assert stored.code_hash == hash_code(issued.code, stored.salt)


async def test_a_kakao_filing_with_its_credential_needs_a_code_by_default(
    intake: Harness,
) -> None:
    """The skill relays a phone typed in the conversation: its credential proves the
    channel, not the phone (``SOTONG_INTAKE_CONTACT_CODE_CHANNELS`` names kakao)."""
    response = await intake.http.post(
        "/v1/complaints", json=FILING | {"channel": "kakao"}, headers={"X-Api-Key": KAKAO_KEY}
    )

    assert response.status_code == 201
    assert response.json()["contact"]["code_sent"] is True
    [event] = intake.publish.on(topics.FILED)
    assert isinstance(event, ComplaintFiled)
    assert event.contact_unconfirmed
    [issued] = intake.issued()
    assert issued.complaint_id == response.json()["complaint_id"]


async def test_a_call_centre_filing_with_its_credential_needs_no_code(intake: Harness) -> None:
    response = await intake.http.post(
        "/v1/complaints",
        json=FILING | {"channel": "call_center"},
        headers={"X-Api-Key": CALL_CENTRE_KEY},
    )

    assert response.status_code == 201
    assert "contact" not in response.json()
    [event] = intake.publish.on(topics.FILED)
    assert isinstance(event, ComplaintFiled)
    assert not event.contact_unconfirmed
    assert intake.issued() == []


async def test_a_web_filing_without_a_phone_needs_no_code(intake: Harness) -> None:
    filed = await intake.file(resident={"email": "hong@example.com"})

    assert "contact" not in filed
    assert intake.issued() == []


# Confirming


async def test_the_right_code_confirms_once_and_again_answers_the_same(intake: Harness) -> None:
    filed = await intake.file()
    [issued] = intake.issued()

    first = await intake.confirm(filed, issued.code)
    again = await intake.confirm(filed, "000000", **{"X-Resident-Token": filed["resident_token"]})

    assert first.status_code == again.status_code == 200
    assert first.json() == {"complaint_id": filed["complaint_id"], "confirmed": True}
    one, two = intake.confirmations()
    assert one.complaint_id == filed["complaint_id"]
    assert one.event_id == two.event_id  # a repeat is a duplicate downstream


async def test_a_wrong_code_names_the_field_and_the_attempts_left(intake: Harness) -> None:
    filed = await intake.file()
    [issued] = intake.issued()

    response = await intake.confirm(filed, wrong(issued.code))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "wrong_code"
    assert error["message"].startswith("code: ")
    assert "4 attempt(s) left" in error["message"]
    assert intake.confirmations() == []


async def test_five_wrong_attempts_lock_the_code_until_a_new_one_is_sent(intake: Harness) -> None:
    filed = await intake.file()
    [issued] = intake.issued()
    for _ in range(4):
        assert (await intake.confirm(filed, wrong(issued.code))).status_code == 422
    fifth = await intake.confirm(filed, wrong(issued.code))
    right_but_late = await intake.confirm(filed, issued.code)

    assert fifth.status_code == right_but_late.status_code == 429
    assert right_but_late.json()["error"]["code"] == "too_many_attempts"
    assert intake.confirmations() == []

    assert (await intake.resend(filed)).status_code == 202
    new = intake.issued()[-1]
    assert (await intake.confirm(filed, new.code)).status_code == 200


async def test_an_expired_code_is_refused(intake: Harness) -> None:
    filed = await intake.file()
    [issued] = intake.issued()
    intake.clock.now = START + timedelta(minutes=10)

    response = await intake.confirm(filed, issued.code)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "code_expired"


async def test_a_code_is_confirmed_only_with_the_complaints_own_token(intake: Harness) -> None:
    filed = await intake.file()
    other = await intake.file()
    [issued, _] = intake.issued()

    stranger = await intake.confirm(filed, issued.code, **{"X-Tracking-Token": "guessed"})
    crossed = await intake.confirm(
        filed, issued.code, **{"X-Tracking-Token": other["tracking_token"]}
    )
    none = await intake.http.post(
        f"/v1/complaints/{filed['complaint_id']}/contact/confirm", json={"code": issued.code}
    )

    assert stranger.status_code == crossed.status_code == none.status_code == 404
    assert intake.confirmations() == []


async def test_a_malformed_code_is_refused_naming_the_field(intake: Harness) -> None:
    filed = await intake.file()

    response = await intake.confirm(filed, "12ab")

    assert response.status_code == 422
    assert {f["field"] for f in response.json()["error"]["fields"]} == {"code"}


# Re-sending


async def test_at_most_three_new_codes_an_hour(intake: Harness) -> None:
    filed = await intake.file()
    for minute in (1, 2, 3):
        intake.clock.now = START + timedelta(minutes=minute)
        assert (await intake.resend(filed)).status_code == 202

    intake.clock.now = START + timedelta(minutes=4)
    refused = await intake.resend(filed)
    intake.clock.now = START + timedelta(minutes=61, seconds=1)
    later = await intake.resend(filed)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_codes"
    assert int(refused.headers["Retry-After"]) == 57 * 60 + 1
    assert later.status_code == 202
    assert len(intake.issued()) == 5  # the first, three, and one after the hour


async def test_a_new_code_replaces_the_old_one(
    intake: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = iter(["111111", "222222"])
    monkeypatch.setattr(contacts, "new_code", lambda: next(drawn))
    filed = await intake.file()
    [old] = intake.issued()
    assert (await intake.resend(filed)).status_code == 202
    new = intake.issued()[-1]
    assert (old.code, new.code) == ("111111", "222222")

    assert (await intake.confirm(filed, old.code)).status_code == 422
    assert (await intake.confirm(filed, new.code)).status_code == 200


async def test_no_new_code_once_confirmed(intake: Harness) -> None:
    filed = await intake.file()
    [issued] = intake.issued()
    assert (await intake.confirm(filed, issued.code)).status_code == 200

    response = await intake.resend(filed)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_confirmed"


# The rules alone


def test_a_late_or_locked_attempt_counts_and_a_confirmed_record_stays_as_it_is() -> None:
    rules = CodeRules(ttl=timedelta(minutes=10), max_attempts=2)
    fresh = rules.issue_for(
        complaint_id="c",
        receipt_number="r",
        tracking_token_hash="t",
        resident_token_hash=None,
        phone="010-1234-5678",
        now=START,
        code="123456",
        salt="s",
    )

    verdict, after = rules.check(fresh, "123456", START + timedelta(minutes=10))
    assert (verdict, after.attempts) == (Verdict.EXPIRED, 1)
    verdict, after = rules.check(after, "000000", START)
    assert (verdict, after.attempts) == (Verdict.LOCKED, 2)
    verdict, same = rules.check(after, "123456", START)
    assert (verdict, same) == (Verdict.LOCKED, after)
    verdict, confirmed = rules.check(fresh, "123456", START)
    assert verdict is Verdict.CONFIRMED
    assert confirmed.confirmed_at == START
    assert rules.check(confirmed, "000000", START) == (Verdict.ALREADY, confirmed)
