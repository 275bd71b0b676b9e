"""Reading Open311 requests back: intake's GETs read the tracker's staff API (the
in-memory tracker app here, through intake's tracker client) and show what a public page
may show — status open/closed with a Korean note, the department as agency_responsible,
the legal due time as expected_datetime — and nothing personal."""

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from intake.app import create_app
from intake.settings import IntakeSettings
from intake.tracker_client import TrackerClient
from schemas import ComplaintFiled, ComplaintState, topics
from schemas.events import ComplaintStatusChanged
from tests.fakes.intake import InMemorySubmissionStore, RecordingPublish
from tests.unit.test_tracker_api import Tracker, running

S = ComplaintState
T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
KEY = "civic-app-key"
STAFF_KEY = "intake-reads-the-tracker"
PERSONAL = ("홍길동", "010-1234-5678", "gildong@example.kr", "청라커낼로", "900101-1234567")
FORM = {
    "api_key": KEY,
    "service_code": "waste-bulky",
    "address_string": "인천 서구 청라커낼로 100",
    "dong": "청라1동",
    "description": "소파 수거 부탁드려요. 연락 010-9876-5432, hong@example.kr, 900101-1234567",
    "first_name": "길동",
    "last_name": "홍",
    "phone": "010-1234-5678",
    "email": "gildong@example.kr",
    "attribute[item_type]": "sofa",
    "attribute[item_count]": "1",
}


def parse_xml(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 -- the answer of the server under test


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Stack:
    http: httpx.AsyncClient
    tracker: Tracker
    publish: RecordingPublish
    clock: Clock

    async def file(self, **changes: str) -> ComplaintFiled:
        """File through Open311 and let the tracker store the filing."""
        form = FORM
        if "service_code" in changes:  # the sofa's answers belong to waste-bulky only
            form = {k: v for k, v in FORM.items() if not k.startswith("attribute[")}
        response = await self.http.post("/open311/v2/requests.json", data=form | changes)
        assert response.status_code == 201, response.text
        filed = self.publish.on(topics.FILED)[-1]
        assert isinstance(filed, ComplaintFiled)
        await self.tracker.deliver(filed)
        self.clock.now += timedelta(minutes=10)
        return filed

    async def move(
        self, filed: ComplaintFiled, sequence: int, to: ComplaintState, **fields: Any
    ) -> None:
        await self.tracker.deliver(
            ComplaintStatusChanged(
                complaint_id=filed.complaint_id,
                receipt_number=filed.receipt_number,
                sequence=sequence,
                from_state=None,
                to_state=to,
                trigger=to.value,
                actor="routing",
                occurred_at=filed.occurred_at + timedelta(minutes=sequence),
                **fields,
            )
        )

    async def assign(self, filed: ComplaintFiled) -> None:
        await self.move(filed, 1, S.RECEIVED)
        await self.move(
            filed,
            2,
            S.ASSIGNED,
            department="resource-circulation",
            department_name="자원순환과",
            due_at=filed.occurred_at + timedelta(days=7),
        )

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.http.get(f"/open311/v2/{path}", params=params)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with running(staff_api_keys={"intake": SecretStr(STAFF_KEY)}) as tracker:
        publish, clock = RecordingPublish(), Clock()
        app = create_app(
            IntakeSettings(open311_keys={"app": SecretStr(KEY)}),
            store=InMemorySubmissionStore(),
            publish=publish,
            clock=clock,
            tracker=TrackerClient(tracker.http, SecretStr(STAFF_KEY)),
        )
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            yield Stack(http, tracker, publish, clock)


def assert_nothing_personal(text: str) -> None:
    for personal in PERSONAL:
        assert personal not in text


async def test_a_filed_request_reads_back_open_with_its_department(stack: Stack) -> None:
    filed = await stack.file()
    await stack.assign(filed)

    response = await stack.get(f"requests/{filed.complaint_id}.json")

    assert response.status_code == 200, response.text
    [request] = response.json()
    assert request == {
        "service_request_id": filed.complaint_id,
        "status": "open",
        "status_notes": "담당 부서에 배정됐습니다.",
        "service_name": "대형폐기물",
        "service_code": "waste-bulky",
        "description": request["description"],
        "agency_responsible": "자원순환과",
        "service_notice": filed.receipt_number,
        "requested_datetime": "2026-12-01T09:00:00+09:00",
        "updated_datetime": "2026-12-01T09:02:00+09:00",
        "expected_datetime": "2026-12-08T09:00:00+09:00",
        "dong": "청라1동",
    }
    assert request["description"].startswith("소파 수거 부탁드려요. 연락 010-****-5432")
    assert_nothing_personal(response.text)
    assert "hong@example.kr" not in response.text


async def test_the_same_request_in_xml(stack: Stack) -> None:
    filed = await stack.file()
    await stack.assign(filed)

    response = await stack.get(f"requests/{filed.complaint_id}.xml")

    root = parse_xml(response.content)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == filed.complaint_id
    assert root.findtext("request/status") == "open"
    assert root.findtext("request/agency_responsible") == "자원순환과"
    assert root.findtext("request/expected_datetime") == "2026-12-08T09:00:00+09:00"
    assert_nothing_personal(response.text)


async def test_a_request_not_routed_yet_is_open_without_a_department(stack: Stack) -> None:
    filed = await stack.file()

    [request] = (await stack.get(f"requests/{filed.complaint_id}.json")).json()

    assert request["status"] == "open"
    assert request["status_notes"] == "민원이 접수됐습니다. 담당 부서를 정하고 있습니다."
    assert request["agency_responsible"] is None


@pytest.mark.parametrize(
    ("state", "status", "note"),
    [
        (S.SITE_CHECK, "open", "현장 확인 중입니다."),
        (S.REVIEWING, "open", "현재 심사 중입니다."),
        (S.INFO_REQUESTED, "open", "민원인에게 보완을 요청했습니다."),
        (S.RESOLVED, "closed", "민원이 처리 완료됐습니다."),
        (S.REJECTED, "closed", "민원이 반려됐습니다."),
        (S.WITHDRAWN, "closed", "민원이 취하됐습니다."),
        (S.CLOSED, "closed", "민원이 종결됐습니다."),
    ],
)
async def test_the_lifecycle_maps_to_open_or_closed_with_a_korean_note(
    stack: Stack, state: ComplaintState, status: str, note: str
) -> None:
    filed = await stack.file()
    await stack.assign(filed)
    await stack.move(filed, 3, state)

    [request] = (await stack.get(f"requests/{filed.complaint_id}.json")).json()

    assert (request["status"], request["status_notes"]) == (status, note)


async def test_an_unknown_id_is_a_404(stack: Stack) -> None:
    response = await stack.get("requests/9b2f1c4e-7d3a-4e8b-9c61-2a5f0e8d4b17.json")

    assert response.status_code == 404
    [error] = response.json()
    assert error["code"] == 404
    assert error["description"].startswith("service_request_id: ")


async def test_the_list_filters_by_status_service_code_and_window(stack: Stack) -> None:
    sofa = await stack.file()
    await stack.assign(sofa)
    light = await stack.file(service_code="street-light", description="가로등이 꺼졌어요")
    await stack.move(light, 1, S.RESOLVED)
    stack.clock.now = T0 + timedelta(days=1)

    async def ids(**params: str) -> list[str]:
        response = await stack.get("requests.json", **params)
        assert response.status_code == 200, response.text
        assert_nothing_personal(response.text)
        return [r["service_request_id"] for r in response.json()]

    assert await ids() == [light.complaint_id, sofa.complaint_id]
    assert await ids(status="open") == [sofa.complaint_id]
    assert await ids(status="closed") == [light.complaint_id]
    assert await ids(status="open,closed") == [light.complaint_id, sofa.complaint_id]
    assert await ids(service_code="street-light") == [light.complaint_id]
    assert await ids(service_code="street-light,waste-bulky", status="open") == [sofa.complaint_id]
    assert await ids(start_date="2026-12-01T09:05:00+09:00") == [light.complaint_id]
    assert await ids(end_date="2026-12-01T09:05:00+09:00") == [sofa.complaint_id]
    assert await ids(start_date="2026-11-01T00:00:00", end_date="2026-11-30T00:00:00") == []
    assert await ids(service_request_id=f"{sofa.complaint_id},nobody") == [sofa.complaint_id]


async def test_services_about_a_residents_own_circumstances_are_not_listed(
    stack: Stack,
) -> None:
    welfare = await stack.file(service_code="at-risk", description="옆집 어르신이 걱정돼요")
    stack.clock.now = T0 + timedelta(days=1)

    listed = (await stack.get("requests.json")).json()
    [by_id] = (await stack.get(f"requests/{welfare.complaint_id}.json")).json()

    assert listed == []
    assert by_id["service_code"] == "at-risk"
    assert by_id["description"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"start_date": "yesterday"}, "start_date", id="not-a-date"),
        pytest.param(
            {"start_date": "2026-01-01T00:00:00+09:00", "end_date": "2026-12-01T00:00:00+09:00"},
            "start_date",
            id="more-than-90-days",
        ),
        pytest.param(
            {"start_date": "2026-12-01T00:00:00+09:00", "end_date": "2026-11-01T00:00:00+09:00"},
            "start_date",
            id="reversed",
        ),
        pytest.param({"status": "pending"}, "status", id="status"),
        pytest.param({"service_code": "no-such"}, "service_code", id="service-code"),
    ],
)
async def test_a_bad_query_is_a_400_naming_the_field(
    stack: Stack, params: dict[str, str], field: str
) -> None:
    response = await stack.get("requests.json", **params)

    assert response.status_code == 400
    assert response.json()[0]["description"].startswith(f"{field}: ")


async def test_a_token_is_the_receipt_number(stack: Stack) -> None:
    filed = await stack.file()

    found = await stack.get(f"tokens/{filed.receipt_number}.json")
    as_xml = await stack.get(f"tokens/{filed.receipt_number}.xml")
    unknown = await stack.get("tokens/261201-999999.json")

    assert found.json() == [
        {"service_request_id": filed.complaint_id, "token": filed.receipt_number}
    ]
    assert parse_xml(as_xml.content).findtext("request/service_request_id") == filed.complaint_id
    assert unknown.status_code == 404
    assert unknown.json()[0]["description"].startswith("token: ")


async def test_updates_list_the_latest_change_in_the_window(stack: Stack) -> None:
    sofa = await stack.file()
    await stack.assign(sofa)
    light = await stack.file(service_code="street-light", description="가로등이 꺼졌어요")
    await stack.move(light, 1, S.RESOLVED)
    stack.clock.now = T0 + timedelta(days=1)

    response = await stack.get("servicerequestupdates.json", start_date="2026-12-01T09:05:00")
    as_xml = await stack.get("servicerequestupdates.xml", start_date="2026-12-01T09:05:00")

    [update] = response.json()
    assert update == {
        "update_id": f"{light.complaint_id}@2026-12-01T09:11:00+09:00",
        "service_request_id": light.complaint_id,
        "status": "closed",
        "updated_datetime": "2026-12-01T09:11:00+09:00",
        "description": "민원이 처리 완료됐습니다.",
        "media_url": "",
    }
    root = parse_xml(as_xml.content)
    assert root.tag == "service_request_updates"
    assert root.findtext("request_update/status") == "closed"


async def test_without_the_tracker_the_gets_answer_503_in_the_spec_shape() -> None:
    app = create_app(
        IntakeSettings(),
        store=InMemorySubmissionStore(),
        publish=RecordingPublish(),
        tracker=TrackerClient(httpx.AsyncClient(base_url="http://unused"), None),
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        response = await http.get("/open311/v2/requests.json")

    assert response.status_code == 503
    assert response.json()[0]["code"] == 503


@pytest.mark.parametrize(
    "request_id",
    ["not-a-uuid", "9B2F1C4E-7D3A-4E8B-9C61-2A5F0E8D4B17", "x%3Fdepartment=roads"],
)
async def test_an_id_intake_never_issued_is_a_404(stack: Stack, request_id: str) -> None:
    response = await stack.get(f"requests/{request_id}.json")

    assert response.status_code == 404
    assert response.json()[0]["code"] == 404


async def test_an_id_in_capitals_finds_the_request(stack: Stack) -> None:
    filed = await stack.file()

    response = await stack.get(f"requests/{filed.complaint_id.upper()}.json")

    assert response.status_code == 200
    assert response.json()[0]["service_request_id"] == filed.complaint_id


async def test_a_request_routing_has_not_recorded_yet_is_listed_as_open(stack: Stack) -> None:
    sofa = await stack.file()
    light = await stack.file(service_code="street-light", description="가로등이 꺼졌어요")
    await stack.move(light, 1, S.RESOLVED)

    opened = (await stack.get("requests.json", status="open")).json()
    closed = (await stack.get("requests.json", status="closed")).json()

    assert [r["service_request_id"] for r in opened] == [sofa.complaint_id]
    assert [r["service_request_id"] for r in closed] == [light.complaint_id]


async def test_a_description_masks_every_way_a_resident_writes_personal_data(
    stack: Stack,
) -> None:
    """Forms the first masking missed: an RRN without its hyphen, a phone written with
    spaces or as +82, an address touching Hangul. The receipt number and amounts stay."""
    description = (
        "소파 수거 9001011234567 연락 010 9876 5432 또는 +82 10-2222-3333, "
        "메일hong@example.kr로, 15,000원 냈어요"
    )
    filed = await stack.file(description=description)
    await stack.assign(filed)

    response = await stack.get(f"requests/{filed.complaint_id}.json")

    [request] = response.json()
    assert request["description"].startswith(
        "소파 수거 ******-******* 연락 010-****-5432 또는 +82-10-****-3333, "
        "메일h***@example.kr로, 15,000원 냈어요"
    )
    assert request["service_notice"] == filed.receipt_number
