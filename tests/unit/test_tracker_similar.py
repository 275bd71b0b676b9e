"""'이미 접수된 민원이 있어요': public summaries of likely duplicates, bounded and
rate-limited, with nothing about another reporter."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from schemas import ComplaintState
from schemas.common import Location
from services.ratelimit import Buckets, Rate
from tests.unit.test_tracker_api import Tracker, running
from tests.unit.test_tracker_projection import T0, change, filed

S = ComplaintState
DEPT = "roads"


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    async with running(clock=lambda: T0 + timedelta(days=1)) as tracker:
        yield tracker


async def routed(
    tracker: Tracker, cid: str, *, dong: str = "청라1동", state: S = S.SITE_CHECK, **fields: object
) -> None:
    location = Location(address="인천 서구 청라커낼로 100", dong=dong)
    await tracker.deliver(
        filed(cid).model_copy(update={"location": location} | fields),
        change(cid, 1, None, S.RECEIVED, trigger="file"),
        change(
            cid,
            2,
            S.RECEIVED,
            S.ASSIGNED,
            trigger="assign",
            department=DEPT,
            department_name="도로과",
        ),
        change(cid, 3, S.ASSIGNED, state, trigger="t"),
    )


async def ask(tracker: Tracker, **params: str) -> list[dict[str, object]]:
    response = await tracker.get("/v1/complaints/similar", **params)
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


async def test_an_open_complaint_at_the_same_place_is_offered_without_anything_personal(
    tracker: Tracker,
) -> None:
    await routed(tracker, "c1")
    [item] = await ask(
        tracker, service_code="street-light", dong="청라1동", text="주민센터 앞 가로등이 꺼졌어요"
    )
    assert item == {
        "complaint_id": "c1",
        "state": "site_check",
        "department_name": "도로과",
        "dong": "청라1동",
        "filed_on": "2025-03-03",
        "similarity": item["similarity"],
    }
    shown = str(item)
    for private in ("홍길동", "010", "청라커낼로", "250303-000042", "일주일째"):
        assert private not in shown


async def test_other_places_other_problems_and_closed_cases_are_not_offered(
    tracker: Tracker,
) -> None:
    await routed(tracker, "elsewhere", dong="청라2동")
    await routed(tracker, "done", state=S.RESOLVED)
    await routed(tracker, "pothole", body="도로에 포트홀이 생겨서 타이어가 찢어졌어요", title=None)
    found = await ask(tracker, department=DEPT, dong="청라1동", text="가로등이 꺼져 있어요")
    assert found == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"dong": "청라1동", "text": "가로등"}, "department"),
        ({"department": "nowhere", "dong": "청라1동", "text": "가로등"}, "department"),
        ({"service_code": "no-such", "dong": "청라1동", "text": "가로등"}, "service_code"),
        (
            {
                "department": "parks",
                "service_code": "street-light",
                "dong": "청라1동",
                "text": "가로등",
            },
            "department",
        ),
    ],
)
async def test_a_bad_query_names_the_field(
    tracker: Tracker, params: dict[str, str], field: str
) -> None:
    response = await tracker.get("/v1/complaints/similar", **params)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(field)


async def test_too_many_lookups_from_one_caller_are_refused() -> None:
    async with running(similar_per_minute=2) as tracker:
        params = {"department": DEPT, "dong": "청라1동", "text": "가로등"}
        codes = [
            (await tracker.get("/v1/complaints/similar", **params)).status_code for _ in range(3)
        ]
        assert codes == [200, 200, 429]


def test_the_limiter_refills_and_forgets_the_least_recent_caller() -> None:
    now = [0.0]
    limiter = Buckets(Rate(2, 60), max_keys=2, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    now[0] += 30  # one token back
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    limiter.allow("b")
    limiter.allow("c")  # "a" is forgotten: memory stays bounded
    assert set(limiter._buckets) == {"b", "c"}
