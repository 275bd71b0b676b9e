"""What Open311 needs from the tracker's staff search: the service code in each hit, and
the service code and the receipt number as filters."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

from tests.unit.test_tracker_api import Tracker, running
from tests.unit.test_tracker_projection import T0, filed

STAFF_KEY = "staff-key-for-open311"


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    async with running(staff_api_keys={"open311": SecretStr(STAFF_KEY)}) as tracker:
        await tracker.deliver(
            filed("c-1", service_code="street-light", receipt_number="261202-000001"),
            filed(
                "c-2",
                service_code="waste-bulky",
                receipt_number="261202-000002",
                occurred_at=T0 + timedelta(hours=1),
            ),
        )
        yield tracker


@pytest.mark.parametrize(
    ("params", "found"),
    [
        pytest.param({}, ["c-2", "c-1"], id="all"),
        pytest.param({"service_code": "waste-bulky"}, ["c-2"], id="service-code"),
        pytest.param({"receipt_number": "261202-000001"}, ["c-1"], id="receipt-number"),
        pytest.param({"receipt_number": "261202-999999"}, [], id="unknown-receipt"),
    ],
)
async def test_search_filters_by_service_code_and_receipt_number(
    tracker: Tracker, params: dict[str, str], found: list[str]
) -> None:
    response = await tracker.get("/v1/search", STAFF_KEY, **params)

    assert response.status_code == 200, response.text
    assert [item["complaint_id"] for item in response.json()["items"]] == found


async def test_a_hit_and_a_staff_look_up_carry_the_service_code(tracker: Tracker) -> None:
    hits = (await tracker.get("/v1/search", STAFF_KEY)).json()["items"]
    one = (await tracker.get("/v1/staff/complaints/c-2", STAFF_KEY)).json()

    assert [hit["service_code"] for hit in hits] == ["waste-bulky", "street-light"]
    assert one["service_code"] == "waste-bulky"
