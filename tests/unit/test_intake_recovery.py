"""Recovering one's complaints on another device (issue 12), and a confirmed phone
remembered for its resident. In memory: the HTTP app through ASGI with fakes and a moving
clock; ``tests/service/test_intake_recovery.py`` runs the same on the real servers."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from intake.app import create_app
from intake.recovery import recoverable
from intake.settings import IntakeSettings
from intake.store import Owner
from schemas import topics
from schemas.common import Channel
from schemas.events import CodePurpose, ContactCodeIssued, ResidentBound
from schemas.tokens import hash_token
from tests.fakes.intake import (
    InMemoryConfirmedPhones,
    InMemoryContactCodes,
    InMemoryIdempotencyStore,
    InMemorySubmissionStore,
    RecordingPublish,
)
from tests.unit.test_intake_contacts import KAKAO_KEY, Clock, Harness, wrong

PHONE = "010-1234-5678"


@pytest.fixture
async def intake() -> AsyncIterator[Harness]:
    """As the contact tests' harness, with the per-client limits out of the way (their own
    test sets them low)."""
    publish, codes, clock = RecordingPublish(), InMemoryContactCodes(), Clock()
    recovery_codes, phones = InMemoryContactCodes(), InMemoryConfirmedPhones()
    app = create_app(
        IntakeSettings(
            channel_keys={Channel.KAKAO: SecretStr(KAKAO_KEY)},
            recovery_per_minute=1000,
            recovery_per_hour=1000,
            filings_per_minute=100,
            filings_per_hour=100,
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


def recovery_codes(intake: Harness) -> list[ContactCodeIssued]:
    return [e for e in intake.issued() if e.purpose is CodePurpose.RECOVERY]


async def ask(intake: Harness, receipt: str) -> httpx.Response:
    return await intake.http.post("/v1/recovery", json={"receipt_number": receipt})


async def enter(intake: Harness, receipt: str, code: str, **more: str) -> httpx.Response:
    body = {"receipt_number": receipt, "code": code} | more
    return await intake.http.post("/v1/recovery/confirm", json=body)


# -- which complaints a right code binds (pure) ------------------------------------------------


def owner(cid: str, residents: tuple[str, ...], phone: str | None) -> Owner:
    return Owner(cid, f"261202-{cid:0>6}", residents, phone)


def test_a_code_binds_the_residents_complaints_that_name_the_same_phone() -> None:
    target = owner("1", ("a",), "010-1234-5678")
    candidates = [
        owner("2", ("a",), "01012345678"),  # the same number, written otherwise
        owner("3", ("a",), "010-9999-0000"),  # another phone: the code proves nothing of it
        owner("4", ("a",), None),  # no phone
        owner("5", ("b",), "010-1234-5678"),  # a stranger who typed the same phone
        owner("6", ("b", "a"), "010-1234-5678"),  # bound to the same resident before
        owner("1", ("a",), "010-1234-5678"),  # the target itself, once
    ]

    found = recoverable(target, candidates)

    assert [o.complaint_id for o in found] == ["1", "2", "6"]
    assert [o.complaint_id for o in recoverable(target, candidates, limit=2)] == ["1", "2"]
    assert recoverable(owner("7", ("a",), None), candidates) == []


# -- asking for a code --------------------------------------------------------------------------


async def test_a_code_goes_to_the_phone_on_file_and_the_answer_never_tells(
    intake: Harness,
) -> None:
    filed = await intake.file()
    no_phone = await intake.file(resident={"name": "홍길동"})
    no_consent = await intake.file(resident={"phone": PHONE, "notification_consent": False})

    known = await ask(intake, filed["receipt_number"])
    phoneless = await ask(intake, no_phone["receipt_number"])
    not_to_be_told = await ask(intake, no_consent["receipt_number"])
    unknown = await ask(intake, "261202-999999")

    answers = (known, phoneless, not_to_be_told, unknown)
    assert {a.status_code for a in answers} == {202}
    assert known.json() == phoneless.json() == not_to_be_told.json() == unknown.json()
    [sent] = recovery_codes(intake)
    assert (sent.complaint_id, sent.phone) == (filed["complaint_id"], PHONE)
    assert sent.receipt_number == filed["receipt_number"]


async def test_a_malformed_receipt_number_is_refused_naming_it(intake: Harness) -> None:
    response = await ask(intake, "26-1202")

    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "receipt_number"


async def test_codes_for_one_receipt_number_are_limited_whether_or_not_it_exists(
    intake: Harness,
) -> None:
    filed = await intake.file()
    for receipt in (filed["receipt_number"], "261202-999999"):
        answers = [(await ask(intake, receipt)).status_code for _ in range(4)]
        assert answers == [202, 202, 202, 429]
    assert len(recovery_codes(intake)) == 3


# -- entering it ---------------------------------------------------------------------------------


async def test_the_right_code_binds_a_new_token_to_the_residents_complaints(
    intake: Harness,
) -> None:
    first = await intake.file()
    resident = first["resident_token"]
    second = await intake.file(resident_token=resident)
    other_phone = await intake.file(
        resident_token=resident, resident={"phone": "010-9999-0000", "name": "홍길동"}
    )
    await ask(intake, second["receipt_number"])
    [sent] = recovery_codes(intake)

    response = await enter(intake, second["receipt_number"], sent.code)

    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    token = body["resident_token"]
    assert len(token) >= 16
    assert token != resident
    recovered = {c["complaint_id"] for c in body["complaints"]}
    assert recovered == {first["complaint_id"], second["complaint_id"]}
    assert other_phone["complaint_id"] not in recovered
    bound = intake.publish.on(topics.RESIDENT_BINDINGS)
    assert all(isinstance(e, ResidentBound) for e in bound)
    assert {e.complaint_id for e in bound} == recovered
    assert {e.resident_token_hash for e in bound if isinstance(e, ResidentBound)} == {
        hash_token(token)
    }
    # the new token acts as the filer's did: a resident action, and the next filing
    action = await intake.http.post(
        f"/v1/complaints/{first['complaint_id']}/resident-actions",
        json={"action": "withdraw", "token": token},
    )
    assert action.status_code == 202, action.text
    refused = await intake.http.post(
        f"/v1/complaints/{other_phone['complaint_id']}/resident-actions",
        json={"action": "withdraw", "token": token},
    )
    assert refused.status_code == 404
    # the code proved the phone: the complaint's contact counts as confirmed
    assert {c.complaint_id for c in intake.confirmations()} == recovered
    later = await intake.file(resident_token=token)
    assert "contact" not in later  # this resident confirmed this phone


async def test_a_device_with_a_token_keeps_it_and_an_unknown_token_is_refused(
    intake: Harness,
) -> None:
    filed = await intake.file()
    mine = (await intake.file(resident={"name": "김민원"}))["resident_token"]  # this device's
    await ask(intake, filed["receipt_number"])
    [sent] = recovery_codes(intake)

    unknown = await enter(intake, filed["receipt_number"], sent.code, resident_token="x" * 32)
    kept = await enter(intake, filed["receipt_number"], sent.code, resident_token=mine)

    assert unknown.status_code == 422
    assert unknown.json()["error"]["message"].startswith("resident_token: ")
    assert kept.status_code == 200
    assert "resident_token" not in kept.json()
    [bound] = intake.publish.on(topics.RESIDENT_BINDINGS)
    assert isinstance(bound, ResidentBound)
    assert bound.resident_token_hash == hash_token(mine)


async def test_every_refusal_looks_the_same_and_a_used_code_does_not_work_twice(
    intake: Harness,
) -> None:
    filed = await intake.file()
    receipt = filed["receipt_number"]
    await ask(intake, receipt)
    [sent] = recovery_codes(intake)

    wrong_code = await enter(intake, receipt, wrong(sent.code))
    never_sent = await enter(intake, "261202-999999", sent.code)
    right = await enter(intake, receipt, sent.code)
    used = await enter(intake, receipt, sent.code)

    assert right.status_code == 200
    assert wrong_code.status_code == never_sent.status_code == used.status_code == 422
    assert wrong_code.json() == never_sent.json() == used.json()
    assert wrong_code.json()["error"]["code"] == "wrong_code"


async def test_a_code_expires_and_five_wrong_tries_lock_it(intake: Harness) -> None:
    first = await intake.file()
    await ask(intake, first["receipt_number"])
    [late] = recovery_codes(intake)
    intake.clock.now += timedelta(minutes=11)
    expired = await enter(intake, first["receipt_number"], late.code)

    await ask(intake, first["receipt_number"])
    fresh = recovery_codes(intake)[-1]
    tries = [await enter(intake, first["receipt_number"], wrong(fresh.code)) for _ in range(5)]
    locked = await enter(intake, first["receipt_number"], fresh.code)

    assert expired.status_code == locked.status_code == 422
    assert all(t.status_code == 422 for t in tries)
    assert intake.publish.on(topics.RESIDENT_BINDINGS) == []


async def test_requests_are_limited_per_client() -> None:
    app = create_app(
        IntakeSettings(recovery_per_minute=2),
        store=InMemorySubmissionStore(),
        publish=RecordingPublish(),
        idempotency_store=InMemoryIdempotencyStore(),
        contact_store=InMemoryContactCodes(),
        recovery_store=InMemoryContactCodes(),
        confirmed_phones=InMemoryConfirmedPhones(),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://i") as http:
        answers = [
            (await http.post("/v1/recovery", json={"receipt_number": f"261202-00000{n}"}))
            for n in range(3)
        ]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].headers["Retry-After"]
    assert answers[2].json()["error"]["message"].startswith("client: ")


# -- a confirmed phone, remembered for its resident ---------------------------------------------


async def test_a_phone_confirmed_by_a_resident_is_not_asked_again_but_a_stranger_is(
    intake: Harness,
) -> None:
    filed = await intake.file()
    [code] = intake.issued()
    assert (await intake.confirm(filed, code.code)).status_code == 200

    again = await intake.file(resident_token=filed["resident_token"])
    stranger = (await intake.file(resident={"name": "남"}))["resident_token"]
    strangers = await intake.file(resident_token=stranger)  # the same phone, their own cookie
    another_phone = await intake.file(
        resident_token=filed["resident_token"], resident={"phone": "010-9999-0000"}
    )

    assert "contact" not in again
    assert "contact" in strangers
    assert "contact" in another_phone
    assert len(intake.phones.until) == 1  # one key: neither the phone nor the token readable
    [key] = intake.phones.until
    assert "1234" not in key
    assert filed["resident_token"] not in key
    # remembered for 90 days, then asked again
    intake.clock.now += timedelta(days=91)
    assert "contact" in await intake.file(resident_token=filed["resident_token"])
