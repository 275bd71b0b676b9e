"""The read side over HTTP: residents, departments, staff search, statistics.

The app on the in-memory broker and store, through httpx's ASGI transport: no lifespan,
no sockets. The live timeline needs a real HTTP server (tests/service/test_tracker_read_api.py).
"""

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from schemas import ComplaintDeadlineAlert, ComplaintState, Location
from schemas.events import AlertKind, HandlerRef
from schemas.tokens import hash_token
from tests.unit.test_tracker_api import Tracker, running
from tests.unit.test_tracker_projection import T0, change, filed, rejection, story
from tracker.projection import TrackedEvent, project

S = ComplaintState
TOKEN = "tracking-token-of-c-1"
RESIDENT_A = "resident-token-of-a-0123456789"
RESIDENT_B = "resident-token-of-b-0123456789"
KEYS = {"roads": "key-roads", "parks": "key-parks"}
STAFF_KEY = "key-call-centre"
PERSONAL = ("홍길동", "010-1234-5678", "01012345678", "청라커낼로")
PARKS_HANDLER = HandlerRef(handler_id="h-40", name="박공원", office_phone="032-560-4000")
DEPARTMENT_KEYS = {code: SecretStr(key) for code, key in KEYS.items()}
STAFF_KEYS = {"call-centre": SecretStr(STAFF_KEY)}


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    # every count shown: these tests check the figures; suppression has its own tests
    async with running(
        api_keys=DEPARTMENT_KEYS, staff_api_keys=STAFF_KEYS, stats_min_cell=1
    ) as tracker:
        yield tracker


def district() -> list[TrackedEvent]:
    """Four complaints: three from resident A, one from B, in two departments."""
    one = story("c-1")
    one[0] = filed("c-1", token_hash=hash_token(TOKEN), resident_token_hash=hash_token(RESIDENT_A))
    two: list[TrackedEvent] = [
        filed(
            "c-2",
            resident_token_hash=hash_token(RESIDENT_A),
            occurred_at=T0 + timedelta(hours=1),
            title=None,
            body="집 앞에 쓰레기봉투가 일주일째 쌓여 있어요",
            location=Location(address="인천 서구 청라커낼로 100", dong="가정1동"),
        ),
        *[e for e in story("c-2")[2:7] if e.event_type == "complaint.status_changed"],
        ComplaintDeadlineAlert(
            complaint_id="c-2",
            receipt_number="250303-000042",
            kind=AlertKind.BREACH,
            state=S.HANDLER_ASSIGNED,
            received_at=T0,
            due_at=T0 + timedelta(days=7),
        ),
    ]
    three: list[TrackedEvent] = [
        filed(
            "c-3",
            resident_token_hash=hash_token(RESIDENT_A),
            occurred_at=T0 + timedelta(hours=2),
            title="벤치 파손",
            body="공원 벤치가 부서졌어요",
        ),
        *[e for e in story("c-3")[2:7] if e.event_type == "complaint.status_changed"],
        change(
            "c-3",
            4,
            S.HANDLER_ASSIGNED,
            S.ASSIGNED,
            trigger="transfer",
            department="parks",
            department_name="공원녹지과",
            note="공원 시설물",
            actor="roads",
        ),
        change("c-3", 5, S.ASSIGNED, S.HANDLER_ASSIGNED, department="parks", handler=PARKS_HANDLER),
    ]
    four: list[TrackedEvent] = [
        filed(
            "c-4",
            resident_token_hash=hash_token(RESIDENT_B),
            occurred_at=T0 + timedelta(hours=3),
            title="가로등 교체",
            body="LED 가로등으로 교체해 주세요",
        ),
        *[e for e in story("c-4")[2:] if e.event_type == "complaint.status_changed"],
        change(
            "c-4",
            5,
            S.SITE_CHECK,
            S.RESOLVED,
            trigger="resolve",
            note="교체 완료",
            due_at=T0 + timedelta(days=7),
        ),
    ]
    return [*one, *two, *three, *four]


@pytest.fixture
async def district_tracker(tracker: Tracker) -> Tracker:
    await tracker.deliver(*district())
    return tracker


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["complaint_id"] for item in response.json()["items"]]


def assert_nothing_personal(text: str) -> None:
    for personal in PERSONAL:
        assert personal not in text


# -- residents ------------------------------------------------------------------------


async def test_a_resident_token_lists_that_residents_complaints_newest_first(
    district_tracker: Tracker,
) -> None:
    tracker = district_tracker
    mine = await tracker.http.get(
        "/v1/residents/me/complaints", headers={"X-Resident-Token": RESIDENT_A}
    )
    theirs = await tracker.http.get(
        "/v1/residents/me/complaints", headers={"X-Resident-Token": RESIDENT_B}
    )

    assert ids(mine) == ["c-3", "c-2", "c-1"]
    assert ids(theirs) == ["c-4"]
    first = mine.json()["items"][2]
    assert first["state"] == "site_check"
    assert first["department"] == {"code": "roads", "name": "도로과"}
    assert first["handler"] == {"name": "김담당", "office_phone": "032-560-1234"}
    assert mine.json()["items"][0]["department"]["code"] == "parks"
    assert mine.json()["items"][1]["overdue"] is True
    assert_nothing_personal(mine.text)


async def test_a_residents_list_is_paged(district_tracker: Tracker) -> None:
    headers = {"X-Resident-Token": RESIDENT_A}

    first = await district_tracker.http.get(
        "/v1/residents/me/complaints", headers=headers, params={"limit": 2}
    )
    rest = await district_tracker.http.get(
        "/v1/residents/me/complaints", headers=headers, params={"limit": 2, "offset": 2}
    )

    assert ids(first) == ["c-3", "c-2"]
    assert first.json()["total"] == 3
    assert first.json()["next_offset"] == 2
    assert ids(rest) == ["c-1"]
    assert rest.json()["next_offset"] is None


async def test_an_unknown_resident_token_has_no_complaints_and_none_is_refused(
    district_tracker: Tracker,
) -> None:
    unknown = await district_tracker.http.get(
        "/v1/residents/me/complaints", headers={"X-Resident-Token": "x" * 32}
    )
    missing = await district_tracker.http.get("/v1/residents/me/complaints")

    assert ids(unknown) == []
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "resident_token_required"


async def test_the_resident_token_opens_each_of_the_residents_own_complaints(
    district_tracker: Tracker,
) -> None:
    headers = {"X-Resident-Token": RESIDENT_A}

    own = await district_tracker.http.get("/v1/complaints/c-2", headers=headers)
    other = await district_tracker.http.get("/v1/complaints/c-4", headers=headers)
    unknown = await district_tracker.http.get("/v1/complaints/c-9", headers=headers)

    assert own.status_code == 200
    assert own.json()["state"] == "handler_assigned"
    assert own.json()["resident"] == {"name": "홍*동"}
    assert other.status_code == unknown.status_code == 404
    assert other.json() == unknown.json()


# -- departments ----------------------------------------------------------------------


async def test_a_departments_queue_is_its_open_complaints_overdue_first(
    district_tracker: Tracker,
) -> None:
    response = await district_tracker.get("/v1/departments/roads/queue", KEYS["roads"])

    assert ids(response) == ["c-2", "c-1"]  # c-3 moved to parks, c-4 is resolved
    queue = response.json()
    assert queue["department"] == "roads"
    assert queue["counts"] == {"handler_assigned": 1, "site_check": 1}
    assert [item["overdue"] for item in queue["items"]] == [True, False]
    assert queue["items"][1]["title"] == "가로등 고장"
    assert queue["items"][0]["dong"] == "가정1동"
    assert_nothing_personal(response.text)
    assert "일주일째" not in response.text  # nor the body


async def test_a_queue_filters_by_open_state_and_pages(district_tracker: Tracker) -> None:
    key = KEYS["roads"]

    site_check = await district_tracker.get("/v1/departments/roads/queue", key, state="site_check")
    paged = await district_tracker.get("/v1/departments/roads/queue", key, limit=1, offset=1)
    closed = await district_tracker.get("/v1/departments/roads/queue", key, state="resolved")

    assert ids(site_check) == ["c-1"]
    assert ids(paged) == ["c-1"]
    assert paged.json()["total"] == 2
    assert closed.status_code == 422


async def test_the_transferred_complaint_is_in_the_new_departments_queue(
    district_tracker: Tracker,
) -> None:
    response = await district_tracker.get("/v1/departments/parks/queue", KEYS["parks"])

    assert ids(response) == ["c-3"]
    item = response.json()["items"][0]
    assert item["transfer_count"] == 1
    assert item["handler"] == {"name": "박공원", "office_phone": "032-560-4000"}


@pytest.mark.parametrize(
    ("key", "status"),
    [(None, 401), ("not-a-key", 401), (KEYS["parks"], 403), (STAFF_KEY, 401)],
)
async def test_a_queue_needs_that_departments_key(
    district_tracker: Tracker, key: str | None, status: int
) -> None:
    response = await district_tracker.get("/v1/departments/roads/queue", key)

    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message"}


async def test_the_responsible_department_sees_the_residents_contact(
    district_tracker: Tracker,
) -> None:
    response = await district_tracker.get("/v1/departments/roads/complaints/c-1", KEYS["roads"])

    assert response.status_code == 200
    complaint = response.json()
    assert complaint["resident"] == {
        "name": "홍길동",
        "phone": "010-1234-5678",
        "email": None,
        "address": "인천 서구 청라커낼로 100",
    }
    assert complaint["body"] == "청라1동 주민센터 앞 가로등이 일주일째 꺼져 있습니다."
    assert complaint["auto_routed"] is True
    assert [entry["state"] for entry in complaint["timeline"]] == [
        "received",
        "assigned",
        "handler_assigned",
        "site_check",
    ]


@pytest.mark.parametrize(
    ("code", "complaint_id", "status"),
    [
        pytest.param("roads", "c-3", 404, id="transferred-away"),
        pytest.param("roads", "c-9", 404, id="unknown"),
        pytest.param("parks", "c-1", 403, id="another-departments-path"),
    ],
)
async def test_a_department_never_sees_another_departments_complaint(
    district_tracker: Tracker, code: str, complaint_id: str, status: int
) -> None:
    response = await district_tracker.get(
        f"/v1/departments/{code}/complaints/{complaint_id}", KEYS["roads"]
    )

    assert response.status_code == status
    assert_nothing_personal(response.text)


async def test_the_new_department_sees_a_transferred_complaint(district_tracker: Tracker) -> None:
    response = await district_tracker.get("/v1/departments/parks/complaints/c-3", KEYS["parks"])

    assert response.status_code == 200
    assert response.json()["transfer_count"] == 1
    assert response.json()["resident"]["name"] == "홍길동"


# -- staff search ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "found"),
    [
        pytest.param({"q": "가로등"}, ["c-4", "c-1"], id="one-word"),
        pytest.param({"q": "가로등이 꺼졌어요"}, ["c-1"], id="every-word-inflected"),
        pytest.param({"q": "led"}, ["c-4"], id="latin-any-case"),
        pytest.param({"q": "쓰레기 봉투"}, ["c-2"], id="spacing"),
        pytest.param({"q": "홍길동"}, [], id="names-are-not-searchable"),
        pytest.param({"state": "resolved"}, ["c-4"], id="state"),
        pytest.param({"department": "parks"}, ["c-3"], id="department"),
        pytest.param({"dong": "가정1동"}, ["c-2"], id="dong"),
        pytest.param({"overdue": "true"}, ["c-2"], id="overdue"),
        pytest.param(
            {"from": "2025-03-03T09:30:00", "to": "2025-03-03T11:30:00"}, ["c-3", "c-2"], id="kst"
        ),
        pytest.param({"from": "2025-03-03T01:30:00Z"}, ["c-4", "c-3"], id="utc"),
        pytest.param({"q": "가로등", "state": "site_check"}, ["c-1"], id="combined"),
    ],
)
async def test_staff_search(
    district_tracker: Tracker, params: dict[str, str], found: list[str]
) -> None:
    response = await district_tracker.get("/v1/search", STAFF_KEY, **params)

    assert ids(response) == found
    assert response.json()["total"] == len(found)
    assert_nothing_personal(json.dumps(response.json()["items"], ensure_ascii=False))


async def test_search_results_show_an_excerpt_and_the_terms_used(
    district_tracker: Tracker,
) -> None:
    response = await district_tracker.get("/v1/search", STAFF_KEY, q="가로등이 꺼졌어요")

    assert response.json()["terms"] == ["가로등", "꺼지"]
    hit = response.json()["items"][0]
    assert hit["excerpt"] == "청라1동 주민센터 앞 가로등이 일주일째 꺼져 있습니다."
    assert hit["department"] == {"code": "roads", "name": "도로과"}


async def test_a_department_key_searches_its_own_complaints_only(
    district_tracker: Tracker,
) -> None:
    own = await district_tracker.get("/v1/search", KEYS["parks"])
    other = await district_tracker.get("/v1/search", KEYS["parks"], department="roads")
    anonymous = await district_tracker.get("/v1/search", None, q="가로등")

    assert ids(own) == ["c-3"]
    assert other.status_code == 403
    assert anonymous.status_code == 401


# -- one complaint by id, for staff ---------------------------------------------------------


async def test_staff_look_a_complaint_up_by_id_without_personal_data(
    district_tracker: Tracker,
) -> None:
    response = await district_tracker.get("/v1/staff/complaints/c-3", STAFF_KEY)

    assert response.status_code == 200
    found = response.json()
    assert found["department"] == {"code": "parks", "name": "공원녹지과"}
    assert found["state"] == "handler_assigned"
    assert found["handler"] == {"name": "박공원", "office_phone": "032-560-4000"}
    assert found["transfer_count"] == 1
    assert found["excerpt"] == "공원 벤치가 부서졌어요"
    searched = await district_tracker.get("/v1/search", STAFF_KEY, department="parks")
    assert set(found) == set(searched.json()["items"][0])
    assert_nothing_personal(response.text)
    assert "token" not in response.text


async def test_a_complaint_not_routed_yet_has_no_department(tracker: Tracker) -> None:
    await tracker.deliver(filed("c-1"))

    response = await tracker.get("/v1/staff/complaints/c-1", STAFF_KEY)

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["department"]) == (None, None)


@pytest.mark.parametrize(
    ("key", "complaint_id", "status"),
    [
        pytest.param(STAFF_KEY, "c-9", 404, id="staff-unknown-id"),
        pytest.param(KEYS["parks"], "c-3", 200, id="department-its-own"),
        pytest.param(KEYS["roads"], "c-3", 404, id="department-transferred-away"),
        pytest.param(KEYS["roads"], "c-9", 404, id="department-unknown-id"),
        pytest.param(None, "c-3", 401, id="no-key"),
        pytest.param("not-a-key", "c-3", 401, id="wrong-key"),
    ],
)
async def test_who_may_look_a_complaint_up(
    district_tracker: Tracker, key: str | None, complaint_id: str, status: int
) -> None:
    response = await district_tracker.get(f"/v1/staff/complaints/{complaint_id}", key)

    assert response.status_code == status
    if status != 200:
        assert set(response.json()["error"]) == {"code", "message"}
    if status == 404:
        assert response.json()["error"]["message"] == "No complaint has this id."


# -- statistics -----------------------------------------------------------------------


PERIOD = {"from": "2025-03-01T00:00:00", "to": "2025-04-01T00:00:00"}


async def stats(tracker: Tracker, **params: str) -> httpx.Response:
    return await tracker.http.get(
        "/v1/stats", params=PERIOD | params, headers={"X-Api-Key": STAFF_KEY}
    )


async def test_statistics_over_the_district(district_tracker: Tracker) -> None:
    response = await stats(district_tracker)

    assert response.status_code == 200
    figures = response.json()
    assert figures["complaints"] == 4
    assert figures["by_state"] == {"handler_assigned": 2, "resolved": 1, "site_check": 1}
    assert figures["by_department"]["roads"]["total"] == 3
    assert figures["by_department"]["parks"]["by_state"] == {"handler_assigned": 1}
    assert figures["transfer_rate"] == {"numerator": 1, "denominator": 4, "rate": 0.25}
    assert figures["auto_routing_rate"]["rate"] == 1.0
    assert figures["resolved_within_deadline"]["rate"] == 1.0
    assert figures["time_in_stage"]["received"] == {
        "count": 4,
        "median_seconds": 60.0,
        "p90_seconds": 60.0,
    }
    assert_nothing_personal(response.text)


async def test_statistics_are_for_staff_keys_only(district_tracker: Tracker) -> None:
    for headers in ({}, {"X-Api-Key": KEYS["roads"]}, {"X-Api-Key": "wrong"}):
        response = await district_tracker.http.get("/v1/stats", params=PERIOD, headers=headers)
        assert response.status_code == 401


async def test_a_statistics_period_is_bounded(district_tracker: Tracker) -> None:
    too_long = await stats(district_tracker, **{"from": "2024-01-01T00:00:00"})
    backwards = await stats(district_tracker, to="2025-02-01T00:00:00")
    for refused in (too_long, backwards):
        assert refused.status_code == 422
        assert refused.json()["error"]["message"].startswith("from:")
    default = await district_tracker.http.get("/v1/stats", headers={"X-Api-Key": STAFF_KEY})
    assert default.status_code == 200
    assert default.json()["complaints"] == 0  # the last 30 days hold none of 2025's


async def test_small_cells_are_withheld_by_default() -> None:
    async with running(api_keys=DEPARTMENT_KEYS, staff_api_keys=STAFF_KEYS) as tracker:
        await tracker.deliver(*district())
        figures = (await stats(tracker)).json()
    assert figures["min_cell"] == 5
    assert figures["complaints"] is None  # four complaints: one of them could be found
    assert set(figures["by_state"].values()) == {None}
    assert figures["by_department"]["parks"] == {
        "total": None,
        "by_state": {"handler_assigned": None},
        "repeated": 0,
        "linked": 0,
        "ratings": 0,  # issue 12: ratings per department (none here)
        "rating_mean": None,
    }
    assert figures["transfer_rate"] == {"numerator": None, "denominator": None, "rate": None}
    assert figures["time_in_stage"]["received"]["median_seconds"] is None


async def test_statistics_per_department_and_period(district_tracker: Tracker) -> None:
    parks = await stats(district_tracker, department="parks")
    later = await stats(district_tracker, **{"from": "2025-03-03T10:30:00"})

    assert parks.json()["complaints"] == 1
    assert later.json()["complaints"] == 2  # c-3 (11:00 KST) and c-4 (12:00)


# -- complaints nobody filed ------------------------------------------------------------


def unfiled(complaint_id: str) -> list[TrackedEvent]:
    """What reaches tracker for an id intake never issued (a mistyped command is refused),
    and for a complaint whose later events outran its filing: everything but the filing."""
    refused = rejection(complaint_id).model_copy(
        update={
            "event_id": f"{complaint_id}-refused",
            "occurred_at": T0,
            "code": "unknown_complaint",
            "reason_ko": "해당 민원을 찾을 수 없습니다.",
        }
    )
    return [refused, *[e for e in story(complaint_id)[1:] if e.event_type != "complaint.filed"]]


async def district_view(tracker: Tracker) -> dict[str, Any]:
    """Every list and count a reader can ask for, by who asks."""
    return {
        "stats": (await stats(tracker)).json(),
        "search": ids(await tracker.get("/v1/search", STAFF_KEY)),
        "queue": (await tracker.get("/v1/departments/roads/queue", KEYS["roads"])).json(),
        "mine": ids(
            await tracker.http.get(
                "/v1/residents/me/complaints", headers={"X-Resident-Token": RESIDENT_A}
            )
        ),
    }


async def test_events_of_a_complaint_nobody_filed_are_kept_and_shown_nowhere(
    district_tracker: Tracker,
) -> None:
    before = await district_view(district_tracker)

    await district_tracker.deliver(*unfiled("c-ghost"))

    assert await district_view(district_tracker) == before
    assert before["stats"]["complaints"] == 4
    assert before["stats"]["awaiting_routing"] == 0
    assert await district_tracker.store.read_model("c-ghost") is None
    for path, key in [
        ("/v1/departments/roads/complaints/c-ghost", KEYS["roads"]),
        ("/v1/staff/complaints/c-ghost", STAFF_KEY),
    ]:
        assert (await district_tracker.get(path, key)).status_code == 404
    kept = [d for d in district_tracker.store.events.values() if d["complaint_id"] == "c-ghost"]
    assert len(kept) == len(unfiled("c-ghost"))
    assert district_tracker.sample("sotong_tracker_unfiled_complaints_total") >= 1


async def test_a_filing_that_arrives_last_shows_everything_stored_before_it(
    district_tracker: Tracker,
) -> None:
    early = unfiled("c-5")
    await district_tracker.deliver(*early)

    late = filed("c-5", resident_token_hash=hash_token(RESIDENT_B))
    await district_tracker.deliver(late)

    model = await district_tracker.store.read_model("c-5")
    assert model == project([late, *early])
    assert model is not None
    assert model.state == "site_check"
    assert [r.code for r in model.rejections] == ["unknown_complaint", "illegal_transition"]
    figures = (await stats(district_tracker)).json()
    assert (figures["complaints"], figures["by_department"]["roads"]["total"]) == (5, 4)
    assert "c-5" in ids(await district_tracker.get("/v1/search", STAFF_KEY))


# -- the contract -----------------------------------------------------------------------


async def test_every_endpoint_is_documented_with_its_paging_and_auth(tracker: Tracker) -> None:
    spec = (await tracker.http.get("/openapi.json")).json()
    paths = spec["paths"]

    for path in (
        "/v1/complaints/{complaint_id}",
        "/v1/complaints/{complaint_id}/events",
        "/v1/residents/me/complaints",
        "/v1/departments/{code}/queue",
        "/v1/departments/{code}/complaints/{complaint_id}",
        "/v1/search",
        "/v1/staff/complaints/{complaint_id}",
        "/v1/stats",
    ):
        assert "get" in paths[path], path
    lookup = paths["/v1/staff/complaints/{complaint_id}"]["get"]
    assert {"200", "401", "404"} <= set(lookup["responses"])
    assert lookup["security"] == [{"ApiKey": []}]
    assert lookup["tags"] == ["staff"]
    schema = lookup["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/StaffComplaintView"}
    shown = set(spec["components"]["schemas"]["StaffComplaintView"]["properties"])
    assert not shown & {"resident", "body", "timeline", "notifications"}
    params = {p["name"] for p in paths["/v1/search"]["get"]["parameters"]}
    assert {"q", "state", "department", "dong", "from", "to", "overdue", "limit", "offset"} <= (
        params
    )
    assert {"limit", "offset"} <= {
        p["name"] for p in paths["/v1/departments/{code}/queue"]["get"]["parameters"]
    }
    assert paths["/v1/departments/{code}/queue"]["get"]["security"] == [{"ApiKey": []}]
    events = paths["/v1/complaints/{complaint_id}/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in events["content"]


@pytest.mark.parametrize("params", [{"token": "wrong"}, {}, {"token": TOKEN}])
async def test_a_stream_without_the_right_token_is_the_same_404(
    tracker: Tracker, params: dict[str, str]
) -> None:
    events = story("c-1")
    events[0] = filed("c-1", token_hash=hash_token(TOKEN))
    await tracker.deliver(*events)

    response = await tracker.http.get("/v1/complaints/c-1/events", params=params)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
