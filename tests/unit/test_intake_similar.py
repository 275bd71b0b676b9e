"""'이미 접수된 민원이 있어요' at intake (``POST /v1/complaints/similar``): any channel sends
the filing it is about to make and hears of the open cases it may be repeating — public
summaries only — and nothing is filed. The tracker is the in-memory tracker app, read
through intake's tracker client as in production."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from intake.app import create_app
from intake.settings import IntakeSettings
from intake.tracker_client import TrackerClient
from schemas import ComplaintState, topics
from schemas.common import Channel, Location
from tests.fakes.intake import (
    InMemoryConfirmedPhones,
    InMemoryContactCodes,
    InMemoryIdempotencyStore,
    InMemoryPhotoStore,
    InMemorySubmissionStore,
    RecordingPublish,
)
from tests.unit.test_tracker_api import Tracker, running
from tests.unit.test_tracker_projection import T0, change, filed

S = ComplaintState
STAFF_KEY = "intake-reads-the-tracker"
KAKAO_KEY = "kakao-channel-credential"
CASE_BODY = "청라1동 주민센터 앞 가로등이 일주일째 꺼져 있습니다. 연락 010-9876-5432 주세요"
FILING: dict[str, Any] = {
    "channel": "web",
    "title": "가로등 고장",
    "body": "주민센터 앞 가로등이 꺼져 있어요. 밤에 너무 어두워요",
    "service_code": "street-light",
    "resident": {"name": "김주민", "phone": "010-5555-6666"},
    "location": {"address": "인천 서구 청라커낼로 98", "dong": "청라1동"},
}
PERSONAL = ("홍길동", "010-1234-5678", "청라커낼로 100", "9876-5432")


@dataclass
class Stack:
    http: httpx.AsyncClient
    tracker: Tracker
    publish: RecordingPublish
    store: InMemorySubmissionStore

    async def similar(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.http.post("/v1/complaints/similar", json=body, headers=headers)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with stack_of() as made:
        yield made


@asynccontextmanager
async def stack_of(
    staff_key: str | None = STAFF_KEY, classify: Any = None, **settings: Any
) -> AsyncIterator[Stack]:
    clock = lambda: T0 + timedelta(days=1)  # noqa: E731
    async with running(clock=clock, staff_api_keys={"intake": SecretStr(STAFF_KEY)}) as tracker:
        publish, store = RecordingPublish(), InMemorySubmissionStore()
        app = create_app(
            IntakeSettings(
                channel_keys={Channel.KAKAO: SecretStr(KAKAO_KEY)}, routing_url=None, **settings
            ),
            store=store,
            publish=publish,
            tracker=TrackerClient(tracker.http, SecretStr(staff_key) if staff_key else None),
            idempotency_store=InMemoryIdempotencyStore(),
            photo_store=InMemoryPhotoStore(),
            contact_store=InMemoryContactCodes(),
            recovery_store=InMemoryContactCodes(),
            confirmed_phones=InMemoryConfirmedPhones(),
            classify=classify,
        )
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            yield Stack(http, tracker, publish, store)


async def open_case(
    tracker: Tracker,
    cid: str = "c1",
    *,
    state: S = S.SITE_CHECK,
    service_code: str = "street-light",
    department: tuple[str, str] = ("roads", "도로과"),
) -> None:
    location = Location(address="인천 서구 청라커낼로 100", dong="청라1동")
    code, name = department
    await tracker.deliver(
        filed(cid).model_copy(
            update={"location": location, "service_code": service_code, "body": CASE_BODY}
        ),
        change(cid, 1, None, S.RECEIVED, trigger="file"),
        change(
            cid, 2, S.RECEIVED, S.ASSIGNED, trigger="assign", department=code, department_name=name
        ),
        change(cid, 3, S.ASSIGNED, state, trigger="t"),
    )


async def test_the_open_case_is_offered_with_its_public_summary_and_nothing_is_filed(
    stack: Stack,
) -> None:
    await open_case(stack.tracker)
    response = await stack.similar(FILING)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["department"] == {"code": "roads", "name": "도로과", "source": "service_code"}
    assert answer["looked_up"] is True
    assert answer["not_looked_up"] is None
    [case] = answer["items"]
    assert case == {
        "complaint_id": "c1",
        "receipt_number": "250303-000042",
        "state": "site_check",
        "department_name": "도로과",
        "excerpt": case["excerpt"],
        "dong": "청라1동",
        "filed_at": "2025-03-03T00:00:00Z",
        "filed_on": "2025-03-03",
        "similarity": case["similarity"],
    }
    assert case["excerpt"].startswith("청라1동 주민센터 앞 가로등이 일주일째")
    assert 0.4 <= case["similarity"] <= 1
    for personal in PERSONAL:
        assert personal not in response.text
    assert stack.publish.on(topics.FILED) == []
    assert stack.store.rows == {}
    assert stack.store.phone_days == {}  # nor counted against the phone


async def test_another_department_another_place_or_a_closed_case_is_not_offered(
    stack: Stack,
) -> None:
    await open_case(stack.tracker, "resolved", state=S.RESOLVED)
    await open_case(
        stack.tracker,
        "parks",
        service_code="street-tree",
        department=("parks", "공원녹지과"),
    )
    answer = (await stack.similar(FILING)).json()
    assert (answer["looked_up"], answer["items"]) == (True, [])
    elsewhere = FILING | {"location": {"dong": "청라2동"}}
    await open_case(stack.tracker)
    assert (await stack.similar(elsewhere)).json()["items"] == []


async def test_without_a_service_code_intake_says_the_department_is_routings_to_decide(
    stack: Stack,
) -> None:
    await open_case(stack.tracker)
    for body in (
        {k: v for k, v in FILING.items() if k != "service_code"},
        FILING | {"service_code": "no-such-service"},
    ):
        response = await stack.similar(body)
        assert response.status_code == 200
        assert response.json() == {
            "department": None,
            "looked_up": False,
            "not_looked_up": "no_department",
            "items": [],
        }


def classifier(answer: dict[str, Any] | int) -> Any:
    """routing's ``POST /v1/classify`` as an HTTP double: one prediction, or a status."""
    from intake.similar import RoutingClassifier

    asked: list[Any] = []

    def reply(request: httpx.Request) -> httpx.Response:
        asked.append(request.read())
        if isinstance(answer, int):
            return httpx.Response(answer)
        return httpx.Response(200, json={"predictions": [answer]})

    transport = httpx.MockTransport(reply)
    made = RoutingClassifier(httpx.AsyncClient(transport=transport, base_url="http://routing"))
    object.__setattr__(made, "asked", asked)  # what routing was asked, for the test
    return made


async def test_without_a_service_code_routings_confident_department_is_looked_up() -> None:
    body = {k: v for k, v in FILING.items() if k != "service_code"}
    confident = classifier({"department": "roads", "confidence": 0.91, "auto": True})
    async with stack_of(classify=confident) as stack:
        await open_case(stack.tracker)
        answer = (await stack.similar(body)).json()
    assert answer["department"] == {"code": "roads", "name": "도로과", "source": "classifier"}
    assert answer["looked_up"] is True
    assert [item["complaint_id"] for item in answer["items"]] == ["c1"]
    (text,) = json.loads(confident.asked[0])["texts"]
    assert "밤에 너무 어두워요" in text  # title and body, as routing reads them
    # not confident (routing would send it to a person), or routing away: not guessed
    for unsure in (
        classifier({"department": "roads", "confidence": 0.3, "auto": False}),
        classifier(503),
        classifier({"department": "no-such-department", "confidence": 0.9, "auto": True}),
    ):
        async with stack_of(classify=unsure) as stack:
            await open_case(stack.tracker)
            answer = (await stack.similar(body)).json()
        assert (answer["department"], answer["not_looked_up"]) == (None, "no_department")


async def test_without_a_dong_nothing_is_looked_up(stack: Stack) -> None:
    await open_case(stack.tracker)
    answer = (await stack.similar(FILING | {"location": {"address": "청라커낼로 98"}})).json()
    assert (answer["looked_up"], answer["not_looked_up"], answer["items"]) == (
        False,
        "no_dong",
        [],
    )
    assert answer["department"]["code"] == "roads"


async def test_a_tracker_that_does_not_answer_is_said_not_hidden() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for tracker in (
        httpx.AsyncClient(transport=httpx.MockTransport(unreachable), base_url="http://t"),
        httpx.AsyncClient(
            transport=httpx.MockTransport(lambda _: httpx.Response(429)), base_url="http://t"
        ),
    ):
        app = create_app(
            IntakeSettings(),
            store=InMemorySubmissionStore(),
            publish=RecordingPublish(),
            tracker=TrackerClient(tracker, SecretStr(STAFF_KEY)),
        )
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            response = await http.post("/v1/complaints/similar", json=FILING)
        assert response.status_code == 200
        assert response.json()["not_looked_up"] == "tracker_unavailable"
        assert response.json()["items"] == []


async def test_without_a_staff_key_the_case_is_offered_without_what_only_staff_read() -> None:
    async with stack_of(staff_key=None) as stack:
        await open_case(stack.tracker)
        [case] = (await stack.similar(FILING)).json()["items"]
    assert case["complaint_id"] == "c1"
    assert (case["receipt_number"], case["excerpt"], case["filed_at"]) == (None, None, None)
    assert case["filed_on"] == "2025-03-03"


async def test_no_excerpt_for_a_service_whose_requests_are_not_public(stack: Stack) -> None:
    await open_case(stack.tracker, service_code="elderly", department=("welfare", "복지정책과"))
    body = FILING | {"service_code": "elderly", "body": CASE_BODY}
    [case] = (await stack.similar(body)).json()["items"]
    assert case["receipt_number"] == "250303-000042"
    assert case["excerpt"] is None


@pytest.mark.parametrize(
    ("change_", "field"),
    [
        ({"body": ""}, "body"),
        ({"resident": {"phone": "12345"}}, "resident.phone"),
        ({"occurred_at": "2026-12-01T00:00:00Z"}, "occurred_at"),
    ],
)
async def test_the_body_is_checked_as_a_filing_is(
    stack: Stack, change_: dict[str, Any], field: str
) -> None:
    response = await stack.similar(FILING | change_)
    assert response.status_code == 422
    fields = [f["field"] for f in response.json()["error"]["fields"]]
    assert field in fields


async def test_a_channel_with_a_credential_asks_with_it(stack: Stack) -> None:
    kakao = FILING | {"channel": "kakao"}
    assert (await stack.similar(kakao)).status_code == 401
    assert (await stack.similar(kakao, **{"X-Api-Key": "wrong"})).status_code == 401
    assert (await stack.similar(kakao, **{"X-Api-Key": KAKAO_KEY})).status_code == 200
    assert (await stack.similar(FILING, **{"X-Api-Key": KAKAO_KEY})).status_code == 403


async def test_lookups_are_limited_per_end_user_on_a_budget_of_their_own() -> None:
    async with stack_of(similar_per_minute=2, filings_per_minute=1) as stack:
        codes = [(await stack.similar(FILING)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        filing = await stack.http.post("/v1/complaints", json=FILING)
        assert filing.status_code == 201  # the lookups spent no filing
        assert (await stack.similar(FILING, **{"X-End-User": "someone"})).status_code == 429
