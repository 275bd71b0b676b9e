"""Open311 on the real stack, as a new user would try it: a third-party GeoReport client
(PyPI ``georeport``, read-only) lists the services and reads a definition, a spec-form
POST files a request, and the client reads it back open with the department as
``agency_responsible`` once routing has assigned it — intake reading the tracker over
HTTP with a staff key, every service its own process. The app that filed it is pushed
each step at its registered webhook, signed; another app is pushed nothing of it."""

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from georeport import GeoReport

from sotong import localstack
from sotong.localstack import ServiceProcess
from tests.conftest import Backends
from tests.e2e.conftest import eventually
from tests.service.test_notifier_peers import FakeReceiver, http_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

APP_KEY = "e2e-open311-app-key"
OTHER_KEY = "e2e-open311-other-app-key"
APP_SECRET = "e2e-open311-app-webhook-secret"
OTHER_SECRET = "e2e-open311-other-webhook-secret"
STAFF_KEY = "e2e-intake-reads-tracker"
PERSONAL = ("홍길동", "010-1234-5678", "gildong@example.kr", "청라커낼로")


def parse_xml(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 -- the answer of the server under test


@dataclass
class Apps:
    """Two Open311 apps' webhook receivers (each verifies Sotong's signature)."""

    filer: FakeReceiver
    other: FakeReceiver


@pytest.fixture(scope="module")
def apps() -> Iterator[Apps]:
    with http_server() as server:
        yield Apps(
            FakeReceiver(server, "/push/e2e-app", APP_SECRET),
            FakeReceiver(server, "/push/other-app", OTHER_SECRET),
        )


@pytest.fixture(scope="module")
def open311(
    backends: Backends, apps: Apps, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The platform's processes; intake started last, pointed at the tracker's port."""
    root = tmp_path_factory.mktemp("open311")
    suffix = root.name.replace("-", "_")[-16:]
    env = backends.env(database=f"e2e_{suffix}", topic_prefix=f"e2e{suffix}.") | {
        "SOTONG_NOTIFIER_OUTBOX_PATH": str(root / "outbox.jsonl"),
        "SOTONG_TRACKER_STAFF_API_KEYS": json.dumps({"intake-open311": STAFF_KEY}),
        "SOTONG_INTAKE_OPEN311_KEYS": json.dumps({"e2e-app": APP_KEY, "other-app": OTHER_KEY}),
        "SOTONG_INTAKE_TRACKER_API_KEY": STAFF_KEY,
        "SOTONG_NOTIFIER_OPEN311_WEBHOOKS": json.dumps(
            {
                "e2e-app": {"url": apps.filer.url, "secret": APP_SECRET},
                "other-app": {"url": apps.other.url, "secret": OTHER_SECRET},
            }
        ),
    }
    services: dict[str, ServiceProcess] = {}
    try:
        services |= localstack.start_services(
            env, root / "logs", names=("routing", "tracker", "notifier")
        )
        services |= localstack.start_services(
            env | {"SOTONG_INTAKE_TRACKER_URL": services["tracker"].url},
            root / "logs",
            names=("intake",),
        )
        yield f"{services['intake'].url}/open311/v2"
    finally:
        for proc in services.values():
            proc.child.stop()


async def test_a_georeport_client_lists_files_and_reads_back(open311: str, apps: Apps) -> None:
    client = GeoReport(open311)

    services = await asyncio.to_thread(client.get_service_list)
    definition = await asyncio.to_thread(client.get_service_definition, "waste-bulky")
    bulky = next(s for s in services if s["service_code"] == "waste-bulky")
    assert (bulky["service_name"], bulky["group"], bulky["metadata"]) == (
        "대형폐기물",
        "자원순환과",
        True,
    )
    assert [a["code"] for a in definition["attributes"]] == ["item_type", "item_count"]

    async with httpx.AsyncClient(timeout=30) as http:
        filed = await http.post(
            f"{open311}/requests.json",
            data={
                "api_key": APP_KEY,
                "service_code": "waste-bulky",
                "address_string": "인천 서구 청라커낼로 100",
                "attribute[dong]": "청라1동",
                "description": "소파 하나를 내놓았어요",
                "first_name": "길동",
                "last_name": "홍",
                "phone": "010-1234-5678",
                "email": "gildong@example.kr",
                "attribute[item_type]": "sofa",
                "attribute[item_count]": "1",
            },
        )
    assert filed.status_code == 201, filed.text
    [answer] = filed.json()
    request_id = answer["service_request_id"]

    async def assigned() -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await asyncio.to_thread(client.get_service_request, request_id)
        except Exception:  # a 404 until the tracker has stored the filing
            return None
        return found if found["agency_responsible"] else None

    request = await eventually(assigned, within=90, what="the request assigned")
    assert request["status"] == "open"
    assert request["agency_responsible"] == "자원순환과"
    assert request["service_notice"] == answer["service_notice"]
    assert request["service_code"] == "waste-bulky"
    assert request["expected_datetime"]
    assert request["dong"] == "청라1동"
    assert not any(p in json.dumps(request, ensure_ascii=False) for p in PERSONAL)

    xml_client = GeoReport(open311, output_format="xml")
    as_xml = await asyncio.to_thread(xml_client.get_service_request, request_id)
    assert as_xml["agency_responsible"] == "자원순환과"

    # the app that filed it is pushed its steps, signed for it alone (FakeReceiver
    # accepts only a valid signature), without anything about the resident
    def pushed(receiver: FakeReceiver) -> list[dict[str, Any]]:
        return [
            e["data"] for e in receiver.events() if e["data"]["service_request_id"] == request_id
        ]

    async def assigned_pushed() -> list[dict[str, Any]] | None:
        updates = pushed(apps.filer)
        return updates if any(u["sotong_state"] == "assigned" for u in updates) else None

    updates = await eventually(assigned_pushed, within=90, what="the assignment pushed")
    assignment = next(u for u in updates if u["sotong_state"] == "assigned")
    assert assignment["status"] == "open"
    assert assignment["agency_responsible"] == "자원순환과"
    assert assignment["service_notice"] == answer["service_notice"]
    assert assignment["description"].startswith("담당 부서에 배정됐습니다.")
    assert {e["type"] for e in apps.filer.events()} == {
        "kr.go.sotong.open311.service_request_update.v1"
    }
    assert apps.filer.refused_signatures == 0
    assert not any(p in json.dumps(apps.filer.events(), ensure_ascii=False) for p in PERSONAL)
    assert pushed(apps.other) == []


async def test_a_spec_form_post_in_xml_and_its_token(open311: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        filed = await http.post(
            f"{open311}/requests.xml",
            data={
                "api_key": APP_KEY,
                "service_code": "street-light",
                "lat": "37.5452",
                "long": "126.6760",
                "description": "가로등이 꺼졌어요",
            },
        )
        refused = await http.post(
            f"{open311}/requests.xml", data={"api_key": "wrong", "service_code": "noise"}
        )
        assert filed.status_code == 201, filed.text
        root = parse_xml(filed.content)
        request_id = root.findtext("request/service_request_id")
        receipt = root.findtext("request/service_notice")
        assert refused.status_code == 403
        assert parse_xml(refused.content).findtext("error/code") == "403"

        async def by_token() -> list[dict[str, str]] | None:
            response = await http.get(f"{open311}/tokens/{receipt}.json")
            return response.json() if response.status_code == 200 else None

        found = await eventually(by_token, within=60, what="the token found")
        assert found == [{"service_request_id": request_id, "token": receipt}]

        async def listed_open() -> bool:
            listed = await http.get(
                f"{open311}/requests.json",
                params={"status": "open", "service_code": "street-light"},
            )
            return request_id in [r["service_request_id"] for r in listed.json()]

        await eventually(listed_open, within=60, what="the request listed as open street light")
