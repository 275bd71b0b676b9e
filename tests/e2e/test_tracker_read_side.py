"""The read side as a resident and a department meet it, on the real stack.

One resident files three complaints, follows all three with one resident token, watches
one of them live while its department resolves it, and the read models are rebuilt from
the event store without anything changing.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from services.mongo import Document
from services.runtime import Runtime
from sotong import cli
from tests.e2e.conftest import API_KEYS, Stack, eventually
from tests.e2e.test_walking_skeleton import act, file, state_is
from tests.service.test_tracker_read_api import next_entry, sse_messages
from tracker.app import create_app
from tracker.rebuild import rebuild
from tracker.settings import TrackerSettings
from tracker.store import COMPLAINTS, EVENTS, MongoTrackerStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DEPARTMENT = "resource-circulation"
STAFF_KEY = "e2e-staff-key"
BODIES = (
    "집앞에 차좀 빼주세요 며칠째 주차돼있어요",
    "가로등이 일주일째 꺼져 있어서 밤길이 어두워요",
)


async def mine(http: httpx.AsyncClient, stack: Stack, resident_token: str) -> list[dict[str, Any]]:
    response = await http.get(
        f"{stack.tracker}/v1/residents/me/complaints",
        headers={"X-Resident-Token": resident_token},
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


@pytest.fixture
async def mongo(stack: Stack) -> AsyncIterator[AsyncMongoClient[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(stack.backends.mongo_uri, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def staff_side(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A second tracker's HTTP API on the stack's database, with department and staff keys
    (the stack's tracker has only intake's staff key). Its lifespan is not entered: it
    joins no consumer group and only reads."""
    settings = TrackerSettings(
        kafka=stack.backends.kafka(stack.topic_prefix),
        mongo=stack.backends.mongo(stack.database),
        http_port=0,
        api_keys={code: SecretStr(key) for code, key in API_KEYS.items()},
        staff_api_keys={"e2e": SecretStr(STAFF_KEY)},
    )
    runtime = Runtime.build("tracker", settings)
    app: FastAPI = create_app(settings, runtime=runtime)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://tracker"
        ) as client:
            yield client
    finally:
        await runtime.mongo.close()


async def read_models(
    mongo: AsyncMongoClient[Document], stack: Stack, ids: list[str]
) -> list[Document]:
    cursor = mongo[stack.database][COMPLAINTS].find({"_id": {"$in": ids}}).sort("_id")
    return await cursor.to_list()


async def settled(
    mongo: AsyncMongoClient[Document], stack: Stack, ids: list[str]
) -> list[Document]:
    """The read models once no event has arrived for two seconds (notifications trail)."""
    previous = await read_models(mongo, stack, ids)
    while True:
        await asyncio.sleep(2)
        current = await read_models(mongo, stack, ids)
        if current == previous:
            return current
        previous = current


async def test_one_resident_follows_three_complaints_and_watches_one_resolved_live(
    stack: Stack,
    http: httpx.AsyncClient,
    mongo: AsyncMongoClient[Document],
    staff_side: httpx.AsyncClient,
) -> None:
    first = await file(http, stack)
    others = [
        await file(http, stack, body=body, resident_token=first["resident_token"])
        for body in BODIES
    ]
    filed = [first, *others]
    ids = [f["complaint_id"] for f in filed]
    token = first["resident_token"]
    assert {f["resident_token"] for f in filed} == {token}

    # Follow all three with the resident token alone: newest first, each routed.
    async def all_assigned() -> list[dict[str, Any]] | None:
        items = await mine(http, stack, token)
        ready = len(items) == 3 and all(i["state"] == "handler_assigned" for i in items)
        return items if ready else None

    listed = await eventually(all_assigned, what="three complaints listed and assigned")
    assert {item["complaint_id"] for item in listed} == set(ids)
    assert [item["filed_at"] for item in listed] == sorted(
        (item["filed_at"] for item in listed), reverse=True
    )
    for item in listed:
        assert item["department"]["code"]
        assert item["handler"]["office_phone"].startswith("032-")
    assert "홍길동" not in str(listed)
    assert "010-1234-5678" not in str(listed)
    opened = await http.get(
        f"{stack.tracker}/v1/complaints/{ids[1]}", headers={"X-Resident-Token": token}
    )
    assert opened.status_code == 200
    assert opened.json()["resident"] == {"name": "홍*동"}

    # Watch the first one live while its department works on it and resolves it.
    async with http.stream(
        "GET",
        f"{stack.tracker}/v1/complaints/{ids[0]}/events",
        headers={"X-Tracking-Token": first["tracking_token"]},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = sse_messages(response)
        stored = [await next_entry(messages) for _ in range(3)]
        assert [m["data"]["state"] for m in stored] == [
            "received",
            "assigned",
            "handler_assigned",
        ]

        await act(http, stack, ids[0], "start_site_check", "내일 오전 현장 방문")
        site_check = await next_entry(messages, within=60)
        await act(http, stack, ids[0], "resolve", "대형폐기물 스티커 안내 후 수거 완료")
        resolved = await next_entry(messages, within=60)
        await messages.aclose()

    assert (site_check["id"], site_check["data"]["state"]) == ("4", "site_check")
    assert (resolved["id"], resolved["data"]["state"]) == ("5", "resolved")
    assert resolved["data"]["note"] == "대형폐기물 스티커 안내 후 수거 완료"
    assert resolved["data"]["actor"] == DEPARTMENT
    await state_is(http, stack, first, "resolved")
    now = {item["complaint_id"]: item["state"] for item in await mine(http, stack, token)}
    assert now[ids[0]] == "resolved"

    # The department: the resolved one has left its queue; its details name the resident.
    department_key = {"X-Api-Key": API_KEYS[DEPARTMENT]}
    queue = await staff_side.get(f"/v1/departments/{DEPARTMENT}/queue", headers=department_key)
    assert queue.status_code == 200
    assert ids[0] not in [item["complaint_id"] for item in queue.json()["items"]]
    details = await staff_side.get(
        f"/v1/departments/{DEPARTMENT}/complaints/{ids[0]}", headers=department_key
    )
    assert details.json()["resident"]["phone"] == "010-1234-5678"
    assert details.json()["resident"]["address"].startswith("인천 서구 청라대로 ")
    found = await staff_side.get(
        "/v1/search", params={"q": "매트리스 버리려면"}, headers={"X-Api-Key": STAFF_KEY}
    )
    assert ids[0] in [hit["complaint_id"] for hit in found.json()["items"]]
    assert "010-1234-5678" not in found.text
    assert "청라대로" not in found.text

    # Rebuild every read model from the event store: nothing a resident sees changes.
    listing = await mine(http, stack, token)
    for _ in range(5):
        before = await settled(mongo, stack, ids)
        await rebuild(MongoTrackerStore(mongo[stack.database]))
        after = await read_models(mongo, stack, ids)
        if [m["event_count"] for m in after] == [m["event_count"] for m in before]:
            break  # else a trailing notification landed in between: settle and try again
    else:
        pytest.fail("events kept arriving; the rebuild could not be compared")
    assert after == before
    assert await mine(http, stack, token) == listing


async def test_sotong_act_finds_any_complaints_department_and_unknown_ids_stay_unseen(
    stack: Stack,
    http: httpx.AsyncClient,
    mongo: AsyncMongoClient[Document],
    staff_side: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A complaint filed over HTTP (the CLI holds no token for it): ``sotong act`` asks the
    tracker with the staff key which department holds it and acts as that department. A
    command for an id nobody filed is refused and stored, and makes no complaint."""
    keys, staff = tmp_path / "api-keys.json", tmp_path / "staff-keys.json"
    keys.write_text(json.dumps(API_KEYS))
    staff.write_text(json.dumps({"e2e": STAFF_KEY}))
    monkeypatch.setenv("SOTONG_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("SOTONG_STAFF_KEYS_FILE", str(staff))
    monkeypatch.delenv("SOTONG_API_KEY", raising=False)
    filed = await file(http, stack)
    await state_is(http, stack, filed, "handler_assigned")
    unknown = str(uuid.uuid4())

    async def sotong_act(*argv: str) -> tuple[int, str]:
        args = cli.build_parser().parse_args(["act", *argv])
        capsys.readouterr()
        async with httpx.AsyncClient(base_url=stack.intake, timeout=30) as intake:
            code = await cli.act(args, intake=intake, tracker=staff_side)
        return code, capsys.readouterr().err

    assert await sotong_act(filed["complaint_id"], "start_site_check", "--note", "현장 방문") == (
        0,
        "",
    )
    moved = await state_is(http, stack, filed, "site_check")
    assert moved["timeline"][-1]["actor"] == DEPARTMENT
    code, err = await sotong_act(unknown, "start_site_check")
    assert (code, err.split(":")[0]) == (1, "no such complaint")

    sent = await http.post(
        f"{stack.intake}/v1/complaints/{unknown}/commands",
        json={"action": "start_review"},
        headers={"X-Api-Key": API_KEYS[DEPARTMENT]},
    )
    assert sent.status_code == 202, sent.text
    db = mongo[stack.database]
    await eventually(
        lambda: db[EVENTS].find_one({"complaint_id": unknown}),
        what="the refusal stored in the tracker's event log",
    )
    assert await db[COMPLAINTS].find_one({"_id": unknown}) is None
    looked_up = await staff_side.get(
        f"/v1/staff/complaints/{unknown}", headers={"X-Api-Key": STAFF_KEY}
    )
    assert looked_up.status_code == 404
