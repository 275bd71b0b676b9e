"""Filing through Open311: spec-form POSTs (``application/x-www-form-urlencoded``) file
through the same path as every channel, with channel ``open311``, and answer
``[{service_request_id, service_notice, account_id}]``; every refusal names its field."""

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from intake.app import create_app
from intake.open311.form import resident_name
from intake.settings import IntakeSettings
from intake.tracker_client import TrackerClient
from schemas import ComplaintFiled, topics
from tests.fakes.intake import InMemorySubmissionStore, RecordingPublish

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
KEY = "fixmystreet-app-key"
FORM = {
    "api_key": KEY,
    "service_code": "waste-bulky",
    "lat": "37.5452",
    "long": "126.6760",
    "description": "집 앞에 소파를 내놓았어요",
    "first_name": "길동",
    "last_name": "홍",
    "phone": "010-1234-5678",
    "email": "gildong@example.kr",
    "attribute[item_type]": "sofa",
    "attribute[item_count]": "2",
    "attribute[dong]": "청라1동",
    "device_id": "device-1",
    "account_id": "account-7",
}


def parse_xml(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 -- the answer of the server under test


@dataclass
class Harness:
    http: httpx.AsyncClient
    store: InMemorySubmissionStore
    publish: RecordingPublish

    async def post(self, form: dict[str, Any], extension: str = "json") -> httpx.Response:
        return await self.http.post(f"/open311/v2/requests.{extension}", data=form)

    def filed(self) -> list[ComplaintFiled]:
        return [e for e in self.publish.on(topics.FILED) if isinstance(e, ComplaintFiled)]


@pytest.fixture
async def intake() -> AsyncIterator[Harness]:
    store, publish = InMemorySubmissionStore(), RecordingPublish()
    app = create_app(
        IntakeSettings(open311_keys={"fixmystreet": SecretStr(KEY)}),
        store=store,
        publish=publish,
        clock=lambda: NOW,
        tracker=TrackerClient(httpx.AsyncClient(base_url="http://unused"), None),
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        yield Harness(http, store, publish)


async def test_a_spec_form_post_files_one_complaint_on_the_open311_channel(
    intake: Harness,
) -> None:
    response = await intake.post(FORM)

    assert response.status_code == 201, response.text
    [event] = intake.filed()
    assert response.json() == [
        {
            "service_request_id": event.complaint_id,
            "service_notice": event.receipt_number,
            "account_id": "account-7",
        }
    ]
    assert event.channel == "open311"
    assert event.service_code == "waste-bulky"
    assert event.title == "대형폐기물"
    assert event.body == (
        "집 앞에 소파를 내놓았어요\n\n[대형폐기물]\n버릴 물건의 종류: 소파\n물건의 개수: 2"
    )
    assert event.resident.name == "홍길동"
    assert (event.resident.phone, event.resident.email) == ("010-1234-5678", "gildong@example.kr")
    assert event.location.dong == "청라1동"
    assert event.location.coordinates is not None
    assert (event.location.coordinates.lat, event.location.coordinates.lon) == (37.5452, 126.676)
    assert event.occurred_at == NOW
    assert "device-1" not in event.model_dump_json()


async def test_the_xml_answer_has_the_same_fields(intake: Harness) -> None:
    response = await intake.post(FORM, "xml")

    assert response.status_code == 201
    root = parse_xml(response.content)
    assert root.tag == "service_requests"
    [event] = intake.filed()
    assert root.findtext("request/service_request_id") == event.complaint_id
    assert root.findtext("request/service_notice") == event.receipt_number
    assert root.findtext("request/account_id") == "account-7"


async def test_the_smallest_request_files_with_an_address_and_the_dong_field(
    intake: Harness,
) -> None:
    form = {
        "api_key": KEY,
        "service_code": "street-light",
        "address_string": "인천 서구 청라커낼로 100",
        "dong": "청라1동",
    }

    response = await intake.post(form)

    assert response.status_code == 201, response.text
    [event] = intake.filed()
    assert event.body == "가로등"
    assert event.location.address == "인천 서구 청라커낼로 100"
    assert event.location.dong == "청라1동"
    assert response.json()[0]["account_id"] is None


async def test_a_multivaluelist_takes_several_values(intake: Harness) -> None:
    form = (
        f"api_key={KEY}&service_code=illegal-dumping&address_string=x"
        "&attribute[waste_type][]=food&attribute[waste_type][]=bulky&description=또 버렸어요"
    )

    response = await intake.http.post(
        "/open311/v2/requests.json",
        content=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 201, response.text
    [event] = intake.filed()
    assert event.body.endswith("버려진 쓰레기의 종류: 음식물, 대형폐기물")


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
async def test_a_missing_or_wrong_api_key_is_403(intake: Harness, key: str | None) -> None:
    form = {k: v for k, v in FORM.items() if k != "api_key"}
    if key is not None:
        form["api_key"] = key

    response = await intake.post(form)
    as_xml = await intake.post(form, "xml")

    assert response.status_code == 403
    assert response.json() == [{"code": 403, "description": "api_key: missing or not a valid key"}]
    assert as_xml.status_code == 403
    assert parse_xml(as_xml.content).findtext("error/code") == "403"
    assert intake.filed() == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"service_code": None}, "service_code", id="no-service"),
        pytest.param({"service_code": "no-such"}, "service_code", id="unknown-service"),
        pytest.param({"lat": None, "long": None}, "lat", id="no-location"),
        pytest.param({"long": None}, "long", id="lat-without-long"),
        pytest.param({"lat": "north"}, "lat", id="lat-not-a-number"),
        pytest.param({"lat": "51.5"}, "lat", id="lat-outside-korea"),
        pytest.param({"address_id": "A-1"}, "address_id", id="address-id"),
        pytest.param({"phone": "12345"}, "phone", id="phone"),
        pytest.param({"email": "not-an-address"}, "email", id="email"),
        pytest.param({"media_url": "not a url"}, "media_url", id="media-url"),
        pytest.param({"description": "가" * 4000}, "description", id="too-long"),
        pytest.param({"attribute[item_type]": None}, "attribute[item_type]", id="required"),
        pytest.param({"attribute[item_type]": "piano"}, "attribute[item_type]", id="not-listed"),
        pytest.param({"attribute[item_count]": "0"}, "attribute[item_count]", id="count-zero"),
        pytest.param({"attribute[colour]": "red"}, "attribute[colour]", id="unknown-attribute"),
        pytest.param({"dong": "가정1동"}, "dong", id="dong-differs"),
        pytest.param({"priority": "high"}, "priority", id="not-a-spec-field"),
    ],
)
async def test_a_bad_field_is_a_400_naming_it(
    intake: Harness, changes: dict[str, str | None], field: str
) -> None:
    form = {k: v for k, v in (FORM | changes).items() if v is not None}

    response = await intake.post(form)

    assert response.status_code == 400, response.text
    [error] = response.json()
    assert error["code"] == 400
    assert error["description"].startswith(f"{field}: ")
    assert intake.filed() == []


async def test_a_json_body_is_refused_with_the_content_type_named(intake: Harness) -> None:
    response = await intake.http.post(
        "/open311/v2/requests.json",
        content=b"api_key=" + KEY.encode() + b"&service_code=noise",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()[0]["description"].startswith("Content-Type: ")


def test_names_are_joined_in_korean_order_when_both_are_hangul() -> None:
    assert resident_name("길동", "홍") == "홍길동"
    assert resident_name("Jane", "Doe") == "Jane Doe"
    assert resident_name(None, "홍") == "홍"
    assert resident_name(None, None) is None


class BrokenStore(InMemorySubmissionStore):
    async def insert_many(self, records: Any) -> Any:
        raise RuntimeError("the database is gone")


async def test_a_failure_behind_the_post_is_a_500_in_the_spec_shape() -> None:
    app = create_app(
        IntakeSettings(open311_keys={"fixmystreet": SecretStr(KEY)}),
        store=BrokenStore(),
        publish=RecordingPublish(),
        clock=lambda: NOW,
        tracker=TrackerClient(httpx.AsyncClient(base_url="http://unused"), None),
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        response = await http.post("/open311/v2/requests.xml", data=FORM)

    assert response.status_code == 500
    assert parse_xml(response.content).findtext("error/code") == "500"
    assert "database" not in response.text
