"""Open311 discovery, services and service definitions: the catalogue's service codes in
JSON and XML, as the GeoReport v2 specification shapes them."""

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from intake.app import create_app
from intake.open311.services import (
    SERVICES,
    Open311Services,
    ServiceData,
    open311_services,
)
from intake.settings import IntakeSettings
from intake.tracker_client import TrackerClient
from schemas.catalogue import catalogue
from tests.fakes.intake import InMemorySubmissionStore, RecordingPublish

BASE = "/open311/v2"


def parse_xml(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 -- the answer of the server under test


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        IntakeSettings(open311_keys={"app": SecretStr("k")}),
        store=InMemorySubmissionStore(),
        publish=RecordingPublish(),
        tracker=TrackerClient(httpx.AsyncClient(base_url="http://unused"), None),
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield client


def test_every_catalogue_service_code_has_a_korean_name_and_no_text_lacks_a_code() -> None:
    services = open311_services()
    codes = [c for d in catalogue().departments for c in d.service_codes]

    assert [s.code for s in services.services] == codes
    assert all(s.text.service_name and s.text.description for s in services.services)


def test_a_text_for_a_code_the_catalogue_lacks_is_refused() -> None:
    raw = json.loads(SERVICES.read_text(encoding="utf-8"))
    raw["services"].append(raw["services"][0] | {"service_code": "no-such-service"})

    with pytest.raises(ValueError, match="no-such-service"):
        Open311Services.join(ServiceData.model_validate(raw), catalogue())


async def test_services_json_lists_every_code_with_its_department_as_group(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(f"{BASE}/services.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    services = {s["service_code"]: s for s in response.json()}
    assert len(services) == len(open311_services().services)
    assert services["waste-bulky"] == {
        "service_code": "waste-bulky",
        "service_name": "대형폐기물",
        "description": "가구·가전 등 대형폐기물의 배출과 수거에 관한 민원",
        "metadata": True,
        "type": "realtime",
        "keywords": "",
        "group": "자원순환과",
    }
    assert services["road-surface"]["metadata"] is False
    assert services["road-surface"]["group"] == "도로과"


async def test_services_xml_has_the_same_services(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/services.xml")

    assert response.headers["content-type"].startswith("text/xml")
    root = parse_xml(response.content)
    assert root.tag == "services"
    first = root.findall("service")[0]
    assert first.findtext("service_code") == "waste-bulky"
    assert first.findtext("service_name") == "대형폐기물"
    assert first.findtext("metadata") == "true"
    assert first.findtext("group") == "자원순환과"
    assert len(root.findall("service")) == len(open311_services().services)


async def test_a_service_definition_lists_its_attributes(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/services/waste-bulky.json")

    assert response.status_code == 200
    definition = response.json()
    assert definition["service_code"] == "waste-bulky"
    item, count = definition["attributes"]
    assert (item["code"], item["datatype"], item["required"], item["order"]) == (
        "item_type",
        "singlevaluelist",
        True,
        1,
    )
    assert {"key": "sofa", "name": "소파"} in item["values"]
    assert (count["code"], count["datatype"], count["variable"]) == ("item_count", "number", True)


async def test_a_service_definition_in_xml_nests_attributes_and_values(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(f"{BASE}/services/waste-bulky.xml")

    root = parse_xml(response.content)
    assert root.tag == "service_definition"
    [item, _] = root.findall("attributes/attribute")
    assert item.findtext("code") == "item_type"
    assert item.findtext("required") == "true"
    keys = [v.findtext("key") for v in item.findall("values/value")]
    assert "sofa" in keys


async def test_an_unknown_service_is_a_404_in_the_spec_shape(http: httpx.AsyncClient) -> None:
    as_json = await http.get(f"{BASE}/services/no-such.json")
    as_xml = await http.get(f"{BASE}/services/no-such.xml")

    assert as_json.status_code == 404
    [error] = as_json.json()
    assert error["code"] == 404
    assert "service_code" in error["description"]
    assert as_xml.status_code == 404
    root = parse_xml(as_xml.content)
    assert root.tag == "errors"
    assert root.findtext("error/code") == "404"


async def test_an_unknown_extension_is_a_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/services.csv")

    assert response.status_code == 404
    assert response.json() == [{"code": 404, "description": "format: use .json or .xml"}]


async def test_discovery_points_at_this_endpoint_in_both_formats(http: httpx.AsyncClient) -> None:
    as_json = (await http.get(f"{BASE}/discovery.json")).json()
    as_xml = parse_xml((await http.get(f"{BASE}/discovery.xml")).content)

    [endpoint] = as_json["endpoints"]
    assert endpoint["url"] == "http://intake/open311/v2"
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["formats"] == ["text/xml", "application/json"]
    assert as_xml.findtext("endpoints/endpoint/url") == "http://intake/open311/v2"
    assert [f.text for f in as_xml.findall("endpoints/endpoint/formats/format")] == [
        "text/xml",
        "application/json",
    ]
    assert "district to confirm" in as_json["contact"]
